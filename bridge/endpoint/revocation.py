"""Revocation that acts (issue 10): newer lists adopted at once, revoked devices committed out.

Part of the sans-IO :class:`~bridge.endpoint.core.EndpointCore`. :class:`Revocations`

- adopts a newer revocation list (:meth:`on_relay`: the relay's ``revocation-list`` push; or
  :meth:`published` then :meth:`on_ok`: ours once the relay answered ``revocation-ok``) only
  if it verifies against the agency's pinned root and its ``number`` is higher than the one we
  hold; an older or equal one is ignored (a replay), one that does not verify is the relay's
  fault (RemoteProtocolError). Each adoption is a
  :class:`~bridge.endpoint.events.RevocationLearned`. The lists live in the book's dict, so
  every later commit verification refuses the revoked credentials too;
- as a dispatcher in a channel's roster, re-commits the channel without every device that a
  list we hold revokes, or whose credential ends within :data:`EXPIRY_LEAD` seconds. Several
  dispatchers: the one with the lowest device id (among those not themselves removed) acts at
  once, the others wait :data:`GRACE` + their rank seconds from when they noticed, and act
  only if no commit without the device came meanwhile; the commit is built on the newest
  epoch we hold (rebased), and tried again every :data:`RETRY` seconds while the device is
  still listed (our commit lost, or the relay took another dispatcher's first);
- raises :class:`~bridge.endpoint.events.RevocationStale` once per list that is past its
  next-update time (:func:`next_update`).
"""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import Callable
from typing import Any

from bridge.endpoint import events as ev
from bridge.endpoint.commits import DEFAULT_LIFETIME, ChannelBook, decode_bundle
from bridge.endpoint.output import Output
from bridge.errors import RemoteProtocolError, StoreError
from bridge.wire import control as p
from bridge.wire.codes import Code
from crypto.agreement import Agreement, RevocationList, verify_revocation_list
from crypto.channel import CommitBundle, latest_expiry
from crypto.errors import CrossbandError, Refusal, VerificationError
from crypto.group import ChannelMember
from crypto.identity import Credential

log = logging.getLogger("crossband.endpoint")
GRACE = 2.0  # s a dispatcher that is not the first waits (plus its rank) before it acts
RETRY = 5.0  # s: act again while a removed device is still on the roster
EXPIRY_LEAD = 60.0  # s before a member's credential ends: commit it out
NEXT_UPDATE = 7 * 86400  # s after issue a list without its own next-update time is stale
REVOKE_FAILED = "revoke-commit-failed"  # Error code: the commit without a device failed
Recommit = Callable[
    [str, list[tuple[Credential, str]], float, int | None, Agreement | None], object
]


def next_update(rl: RevocationList) -> int:
    """When ``rl`` should have been superseded: its own ``next_update`` if the format carries
    one, else :data:`NEXT_UPDATE` after it was issued."""
    own = getattr(rl, "next_update", None)
    return own if isinstance(own, int) else rl.issued_at + NEXT_UPDATE


