"""Freshness wired into the endpoint: signed commit confirmations, stale epochs, fresh joins.

Part of the sans-IO :class:`~bridge.endpoint.core.EndpointCore` (issue 9, fault 2; the rules
are :mod:`bridge.endpoint.freshness`'s). :class:`Confirmations`

- follows what the :class:`~bridge.endpoint.commits.ChannelBook` installed (:meth:`sync`): a
  channel we are removed from is not followed;
- sends a signed :class:`~crypto.confirm.Confirmation` of each channel's commit every
  :data:`~bridge.endpoint.freshness.CONFIRM_EVERY` seconds (``confirm``; the relay passes it
  to the channel's other online members), and checks those it is given (:meth:`on_relay`):
  signed by a device in the roster of the commit we hold, for the channel it came on; others
  are counted ``confirmations_refused`` and change nothing;
- reports every alarm as a :class:`~bridge.endpoint.events.FreshnessAlarm` (a ``fork``
  carries both signed confirmations, theirs and ours);
- refuses to send on an epoch that is ``stale`` or ``behind`` (:meth:`check_send`; behind on
  a dispatcher's word or two members'): :class:`StaleEpochError`, and one ``Error``
  :data:`STALE_EPOCH` per channel and epoch;
- refuses a join with a commit older than the maximum age (:meth:`check_join`): the commit
  is refused ``expired`` and a ``stale-join`` alarm names it;
- as a dispatcher in the roster, re-commits the channel with its roster before the epoch
  gets stale (the commit's issuer :data:`~bridge.endpoint.freshness.REFRESH_BEFORE` ahead,
  any other dispatcher half that), through the ``recommit`` it is given, and again every
  :data:`REFRESH_RETRY` seconds while the epoch has not moved (offline, or the relay took
  another dispatcher's).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bridge.endpoint import events as ev
from bridge.endpoint.commits import ChannelBook
from bridge.endpoint.freshness import REFRESH_BEFORE, Alarm, Freshness
from bridge.endpoint.output import Output, VerifyJob
from bridge.errors import RemoteProtocolError
from bridge.wire import control as p
from bridge.wire.codes import Code
from crypto.confirm import Confirmation, decode_confirmation
from crypto.errors import CrossbandError, CryptoError, Refusal, VerificationError
from crypto.group import NotPermittedError, PreparedCommit
from crypto.identity import Credential
from crypto.keys import SigningKey

log = logging.getLogger("crossband.endpoint")
STALE_EPOCH = "stale-epoch"  # Error code: not sending on an epoch that is stale or behind
REFRESH_FAILED = "refresh-failed"  # Error code: our re-commit of a channel could not be built
REFRESH_RETRY = 60.0  # s: try again while the epoch has not moved (offline, refused, lost)
Recommit = Callable[[str, list[tuple[Credential, str]], float], object]


class StaleEpochError(NotPermittedError):
    """Not sending on this channel's epoch: it is older than allowed, or a member signed that
    the channel moved on (the relay withheld the commit, which may have removed a device)."""


class Confirmations:
    def __init__(
        self,
        sign: SigningKey,
        book: ChannelBook,
        out: Output,
        stats: dict[str, int],
        recommit: Recommit,
    ) -> None:
        self.device = book.device
        self.fresh = Freshness(book.device)
        self._sign = sign
        self._book = book
        self._out = out
        self._stats = stats
        self._recommit = recommit
        self._told: set[tuple[str, int]] = set()  # (channel, epoch) a send was refused on
        self._retry: dict[tuple[str, int], float] = {}  # (channel, epoch) -> next attempt

    def _statement(self, ch: str, epoch: int, commit: str, now: float) -> Confirmation:
        return Confirmation(ch, epoch, commit, self.device, max(0, int(now))).signed(self._sign)

    # -- following the book --------------------------------------------------------------------

    def sync(self, now: float) -> None:
        """Hold what the book installed; drop what it no longer has or removed us from."""
        for ch in [*self.fresh.channels(), *self._book.channels]:
            self._follow(ch, now)

    def _follow(self, ch: str, now: float) -> None:
        member = self._book.channels.get(ch)
        c = member.last_commit if member is not None else None
        if member is None or c is None or member.removed:
            self.fresh.drop(ch)
        elif self.fresh.held(ch) != (c.epoch, c.hash):
            others = any(e.device != self.device for e in c.roster)
            self.fresh.hold(ch, c.epoch, c.hash, c.issued_at, others, now)

    # -- confirmations -------------------------------------------------------------------------

    def on_relay(self, msg: dict[str, object], now: float) -> None:
        """A ``confirm`` from the relay; RemoteProtocolError if it is no such message."""
        ch, statement = msg.get("ch"), msg.get("statement")
        if msg.get("v") != p.VERSION or not isinstance(ch, str) or not isinstance(statement, str):
            raise RemoteProtocolError(Code.MALFORMED, "confirm")
        self.sync(now)
        member = self._book.channels.get(ch)
        c = member.last_commit if member is not None else None
        try:
            conf = decode_confirmation(p.unb64(statement))
            cred = member.credential(conf.device) if member is not None else None
            if conf.channel != ch or c is None or cred is None or c.entry(conf.device) is None:
                raise VerificationError(Refusal.UNKNOWN_DEVICE, "not a member we know")
            conf.verify(cred)
        except (VerificationError, RemoteProtocolError) as exc:
            self._stats["confirmations_refused"] += 1
            log.info("event=confirm-refused channel=%s reason=%s", ch, exc)
            return
        self._stats["confirmations"] += 1
        entry = c.entry(conf.device)
        dispatcher = entry is not None and entry.role == "dispatcher"
        for alarm in self.fresh.on_confirmation(conf, now, dispatcher):
            self._alarm(alarm, now)

    def _alarm(self, alarm: Alarm, now: float) -> None:
        held = self.fresh.held(alarm.channel)
        epoch = held[0] if held is not None else 0
        evidence = alarm.evidence
        if alarm.kind == "fork" and held is not None:  # keep both: theirs, and ours signed
            evidence += (self._statement(alarm.channel, held[0], held[1], now),)
        log.warning("event=freshness-alarm kind=%s channel=%s", alarm.kind, alarm.channel)
        self._out.emit(ev.FreshnessAlarm(alarm.kind, alarm.channel, alarm.detail, epoch, evidence))

    # -- what the core asks --------------------------------------------------------------------

    def check_send(self, ch: str, now: float) -> None:
        """Raise StaleEpochError if we may not send on ``ch``'s epoch now."""
        self._follow(ch, now)
        why = self.fresh.why_not(ch, now)
        held = self.fresh.held(ch)
        if why is None or held is None:
            return  # not followed (removed, unknown): the member itself refuses
        if (ch, held[0]) not in self._told:
            self._told.add((ch, held[0]))
            log.warning("event=stale-epoch channel=%s epoch=%d reason=%s", ch, held[0], why)
            self._out.emit(ev.Error(STALE_EPOCH, f"not sending on {ch}: epoch {held[0]} {why}"))
        raise StaleEpochError(f"channel {ch}: epoch {held[0]} is {why}")

    def check_join(
        self, job: VerifyJob, result: PreparedCommit | CryptoError, now: float
    ) -> PreparedCommit | CryptoError:
        """A verified commit for a channel we hold nothing of must be recent."""
        if not isinstance(result, PreparedCommit) or result.previous is not None:
            return result
        if job.member.last_commit is not None or self.fresh.join_ok(result.commit.issued_at, now):
            return result
        c = result.commit
        age = int(now - c.issued_at)
        detail = f"a commit issued {age} s ago is too old to join {c.channel} with"
        log.warning("event=stale-join channel=%s epoch=%d age=%d", c.channel, c.epoch, age)
        self._out.emit(ev.FreshnessAlarm("stale-join", c.channel, detail, c.epoch))
        return VerificationError(Refusal.EXPIRED, detail)

    # -- timers --------------------------------------------------------------------------------

    def _refresh_at(self, ch: str) -> float | None:
        member = self._book.channels.get(ch)
        c = member.last_commit if member is not None else None
        entry = c.entry(self.device) if c is not None else None
        if c is None or entry is None or entry.role != "dispatcher" or member is None:
            return None
        if member.refused is not None:
            return None
        lead = REFRESH_BEFORE if c.issuer == self.device else REFRESH_BEFORE / 2
        at = max(c.issued_at + self.fresh.max_age - lead, self._retry.get((ch, c.epoch), 0.0))
        return at if at < c.expires else None  # the channel ends first: nothing to refresh

    def get_timer(self) -> float | None:
        times = [t for ch in self.fresh.channels() if (t := self._refresh_at(ch)) is not None]
        if (t := self.fresh.next_deadline()) is not None:
            times.append(t)
        return min(times, default=None)

    def handle_timer(self, now: float) -> None:
        self.sync(now)
        for ch, epoch, commit in self.fresh.due(now):
            statement = self._statement(ch, epoch, commit, now).encode()
            self._out.send("confirm", ch=ch, statement=p.b64(statement))
        for alarm in self.fresh.check(now):
            self._alarm(alarm, now)
        for ch in self.fresh.channels():
            at = self._refresh_at(ch)
            if at is not None and now >= at:
                self._refresh(ch, now)

    def _refresh(self, ch: str, now: float) -> None:
        member = self._book.channels[ch]
        c = member.last_commit
        assert c is not None
        self._retry = {k: t for k, t in self._retry.items() if k[0] != ch}
        self._retry[(ch, c.epoch)] = now + REFRESH_RETRY
        try:
            members = []
            for e in c.roster:
                cred = member.credential(e.device)
                if cred is None:
                    raise VerificationError(Refusal.UNKNOWN_DEVICE, f"no credential for {e.device}")
                members.append((cred, e.role))
            self._recommit(ch, members, now)
            log.info("event=epoch-refresh channel=%s epoch=%d", ch, c.epoch + 1)
        except (CrossbandError, ValueError) as exc:
            log.warning("event=refresh-failed channel=%s reason=%s", ch, exc)
            self._out.emit(ev.Error(REFRESH_FAILED, f"could not refresh {ch}: {exc}"))
