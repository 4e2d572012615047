"""Freshness and fork detection for an endpoint's channels (sans-IO; ``wall`` is passed in).

A relay that withholds a commit, or shows two members two commits for one epoch, must not go
unnoticed (issue 9, fault 2). Four rules, each an :class:`Alarm` for the user:

- **stale**: an epoch whose commit was issued more than :data:`MAX_EPOCH_AGE` ago is not sent
  on any more (:meth:`Freshness.may_send` is False) — so a device a withheld commit removed
  reads nothing new after at most that long; a dispatcher re-commits the channel
  :data:`REFRESH_BEFORE` that (:meth:`Freshness.needs_refresh`).
- **behind**: another member confirms a later epoch than ours: the relay held our commit back.
- **fork**: another member confirms another commit for our epoch (its signed confirmation is
  kept as the evidence).
- **silent**: no other member of the channel confirmed anything for :data:`CONFIRM_BOUND`
  seconds although the channel has other members: the relay may be withholding everything.
  Only a confirmation signed within :data:`CONFIRM_BOUND` (and not beyond :data:`SKEW` in the
  future) counts as heard, so a relay replaying old ones does not hide its silence.

A member that is behind does not send on its epoch either (:meth:`Freshness.may_send`) until
it holds the newer one: it is the commit that may have removed a device. That takes the word
of a dispatcher of our roster (who could remove everyone anyway) or of :data:`MIN_WITNESSES`
members: one hostile member claiming a later epoch raises the alarm, naming itself in the
evidence, but does not silence the channel. A join (a commit for a channel we hold nothing
of) is taken only if it is one we may send on (:meth:`Freshness.join_ok`): a relay replaying
an old commit to a device that lost its state does not bring back the devices removed since.

Every member sends a signed :class:`~crypto.confirm.Confirmation` of what it holds every
:data:`CONFIRM_EVERY` seconds (:meth:`Freshness.due`); the caller verifies each one it receives
(signature by the named device's credential, device in the roster it knows) before
:meth:`Freshness.on_confirmation`.
"""

from __future__ import annotations

import hmac
import math
from dataclasses import dataclass, field

from crypto.confirm import Confirmation

MAX_EPOCH_AGE = 3600.0  # s: no sending on an epoch whose commit is older than this
REFRESH_BEFORE = 600.0  # s before that: a dispatcher re-commits the channel
CONFIRM_EVERY = 3.0  # s between our confirmations of a channel
CONFIRM_BOUND = 10.0  # s without any other member's confirmation: alarm "silent"
SKEW = 300.0  # s a member's clock may run ahead of ours (as for commits)
MIN_WITNESSES = 2  # members (if no dispatcher) whose later epoch stops our sending


@dataclass(frozen=True)
class Alarm:
    kind: str  # stale | behind | fork | silent
    channel: str
    detail: str
    evidence: tuple[Confirmation, ...] = ()


@dataclass
class _Held:
    epoch: int
    commit: str
    issued_at: float
    others: bool  # the roster has members besides us
    since: float  # when we started holding it (the "silent" clock starts here)
    last_heard: float | None = None
    next_confirm: float = 0.0
    alarmed: set[str] = field(default_factory=set)  # alarms raised for this epoch
    # Evidence we are behind: device -> the latest epoch it confirmed, and the latest epoch a
    # dispatcher of our roster confirmed.
    newer: dict[str, int] = field(default_factory=dict)
    vouched: int = 0

    def heard(self) -> float:
        """When the "silent" clock last started: another member's confirmation, or holding."""
        return self.since if self.last_heard is None else max(self.last_heard, self.since)


