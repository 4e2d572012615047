"""Key ids with a per-boot sender generation, and the keys and windows of one epoch.

Key ids follow RFC 9605 §5.2 — context bits, sender index, epoch bits — with the high bits
carrying the sender's *generation*::

    KID = generation << 17 | context << 16 | sender_index << 4 | epoch mod 16

(:data:`SENDER_BITS` = 12 sender bits, :data:`EPOCH_BITS` = 4 epoch bits, one context bit: 0
voice, 1 data, and :data:`GEN_BITS` = 47 generation bits, so a KID fits SFrame's 8 bytes).

Why a generation. SFrame's nonce is ``salt XOR CTR`` under a key derived from the KID, so a
(key, KID, CTR) must never be used twice. Counters are reserved durably before use
(:mod:`crypto.counters`), but a state file restored from a snapshot (a VM restore, a cloned
standby) rolls the reservations back with it, and would send the same counters again under the
same key. Every :class:`~crypto.group.ChannelMember` therefore draws a fresh random generation
when it is created — once per boot and channel — and puts it in its KIDs: a new generation is
a new KID, hence a new SFrame key, whatever the counters say. Two boots reuse a key only if
their generations collide (probability 2^-47 per pair of boots). Listeners need nothing more:
the KID is in every frame's header (authenticated as AAD) and the base key is derived from it,
so a member keeps talking after a restore without waiting for a dispatcher to rekey. The send
counters themselves are still reserved durably, under a name without the generation, so an
ordinary restart goes on counting from where it was.

A clone (two devices running from one state file) shows as two generations of one sender at
once. :class:`GenerationWatch` follows each sender's current generation per epoch: a restart
moves a sender to a new generation for good, so a *superseded* generation heard again later
than :data:`REORDER` seconds after it was superseded means two devices speak as one
(:class:`CloneSeen`). A relay that withholds a sender's frames and releases them after the
sender restarted can raise the same alarm: it is an alarm, never a reason to trust a frame.
"""

from __future__ import annotations

import hmac
import secrets
import struct
from dataclasses import dataclass
from typing import NamedTuple

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from .channel import SENDER_BITS, Commit, CommitBundle
from .counters import CounterStore
from .errors import CryptoError
from .replay import ReplayWindow
from .sframe import CipherSuite, SFrameKey, suite_params

__all__ = [
    "CONTEXT_DATA",
    "CONTEXT_VOICE",
    "EPOCH_BITS",
    "GEN_BITS",
    "REORDER",
    "CloneSeen",
    "EpochKeys",
    "GenerationWatch",
    "NotPermittedError",
    "Received",
    "kid_generation",
    "make_kid",
    "new_generation",
    "split_kid",
]

EPOCH_BITS = 4
GEN_BITS = 47
CONTEXT_VOICE = 0
CONTEXT_DATA = 1
EPOCH_MASK = (1 << EPOCH_BITS) - 1
_SENDER_MASK = (1 << SENDER_BITS) - 1
_CONTEXT_SHIFT = SENDER_BITS + EPOCH_BITS
GEN_SHIFT = _CONTEXT_SHIFT + 1
_GEN_MASK = (1 << GEN_BITS) - 1
REORDER = 1.0  # s a superseded generation's frames may still arrive (in flight at a restart)
MAX_GENERATIONS = 8  # superseded generations remembered per sender and epoch
VOICE_MARK_BLOCK = 25  # voice counters a listener's durable replay mark runs ahead (0.5 s)
_NO_MARK = 1 << 65  # a window with no durable store: nothing is ever put on record
_MAX_MARK = 1 << 64  # one past the largest counter (a sender's counter can be that high)


class NotPermittedError(CryptoError):
    """Local misuse: this device may not send in this channel (observer, removed, no epoch)."""


class Received(NamedTuple):
    """A frame that authenticated: who sent it (by the verified roster), and what it said.

    ``commit`` is the hash of the commit whose epoch opened it; ``gen`` the sender's
    generation."""

    sender: str
    context: int
    epoch: int
    kid: int
    ctr: int
    payload: bytes
    commit: str = ""
    gen: int = 0

    def __repr__(self) -> str:  # never print plaintext
        return (
            f"Received(sender={self.sender!r}, context={self.context}, epoch={self.epoch},"
            f" kid={self.kid}, ctr={self.ctr}, gen={self.gen})"
        )


def new_generation() -> int:
    """A fresh random sender generation (never 0, so a KID always carries one)."""
    return secrets.randbelow(_GEN_MASK) + 1


def make_kid(context: int, index: int, epoch: int, generation: int = 0) -> int:
    if not 0 <= index <= _SENDER_MASK or context not in (CONTEXT_VOICE, CONTEXT_DATA):
        raise ValueError("bad KID fields")
    if not 0 <= generation <= _GEN_MASK:
        raise ValueError("bad KID generation")
    return (
        (generation << GEN_SHIFT)
        | (context << _CONTEXT_SHIFT)
        | (index << EPOCH_BITS)
        | (epoch & EPOCH_MASK)
    )


def split_kid(kid: int) -> tuple[int, int, int]:
    """Return (context, sender index, epoch bits); :func:`kid_generation` has the rest."""
    return (kid >> _CONTEXT_SHIFT) & 1, (kid >> EPOCH_BITS) & _SENDER_MASK, kid & EPOCH_MASK


def kid_generation(kid: int) -> int:
    return kid >> GEN_SHIFT