class Revocations:
    def __init__(self, book: ChannelBook, out: Output, recommit: Recommit) -> None:
        self.device = book.device
        self._book = book
        self._out = out
        self._recommit = recommit
        self._noticed: dict[str, float] = {}  # channel -> when we saw a revoked member in it
        self._retry: dict[tuple[str, int], float] = {}  # (channel, epoch) -> next attempt
        self._published: dict[str, RevocationList] = {}  # agency -> ours, awaiting the relay
        self._told: set[tuple[str, int]] = set()  # (agency, number) alarmed as stale
        self._links: dict[str, tuple[str, CommitBundle | None]] = {}  # channel -> its link's
        self._memo: dict[str, tuple[object, frozenset[str], float | None]] = {}
        self._failed: set[tuple[str, int]] = set()  # (channel, epoch) a removal failed on
        self.commits = 0  # commits we issued to remove a revoked or expiring device

    # -- learning lists ------------------------------------------------------------------------

    def on_relay(self, msg: dict[str, Any], now: float) -> None:
        """A ``revocation-list`` push; RemoteProtocolError if it is malformed or forged."""
        body = msg.get("list")
        if msg.get("v") != p.VERSION or not isinstance(body, dict):
            raise RemoteProtocolError(Code.MALFORMED, "revocation-list")
        try:
            rl = verify_revocation_list(RevocationList.decode(body), self._book.trust)
        except (VerificationError, ValueError, TypeError) as exc:
            log.warning("event=revocation-refused reason=%s", exc)
            raise RemoteProtocolError(Code.MALFORMED, "revocation-list refused") from None
        self.learn(rl, now)

    def published(self, rl: RevocationList) -> None:
        """We sent ``rl`` to the relay (which pushes it to everyone but us)."""
        self._published[rl.agency] = rl

    def on_ok(self, agency: str, number: int, now: float) -> None:
        rl = self._published.pop(agency, None)
        if rl is not None and rl.number == number:
            try:
                self.learn(verify_revocation_list(rl, self._book.trust), now)
            except VerificationError as exc:  # the relay took it, our trust does not
                log.warning("event=revocation-refused agency=%s reason=%s", agency, exc)

    def learn(self, rl: RevocationList, now: float) -> bool:
        """Adopt a verified list if it is newer than ours; True if adopted."""
        current = self._book.revocations.get(rl.agency)
        if current is not None and rl.number <= current.number:
            return False
        self._book.revocations[rl.agency] = rl
        revoked: list[str] = []
        for ch, member in self._book.channels.items():
            hit = [d for d, cred in self._listed(ch, member) if rl.revokes(cred)]
            if hit:
                self._noticed.setdefault(ch, now)
                revoked += hit
        log.info("event=revocation-learned agency=%s number=%d", rl.agency, rl.number)
        self._out.emit(ev.RevocationLearned(rl.agency, rl.number, tuple(sorted(set(revoked)))))
        return True

    # -- which devices go, and when we act -------------------------------------------------------

    def _link(self, ch: str, member: ChannelMember) -> CommitBundle | None:
        """The bundle of the link ``member`` holds (a commit we refused, e.g. for the device a
        list revokes; after a restart the member keeps no bundle of it): from the state."""
        c = member.last_commit
        if member.refused is None or c is None:
            return None
        cached = self._links.get(ch)
        if cached is None or cached[0] != c.hash:  # read once per link (found or not)
            found = None
            with contextlib.suppress(StoreError, VerificationError):
                for chan, epoch, blob, _ in self._book.state.commits():
                    if (chan, epoch) == (ch, c.epoch):
                        bundle = decode_bundle(blob)
                        if hmac.compare_digest(bundle.commit.hash, c.hash):
                            found = bundle
            cached = self._links[ch] = (c.hash, found)
        return cached[1]

    def _listed(self, ch: str, member: ChannelMember) -> list[tuple[str, Credential]]:
        """(device, credential) of the roster of the newest commit (or link) we hold; a device
        whose credential we never saw is left out."""
        c = member.last_commit
        link = self._link(ch, member)
        creds = link.credentials if link is not None else {}
        out = []
        for e in c.roster if c is not None else ():
            cred = creds.get(e.device) or member.credential(e.device)
            if cred is not None:
                out.append((e.device, cred))
        return out

    def _agreement(self, ch: str, member: ChannelMember) -> Agreement | None:
        link = self._link(ch, member)
        return link.agreement if link is not None else member.agreement

    def doomed(self, ch: str, member: ChannelMember) -> tuple[set[str], float | None]:
        """Devices of ``member``'s roster a list we hold revokes, and the earliest time one
        of the others' credential comes within :data:`EXPIRY_LEAD` of its end. Worked out
        once per commit and set of lists (the core asks on every timer question)."""
        lists = self._book.revocations
        c = member.last_commit
        key = (c.hash if c else "", tuple(sorted((a, rl.number) for a, rl in lists.items())))
        if (memo := self._memo.get(ch)) is not None and memo[0] == key:
            return set(memo[1]), memo[2]
        revoked: set[str] = set()
        ends: list[float] = []
        for device, cred in self._listed(ch, member):
            rl = lists.get(cred.agency)
            if rl is not None and rl.revokes(cred):
                revoked.add(device)
            elif device != self.device:
                ends.append(cred.not_after - EXPIRY_LEAD)
        self._memo[ch] = (key, frozenset(revoked), min(ends, default=None))
        return revoked, min(ends, default=None)

    def _act_at(self, ch: str, member: ChannelMember) -> float | None:
        c = member.last_commit
        entry = c.entry(self.device) if c is not None else None
        if c is None or entry is None or entry.role != "dispatcher" or member.removed:
            return None
        if member.refused not in (None, Refusal.REVOKED):
            return None  # a link we refused for its roster's revoked device: we may still act
        revoked, ends = self.doomed(ch, member)
        if revoked:
            start = self._noticed.get(ch, 0.0)  # not noticed yet: at once (handle_timer does)
        elif ends is not None and ends < c.expires:
            start = ends  # the channel would outlive that member's credential
        else:
            return None
        dispatchers = sorted(
            e.device for e in c.roster if e.role == "dispatcher" and e.device not in revoked
        )
        rank = dispatchers.index(self.device) if self.device in dispatchers else None
        if rank is None:
            return None  # we are revoked ourselves
        wait = 0.0 if rank == 0 else GRACE + rank
        return max(start + wait, self._retry.get((ch, c.epoch), 0.0))

    def get_timer(self) -> float | None:
        chans = self._book.channels.items()
        times = [t for ch, m in chans if (t := self._act_at(ch, m)) is not None]
        for rl in self._book.revocations.values():
            if (rl.agency, rl.number) not in self._told:
                times.append(next_update(rl) + 0.5)
        return min(times, default=None)

    def handle_timer(self, now: float) -> None:
        for ch, member in list(self._book.channels.items()):
            if not self.doomed(ch, member)[0]:
                self._noticed.pop(ch, None)
            else:
                self._noticed.setdefault(ch, now)  # e.g. lists loaded at start
            at = self._act_at(ch, member)
            if at is not None and now >= at:
                self._remove(ch, member, now)
        for rl in list(self._book.revocations.values()):
            key = (rl.agency, rl.number)
            if key not in self._told and now > next_update(rl):
                self._told.add(key)
                log.warning("event=revocation-stale agency=%s number=%d", *key)
                self._out.emit(ev.RevocationStale(rl.agency, rl.number, next_update(rl)))

    def _remove(self, ch: str, member: ChannelMember, now: float) -> None:
        c = member.last_commit
        assert c is not None
        self._retry = {k: t for k, t in self._retry.items() if k[0] != ch}
        self._retry[(ch, c.epoch)] = now + RETRY
        if now >= c.expires:
            return  # the channel ended: nothing left to cut anyone out of
        revoked, _ = self.doomed(ch, member)
        listed = self._listed(ch, member)
        ending = {d for d, cred in listed if cred.not_after - EXPIRY_LEAD <= now}
        gone = revoked | (ending - {self.device})
        roles = {e.device: e.role for e in c.roster}
        keep = [(cred, roles[d]) for d, cred in listed if d not in gone]
        agreement = self._agreement(ch, member)
        try:
            if len(listed) != len(roles) or agreement is None:  # never drop whom we cannot list
                raise VerificationError(Refusal.UNKNOWN_DEVICE, "a member's credential is missing")
            ends = [cred.not_after for d, cred in listed if d in gone]
            expires = None  # the channel keeps its expiry, unless a removed member capped it:
            if ends and c.expires >= min(ends):  # then it lives on within what the others allow
                keep_creds = [k for k, _ in keep]
                latest = latest_expiry(agreement, self._book.cred, keep_creds)
                expires = min(latest, int(now) + DEFAULT_LIFETIME)
            self._recommit(ch, keep, now, expires, agreement)
            self.commits += 1
            log.info("event=revoke-commit channel=%s epoch=%d gone=%d", ch, c.epoch + 1, len(gone))
        except (CrossbandError, ValueError) as exc:
            log.warning("event=revoke-commit-failed channel=%s reason=%s", ch, exc)
            if (ch, c.epoch) not in self._failed:  # told once per epoch; retried all the same
                self._failed.add((ch, c.epoch))
                self._out.emit(ev.Error(REVOKE_FAILED, f"could not remove from {ch}: {exc}"))