class Freshness:
    def __init__(self, device: str, max_age: float = MAX_EPOCH_AGE) -> None:
        self.device = device
        self.max_age = max_age
        self._held: dict[str, _Held] = {}

    def hold(
        self, channel: str, epoch: int, commit: str, issued_at: float, others: bool, wall: float
    ) -> None:
        """We installed this commit of ``channel`` (``others``: someone else is in its roster)."""
        old = self._held.get(channel)
        heard = old.last_heard if old is not None else None
        h = self._held[channel] = _Held(epoch, commit, issued_at, others, wall, heard, wall)
        if old is not None:  # what is still later than the commit we now hold
            h.newer = {d: e for d, e in old.newer.items() if e > epoch}
            h.vouched = old.vouched if old.vouched > epoch else 0

    def held(self, channel: str) -> tuple[int, str] | None:
        """(epoch, commit hash) we hold for ``channel``."""
        h = self._held.get(channel)
        return None if h is None else (h.epoch, h.commit)

    def channels(self) -> list[str]:
        return list(self._held)

    def drop(self, channel: str) -> None:
        self._held.pop(channel, None)

    def may_send(self, channel: str, wall: float) -> bool:
        return self.why_not(channel, wall) is None

    def why_not(self, channel: str, wall: float) -> str | None:
        """Why we may not send on ``channel`` now: ``stale`` / ``behind`` / ``unknown``."""
        h = self._held.get(channel)
        if h is None:
            return "unknown"
        if wall - h.issued_at > self.max_age:
            return "stale"
        behind = h.vouched > h.epoch or len(h.newer) >= MIN_WITNESSES
        return "behind" if behind else None

    def join_ok(self, issued_at: float, wall: float) -> bool:
        """A commit issued at ``issued_at`` is recent enough to join a channel with."""
        return wall - issued_at <= self.max_age

    def needs_refresh(self, channel: str, wall: float) -> bool:
        h = self._held.get(channel)
        return h is not None and wall - h.issued_at >= self.max_age - REFRESH_BEFORE

    def due(self, wall: float) -> list[tuple[str, int, str]]:
        """(channel, epoch, commit hash) we should confirm now; marks them sent."""
        out = []
        for ch, h in self._held.items():
            if wall >= h.next_confirm or wall < h.next_confirm - CONFIRM_EVERY:
                h.next_confirm = wall + CONFIRM_EVERY
                out.append((ch, h.epoch, h.commit))
        return out

    def on_confirmation(
        self, conf: Confirmation, wall: float, dispatcher: bool = False
    ) -> list[Alarm]:
        """A verified confirmation from another member of ``conf.channel`` (``dispatcher``:
        its role in the roster we hold)."""
        h = self._held.get(conf.channel)
        if h is None or conf.device == self.device:
            return []
        if -SKEW <= wall - conf.timestamp <= CONFIRM_BOUND:  # a replayed old one is no sign
            h.last_heard = wall
            h.alarmed.discard("silent")
        if conf.epoch > h.epoch:
            h.newer[conf.device] = max(h.newer.get(conf.device, 0), conf.epoch)
            if dispatcher:
                h.vouched = max(h.vouched, conf.epoch)
            return self._raise(
                h, "behind", conf.channel, f"{conf.device} holds epoch {conf.epoch}", conf
            )
        if conf.epoch == h.epoch and not hmac.compare_digest(conf.commit, h.commit):
            detail = f"{conf.device} holds another commit for epoch {conf.epoch}"
            return self._raise(h, "fork", conf.channel, detail, conf)
        return []

    def check(self, wall: float) -> list[Alarm]:
        """The periodic rules: stale epochs and silent channels (each alarm once per epoch)."""
        out: list[Alarm] = []
        for ch, h in self._held.items():
            if wall - h.issued_at > self.max_age:
                out += self._raise(h, "stale", ch, f"epoch {h.epoch} is older than allowed")
            if h.others and wall - h.heard() >= CONFIRM_BOUND:
                out += self._raise(h, "silent", ch, "no member confirmed anything")
        return out

    def next_deadline(self) -> float | None:
        times = []
        for h in self._held.values():  # an alarm raised once is no deadline any more
            times.append(h.next_confirm)
            if "stale" not in h.alarmed:  # the first instant it is older than allowed
                times.append(math.nextafter(h.issued_at + self.max_age, math.inf))
            if h.others and "silent" not in h.alarmed:
                times.append(h.heard() + CONFIRM_BOUND)
        return min(times, default=None)

    @staticmethod
    def _raise(
        h: _Held, kind: str, ch: str, detail: str, conf: Confirmation | None = None
    ) -> list[Alarm]:
        key = kind if conf is None else f"{kind}:{conf.device}:{conf.epoch}"
        if key in h.alarmed:
            return []
        h.alarmed.add(key)
        return [Alarm(kind, ch, detail, (conf,) if conf is not None else ())]