@dataclass(frozen=True)
class CloneSeen:
    """Two generations of one sender heard at once in one epoch: a cloned device (or a relay
    that held one boot's frames back). ``kid`` is the frame that showed it."""

    channel: str
    epoch: int
    sender: str
    kid: int
    generations: tuple[int, int]  # (the one heard again, the one that superseded it)


class GenerationWatch:
    """Each sender's current generation in one epoch (see the module docstring)."""

    __slots__ = ("current", "_old", "_alarmed")

    def __init__(self) -> None:
        self.current: dict[int, int] = {}  # sender index -> generation (the per-frame check)
        self._old: dict[int, dict[int, float]] = {}  # index -> {superseded gen: when}
        self._alarmed: set[tuple[int, int, int]] = set()

    def changed(self, index: int, gen: int, now: float) -> tuple[int, int] | None:
        """A frame of ``index`` under ``gen``, which is not its current generation: the pair
        (``gen``, current) the first time this shows a clone, else None."""
        cur = self.current.get(index)
        if cur is None:
            self.current[index] = gen
            return None
        old = self._old.setdefault(index, {})
        superseded = old.get(gen)
        if superseded is not None and 0 <= now - superseded < REORDER:
            return None  # the previous boot's last frames, still in flight
        old[cur] = now
        old.pop(gen, None)
        while len(old) > MAX_GENERATIONS:
            del old[min(old, key=old.__getitem__)]
        self.current[index] = gen
        if superseded is None:
            return None  # a restart: the sender moved to a new generation
        key = (index, min(gen, cur), max(gen, cur))
        if key in self._alarmed:
            return None
        self._alarmed.add(key)
        return gen, cur


def _extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt, ikm, "sha256").digest()  # HKDF-Extract, RFC 5869 §2.2


class EpochKeys:
    """One epoch a member holds: its commit, the SFrame key of each KID (derived on first
    use), the replay window of each KID heard, and the senders' generations."""

    __slots__ = (
        "commit",
        "bundle",
        "suite",
        "prk",
        "keys",
        "windows",
        "retire_at",
        "senders",
        "gens",
    )

    def __init__(self, bundle: CommitBundle, secret: bytes) -> None:
        self.commit: Commit = bundle.commit
        self.bundle = bundle.without_secrets()
        self.suite = CipherSuite(self.commit.suite)
        self.prk = _extract(bytes.fromhex(self.commit.hash), secret)
        self.keys: dict[int, SFrameKey] = {}
        self.windows: dict[int, ReplayWindow] = {}
        self.retire_at: float | None = None
        self.senders = {e.index: e.device for e in self.commit.roster if e.index is not None}
        self.gens = GenerationWatch()

    def key(self, kid: int) -> SFrameKey:
        k = self.keys.get(kid)
        if k is None:
            nh = suite_params(self.suite).nh
            info = b"crossband/v1 sframe base key" + struct.pack(">HQ", self.suite, kid)
            base = HKDFExpand(hashes.SHA256(), nh, info).derive(self.prk)
            k = self.keys[kid] = SFrameKey(self.suite, base, kid)
        return k

    def window(self, kid: int, size: int, marks: CounterStore | None) -> ReplayWindow:
        """A new replay window for ``kid``, floored at its durable mark if ``marks`` and
        ``kid`` is a voice KID. Data frames need no mark: signed messages and seals are
        de-duplicated on (sender, inner id) from durable state by the endpoint, and a mark
        written before a message is shown would lose it to a crash in between."""
        if marks is None or (kid >> _CONTEXT_SHIFT) & 1:
            window = ReplayWindow(size)
            window.mark = _NO_MARK
        else:
            window = ReplayWindow(size, marks.load(self.label(kid)))
        self.windows[kid] = window
        return window

    def record(self, window: ReplayWindow, kid: int, ctr: int, marks: CounterStore | None) -> None:
        """Put voice counter ``ctr`` on record before it is accepted, a block ahead. A failing
        store raises and nothing changed, so the frame may be tried again."""
        if marks is not None:
            mark = min(ctr + VOICE_MARK_BLOCK, _MAX_MARK)
            marks.reserve(self.label(kid), mark)
            window.mark = mark

    def advance(self, kid: int, ctr: int, marks: CounterStore | None) -> None:
        """Move ``kid``'s replay window to ``ctr`` (on record first), if it is not behind."""
        window = self.windows.get(kid)
        if window is not None and window.check(ctr):
            if ctr >= window.mark:
                self.record(window, kid, ctr, marks)
            window.update(ctr)

    def heard(self, index: int, kid: int, now: float) -> CloneSeen | None:
        """A frame of sender ``index`` under a generation that is not its current one."""
        pair = self.gens.changed(index, kid >> GEN_SHIFT, now)
        if pair is None:
            return None
        c = self.commit
        return CloneSeen(c.channel, c.epoch, self.senders.get(index, "?"), kid, pair)

    def label(self, kid: int) -> str:
        """The name of ``kid``'s replay mark in a durable store."""
        return f"{self.commit.hash[:32]}/{kid}"

    def counter_label(self, kid: int) -> str:
        """The name of our send counter for ``kid``: the same for every generation, so that
        after an ordinary restart the counters go on from where they were (the audio path sees
        one rising counter per talker) and a generation drawn twice still never repeats one."""
        return f"{self.commit.hash[:32]}/{kid & ((1 << GEN_SHIFT) - 1)}"

    def erase(self) -> None:
        # Python cannot overwrite immutable bytes; dropping every reference is what we can do.
        self.keys.clear()
        self.windows.clear()
        self.prk = b""
