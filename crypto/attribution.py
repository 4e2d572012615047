"""Who spoke: a listener's verdict on every voice frame, from the talkers' signed checkpoints.

Sans-IO and per KID. The caller (the endpoint's voice path) decrypts a frame, then asks
:meth:`Attribution.frame`: *verified* when a checkpoint the talker signed lists that frame's
hash at its counter, *forged* when one lists another hash there, otherwise *pending* — shown
as unverified — until a checkpoint arrives. A pending frame that no checkpoint covers within
:data:`BOUND` is a forgery alarm naming the KID (:meth:`Attribution.expire`), unless it lies in
the counter range of a checkpoint that was lost on the way (the chain's ``seq`` skipped): then
it stays *unverifiable*, never verified and never blamed.

The caller verifies each checkpoint's signature against the roster sender of its KID and its
binding (channel and commit hash) before :meth:`Attribution.checkpoint`. Two checkpoints of
one KID that do not chain (same ``seq`` or next ``seq`` without the previous one's digest) mean
two devices sign for one KID — a cloned device or a forked key — and are reported (``forked``).

The replay window must not be moved by a frame nobody vouched for: one forged frame with a
high counter (or at the talker's next counter) would otherwise make the real talker's frames
look like replays. So the caller moves a window only for frames this book verified
(:meth:`Attribution.is_verified`, or the ``verified`` findings); until then
:meth:`Attribution.is_pending` deduplicates a frame by its hash.
"""

from __future__ import annotations

import hmac
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from .checkpoint import Checkpoint, frame_hash

BOUND = 1.0  # s: a frame no checkpoint covers within this raises a forgery alarm
MAX_PENDING = 1024  # unattributed frames kept per KID (the oldest are judged first)
KEEP = 32  # recent checkpoints kept per KID, for frames that arrive after theirs (~6 s)


class Verdict(Enum):
    VERIFIED = "verified"
    PENDING = "pending"
    FORGED = "forged"


@dataclass(frozen=True)
class Finding:
    """``verified``: these counters are the talker's; ``forged``: not (``reason`` says why:
    ``mismatch`` or ``uncovered``); ``unverifiable``: their checkpoint was lost; ``forked``:
    two checkpoint chains for one KID."""

    kind: str
    kid: int
    ctrs: tuple[int, ...]
    reason: str = ""


@dataclass
class _Stream:
    # counter -> the frames heard at it, unattributed: (hash, when); more than one when an
    # insider forged a frame at a counter the talker also used (only one can match)
    pending: dict[int, list[tuple[bytes, float]]] = field(default_factory=dict)
    recent: deque[Checkpoint] = field(default_factory=lambda: deque(maxlen=KEEP))
    seq: int | None = None
    digest: bytes = b""
    high: int = -1  # the highest counter any checkpoint covered
    gaps: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=KEEP))

    def covering(self, ctr: int) -> Checkpoint | None:
        for cp in self.recent:
            if cp.first_ctr <= ctr <= cp.last_ctr:
                return cp
        return None

    def in_gap(self, ctr: int) -> bool:
        return any(lo <= ctr <= hi for lo, hi in self.gaps)


class Attribution:
    def __init__(self, bound: float = BOUND) -> None:
        self.bound = bound
        self._streams: dict[int, _Stream] = {}

    def _stream(self, kid: int) -> _Stream:
        st = self._streams.get(kid)
        if st is None:
            st = self._streams[kid] = _Stream()
        return st

    def frame(self, kid: int, ctr: int, frame: bytes, now: float) -> Verdict:
        """A decrypted frame of ``kid`` at counter ``ctr`` (its SFrame ciphertext)."""
        st = self._stream(kid)
        h = frame_hash(frame)
        cp = st.covering(ctr)
        if cp is not None:
            listed = cp.hash_at(ctr)
            ok = listed is not None and hmac.compare_digest(listed, h)
            return Verdict.VERIFIED if ok else Verdict.FORGED
        heard = st.pending.get(ctr)
        if heard is None:
            if len(st.pending) >= MAX_PENDING:
                del st.pending[min(st.pending, key=lambda c: st.pending[c][0][1])]
            heard = st.pending[ctr] = []
        if len(heard) < 4 and all(not hmac.compare_digest(x, h) for x, _ in heard):
            heard.append((h, now))
        return Verdict.PENDING

    def checkpoint(self, cp: Checkpoint, now: float) -> list[Finding]:
        """A checkpoint whose signature and binding the caller has verified."""
        st = self._stream(cp.kid)
        found: list[Finding] = []
        if st.seq is not None:
            if cp.seq <= st.seq:
                if any(c.seq == cp.seq and c.digest() != cp.digest() for c in st.recent):
                    found.append(Finding("forked", cp.kid, (), "two checkpoints for one seq"))
                return found  # a duplicate or an old one: nothing new
            if cp.seq == st.seq + 1 and cp.prev != st.digest:
                found.append(Finding("forked", cp.kid, (), "checkpoint does not chain"))
            if cp.seq > st.seq + 1 and cp.first_ctr > st.high + 1:
                st.gaps.append((st.high + 1, cp.first_ctr - 1))  # lost checkpoint(s)
        st.seq, st.digest = cp.seq, cp.digest()
        st.high = max(st.high, cp.last_ctr)
        st.recent.append(cp)
        good: list[int] = []
        bad: list[int] = []
        for ctr in [c for c in st.pending if cp.first_ctr <= c <= cp.last_ctr]:
            listed = cp.hash_at(ctr)
            for h, _ in st.pending.pop(ctr):
                ok = listed is not None and hmac.compare_digest(listed, h)
                (good if ok else bad).append(ctr)
        if good:
            found.append(Finding("verified", cp.kid, tuple(sorted(good))))
        if bad:
            found.append(Finding("forged", cp.kid, tuple(sorted(bad)), "mismatch"))
        return found

    def expire(self, now: float) -> list[Finding]:
        """Judge every frame that waited :attr:`bound` for a checkpoint."""
        found: list[Finding] = []
        for kid, st in self._streams.items():
            old = [c for c, heard in st.pending.items() if self._due(heard[0][1], now)]
            if not old:
                continue
            lost = tuple(sorted(c for c in old if st.in_gap(c)))
            forged = tuple(sorted(c for c in old if not st.in_gap(c)))
            for c in old:
                del st.pending[c]
            if lost:
                found.append(Finding("unverifiable", kid, lost, "checkpoint lost"))
            if forged:
                found.append(Finding("forged", kid, forged, "uncovered"))
        return found

    def is_verified(self, kid: int, ctr: int) -> bool:
        """Does a checkpoint of ``kid`` we hold list this counter (and the frame matched)?"""
        st = self._streams.get(kid)
        return st is not None and ctr not in st.pending and st.covering(ctr) is not None

    def is_pending(self, kid: int, ctr: int, frame: bytes) -> bool:
        """Was this very frame heard already, still waiting for a checkpoint (a replay)?"""
        st = self._streams.get(kid)
        h = frame_hash(frame)
        return st is not None and any(hmac.compare_digest(x, h) for x, _ in st.pending.get(ctr, ()))

    def next_deadline(self) -> float | None:
        """When :meth:`expire` has something to judge (None: nothing pending)."""
        times = [h[0][1] for st in self._streams.values() for h in st.pending.values()]
        return min(times) + self.bound if times else None

    def _due(self, t: float, now: float) -> bool:
        return now - t >= self.bound or now < t  # (a clock stepped back: judge at once)
