"""Voice checkpoints: a talker's signature over its own frames, at least every 200 ms.

SFrame keys are group keys: any member can encrypt a frame under another member's KID, so the
KID says nothing about who spoke. A talker therefore signs, in band, a chained
:class:`Checkpoint` over the frames it sent since the previous one: channel, commit hash,
KID, the checkpoint's place in the chain (``seq`` and the hash of the previous checkpoint),
the first counter it covers, and a short hash of every frame's SFrame ciphertext in counter
order. A listener attributes a frame to its talker only when a checkpoint, signed with the
talker's credential, lists that frame's hash at that frame's counter
(:mod:`crypto.attribution`).

Per-frame hashes, not one chain over the interval, so that a lost frame costs only itself: a
5 % loss link would otherwise leave every interval unverifiable. Each hash is the first
:data:`FRAME_HASH_LEN` bytes of SHA-256 over the frame; the frames were produced by the signer,
so forging one means a *second* preimage of a given 64-bit value within the attribution bound
(~2^64 trial encryptions in about a second), not a collision.

The wire form is binary (it travels with the voice, five times a second), decoded by
:func:`decode_checkpoint`, a parser of hostile input: on any bytes it returns a valid
:class:`Checkpoint` or raises :class:`~crypto.errors.VerificationError` (``malformed``).
The signature field carries its own length, so a post-quantum signature fits later.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field, replace

from .errors import Refusal, VerificationError
from .identity import Credential
from .keys import SigningKey

CHECKPOINT_DOMAIN = b"crossband/v1/checkpoint\x00"
MAGIC = b"CBK1"
INTERVAL = 0.2  # seconds: a talker checkpoints at least this often
FRAME_HASH_LEN = 8
MAX_FRAMES = 64  # hashes per checkpoint (1.28 s of 20 ms frames: more than one interval)
MAX_NAME = 128
GENESIS = b"\x00" * 32  # "previous" of a KID's first checkpoint
_FIXED = struct.Struct(">QIQBB")  # kid, seq, first_ctr, frame count, final (0/1)


def frame_hash(frame: bytes) -> bytes:
    return hashlib.sha256(frame).digest()[:FRAME_HASH_LEN]


@dataclass(frozen=True)
class Checkpoint:
    channel: str
    commit: bytes  # the hash of the commit whose epoch keyed the frames (32 bytes)
    kid: int
    seq: int  # 0, 1, 2, ... per KID
    prev: bytes  # digest() of checkpoint seq - 1 (GENESIS for seq 0)
    first_ctr: int
    hashes: tuple[bytes, ...] = field(repr=False)  # one per counter first_ctr, first_ctr + 1, ...
    final: bool = False  # the last of a talk burst: the burst's seal
    signature: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        if not 1 <= len(self.channel.encode()) <= MAX_NAME:
            raise ValueError("checkpoint channel must be 1..128 bytes")
        if len(self.commit) != 32 or len(self.prev) != 32:
            raise ValueError("commit and previous-checkpoint hashes are 32 bytes")
        if not (0 if self.final else 1) <= len(self.hashes) <= MAX_FRAMES:
            raise ValueError(f"a checkpoint covers 1..{MAX_FRAMES} frames (a final one, 0..)")
        if any(len(h) != FRAME_HASH_LEN for h in self.hashes):
            raise ValueError("frame hashes are 8 bytes")
        if not (0 <= self.kid < 1 << 64 and 0 <= self.seq < 1 << 32):
            raise ValueError("kid or seq out of range")
        if not 0 <= self.first_ctr <= (1 << 64) - len(self.hashes):
            raise ValueError("counter range out of range")

    @property
    def last_ctr(self) -> int:
        return self.first_ctr + len(self.hashes) - 1

    def hash_at(self, ctr: int) -> bytes | None:
        """The hash this checkpoint lists for counter ``ctr``, or None if it does not cover it."""
        if self.first_ctr <= ctr <= self.last_ctr:
            return self.hashes[ctr - self.first_ctr]
        return None

    def _body(self) -> bytes:
        channel = self.channel.encode()
        fixed = _FIXED.pack(self.kid, self.seq, self.first_ctr, len(self.hashes), self.final)
        return b"".join(
            (MAGIC, bytes((len(channel),)), channel, self.commit, self.prev, fixed, *self.hashes)
        )

    def digest(self) -> bytes:
        """What the next checkpoint's ``prev`` holds: SHA-256 of the signed body."""
        return hashlib.sha256(self._body()).digest()

    def signed(self, key: SigningKey) -> Checkpoint:
        return replace(self, signature=key.sign(CHECKPOINT_DOMAIN + self._body()))

    def verify(self, cred: Credential) -> Checkpoint:
        """Raise VerificationError(BAD_SIGNATURE) unless ``cred``'s device signed this."""
        cred.sign_key.verify(self.signature, CHECKPOINT_DOMAIN + self._body())
        return self

    def encode(self) -> bytes:
        return self._body() + struct.pack(">H", len(self.signature)) + self.signature


def decode_checkpoint(data: bytes) -> Checkpoint:
    """Parse the binary form; anything but a well-formed checkpoint is ``malformed``."""

    def bad(what: str) -> VerificationError:
        return VerificationError(Refusal.MALFORMED, f"checkpoint: {what}")

    if not isinstance(data, bytes | bytearray):
        raise bad("not bytes")
    data = bytes(data)
    if len(data) < 5 or data[:4] != MAGIC:
        raise bad("not a checkpoint")
    at = 5 + data[4]
    if len(data) < at + 64 + _FIXED.size:
        raise bad("truncated")
    try:
        channel = data[5:at].decode("utf-8")
    except UnicodeDecodeError:
        raise bad("channel is not UTF-8") from None
    commit, prev = data[at : at + 32], data[at + 32 : at + 64]
    kid, seq, first, count, final = _FIXED.unpack_from(data, at + 64)
    at += 64 + _FIXED.size
    end = at + count * FRAME_HASH_LEN
    if final > 1:
        raise bad("final flag is not a boolean")
    if len(data) < end + 2:
        raise bad("truncated")
    hashes = tuple(data[i : i + FRAME_HASH_LEN] for i in range(at, end, FRAME_HASH_LEN))
    (siglen,) = struct.unpack_from(">H", data, end)
    signature = data[end + 2 :]
    if len(signature) != siglen:
        raise bad("truncated or trailing bytes")
    try:
        return Checkpoint(channel, commit, kid, seq, prev, first, hashes, bool(final), signature)
    except ValueError as exc:
        raise bad(str(exc)) from None


class Checkpointer:
    """The talker's side, per KID: feed every frame sent; a checkpoint comes out when due.

    Sans-IO: ``now`` is passed in. The checkpoint returned is unsigned; the caller signs it
    with the device key (:meth:`Checkpoint.signed`) and sends it in band, right after the
    frame that closed it, so a listener waits at most :data:`INTERVAL` plus one frame.
    """

    def __init__(self, channel: str, commit: bytes, kid: int, interval: float = INTERVAL):
        self.channel, self.commit, self.kid, self.interval = channel, commit, kid, interval
        self._seq = 0
        self._prev = GENESIS
        self._first: int | None = None
        self._hashes: list[bytes] = []
        self._since: float | None = None  # when the last checkpoint was cut (or the burst began)
        self._next: int | None = None  # the counter after the last one cut, within a burst

    def add(self, ctr: int, frame: bytes, now: float) -> Checkpoint | None:
        if self._first is not None and ctr != self._first + len(self._hashes):
            cut = self._cut(False)  # a counter gap (another context used one): close here
            self._start(ctr, frame, now)
            return cut
        if self._first is None:
            self._start(ctr, frame, now)
        else:
            self._hashes.append(frame_hash(frame))
        if self._since is None:
            self._since = now
        if now - self._since >= self.interval or len(self._hashes) >= MAX_FRAMES:
            self._since = now
            return self._cut(False)
        return None

    def close(self) -> Checkpoint | None:
        """The burst ended: the final checkpoint over what is left (it may cover nothing, and
        then only says the burst is over); None if the burst sent no frame at all."""
        self._since = None
        if self._first is None and self._next is not None:
            self._first = self._next  # nothing since the last cut: an empty final one
        return self._cut(True)

    def _start(self, ctr: int, frame: bytes, now: float) -> None:
        self._first, self._hashes = ctr, [frame_hash(frame)]

    def _cut(self, final: bool) -> Checkpoint | None:
        if self._first is None:
            return None
        cp = Checkpoint(
            self.channel,
            self.commit,
            self.kid,
            self._seq,
            self._prev,
            self._first,
            tuple(self._hashes),
            final,
        )
        self._seq += 1
        self._prev = cp.digest()
        self._next = None if final else cp.last_ctr + 1
        self._first, self._hashes = None, []
        return cp
