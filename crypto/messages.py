"""Signed text/data messages and burst seals (DESIGN §4, "Attribution").

SFrame authenticates the group, not the sender, so anything a member must be able to attribute
is Ed25519-signed *inside* the SFrame ciphertext:

- a :class:`SignedMessage` (text or data): id, channel, sender, timestamp, kind, body;
- a :class:`BurstSeal` at the end of every talk burst: the SHA-256 chain over the SFrame frames
  of the burst as sent (ciphertext), their count and counter range, signed by the talker — so a
  recording of the ciphertext carries verifiable talker attribution.

Both are *bound*: they carry the channel and the hash of the commit whose epoch encrypted them,
under the signature, and a receiver refuses them anywhere else (:func:`check_binding`,
:data:`BINDING_FAULTS`) — so an insider who re-encrypts a genuine message or seal into another
channel, or into a later epoch of the same channel, gets it refused, not shown as new.

Both encode to canonical JSON with a ``type`` field; :func:`decode_signed` tells them apart.
It runs on what another member encrypted, so it is a parser of hostile input: whatever the
bytes (deep nesting, huge numbers, wrong types), it returns a valid object or raises
:class:`~crypto.errors.VerificationError` with code ``malformed``, and nothing else. What it
decodes is decrypted content, so its refusals name the field at fault and never quote what the
field held (not even the short values :func:`crypto.identity.shown` would show).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field, replace
from typing import Any

from .encoding import b64d, b64e, canonical, parse, signing_input
from .encoding import field as get
from .errors import Refusal, VerificationError
from .identity import DEVICE_ID_RE, Credential
from .keys import SigningKey

MESSAGE_DOMAIN = "crossband/v1/message"
SEAL_DOMAIN = "crossband/v1/burst-seal"
MESSAGE_KINDS = ("text", "data", "emergency")  # emergency: bridge.endpoint.emergency
MAX_BODY = 64 * 1024
MAX_SIGNED = 2 * MAX_BODY  # a signed payload: base64 of the body plus a few short fields
MAX_ID = 128
MAX_U64 = (1 << 64) - 1
_COMMIT_HASH = re.compile(r"[0-9a-f]{64}")


OTHER_CHANNEL = "other-channel"
OTHER_COMMIT = "other-commit"
UNBOUND = "unbound"
BINDING_FAULTS = (OTHER_CHANNEL, OTHER_COMMIT, UNBOUND)
"""The ``detail`` of a ``wrong-channel`` refusal from :func:`check_binding`: signed for another
channel, under another commit of this channel, or with no commit hash at all."""


def _check_commit(commit: str) -> None:
    if commit and not _COMMIT_HASH.fullmatch(commit):
        raise ValueError("commit must be a 64-digit lowercase hex hash")


def check_binding(item: SignedMessage | BurstSeal, channel: str, commit: str) -> None:
    """Refuse ``item`` unless it names ``channel`` and the commit hash ``commit`` (that of the
    epoch whose key opened it): VerificationError(WRONG_CHANNEL) whose detail is one of
    :data:`BINDING_FAULTS`."""
    if not hmac.compare_digest(item.channel.encode(), channel.encode()):
        raise VerificationError(Refusal.WRONG_CHANNEL, OTHER_CHANNEL)
    if not item.commit:
        raise VerificationError(Refusal.WRONG_CHANNEL, UNBOUND)
    if not hmac.compare_digest(item.commit.encode(), commit.encode()):
        raise VerificationError(Refusal.WRONG_CHANNEL, OTHER_COMMIT)


@dataclass(frozen=True)
class SignedMessage:
    id: str
    channel: str
    sender: str
    timestamp: int  # milliseconds since the epoch, as claimed by the sender
    kind: str
    body: bytes = field(repr=False)
    signature: bytes = field(default=b"", repr=False)
    commit: str = ""  # hash of the commit whose epoch encrypts it (set when signed)

    def __post_init__(self) -> None:
        _check_commit(self.commit)
        if self.kind not in MESSAGE_KINDS:
            raise ValueError(f"message kind must be one of {MESSAGE_KINDS}")
        if len(self.body) > MAX_BODY:
            raise ValueError("message body too large")
        if not 1 <= len(self.id) <= MAX_ID:
            raise ValueError("message id must be 1..128 characters")
        if not -MAX_U64 <= self.timestamp <= MAX_U64:
            raise ValueError("message timestamp out of range")

    def _body(self) -> dict[str, Any]:
        return {
            "type": "message",
            "id": self.id,
            "channel": self.channel,
            "commit": self.commit,
            "sender": self.sender,
            "ts": self.timestamp,
            "kind": self.kind,
            "body": b64e(self.body),
        }

    def signed(self, key: SigningKey) -> SignedMessage:
        return replace(self, signature=key.sign(signing_input(MESSAGE_DOMAIN, self._body())))

    def verify(self, cred: Credential) -> SignedMessage:
        if cred.device != self.sender:
            raise VerificationError(Refusal.BAD_SIGNATURE, "sender is not the credential's device")
        cred.sign_key.verify(self.signature, signing_input(MESSAGE_DOMAIN, self._body()))
        return self

    def encode(self) -> bytes:
        return canonical({**self._body(), "sig": b64e(self.signature)})


@dataclass(frozen=True)
class BurstSeal:
    channel: str
    epoch: int
    sender: str
    burst: str
    frames: int
    first_ctr: int
    last_ctr: int
    digest: bytes = field(repr=False)
    signature: bytes = field(default=b"", repr=False)
    commit: str = ""  # hash of the commit whose epoch encrypts it (set when signed)

    def __post_init__(self) -> None:
        _check_commit(self.commit)
        for name in ("epoch", "frames", "first_ctr", "last_ctr"):
            if not 0 <= getattr(self, name) <= MAX_U64:
                raise ValueError(f"seal {name} out of range")
        if self.first_ctr > self.last_ctr or len(self.digest) != 32:
            raise ValueError("bad seal counter range or digest")
        if not 1 <= len(self.burst) <= MAX_ID:
            raise ValueError("burst id must be 1..128 characters")

    def _body(self) -> dict[str, Any]:
        return {
            "type": "seal",
            "channel": self.channel,
            "commit": self.commit,
            "epoch": self.epoch,
            "sender": self.sender,
            "burst": self.burst,
            "frames": self.frames,
            "first_ctr": self.first_ctr,
            "last_ctr": self.last_ctr,
            "digest": b64e(self.digest),
        }

    def signed(self, key: SigningKey) -> BurstSeal:
        return replace(self, signature=key.sign(signing_input(SEAL_DOMAIN, self._body())))

    def verify(self, cred: Credential) -> BurstSeal:
        if cred.device != self.sender:
            raise VerificationError(Refusal.BAD_SIGNATURE, "sender is not the credential's device")
        cred.sign_key.verify(self.signature, signing_input(SEAL_DOMAIN, self._body()))
        return self

    def matches(self, hasher: BurstHasher) -> bool:
        """True if the frames a receiver hashed are exactly the frames the talker sealed."""
        return hasher.count == self.frames and hmac.compare_digest(hasher.digest(), self.digest)

    def encode(self) -> bytes:
        return canonical({**self._body(), "sig": b64e(self.signature)})


class BurstHasher:
    """Running SHA-256 chain over a burst's SFrame frames.

    ``h_i = SHA-256(h_{i-1} || SHA-256(f_i))``.
    """

    __slots__ = ("_state", "count", "first_ctr", "last_ctr")

    def __init__(self) -> None:
        self._state = b"\x00" * 32
        self.count = 0
        self.first_ctr: int | None = None
        self.last_ctr: int | None = None

    def add(self, frame: bytes, ctr: int | None = None) -> None:
        self.add_digest(hashlib.sha256(frame).digest(), ctr)

    def add_digest(self, frame_digest: bytes, ctr: int | None = None) -> None:
        """Add a frame by its SHA-256 (a receiver that stored frames out of order)."""
        self._state = hashlib.sha256(self._state + frame_digest).digest()
        self.count += 1
        if ctr is not None:
            if self.first_ctr is None:
                self.first_ctr = ctr
            self.last_ctr = ctr

    def digest(self) -> bytes:
        return self._state

    @classmethod
    def in_order(cls, frames: dict[int, bytes]) -> BurstHasher:
        """The chain over frames received in any order, keyed by SFrame counter (which is
        the order the talker sent and sealed them in)."""
        hasher = cls()
        for ctr in sorted(frames):
            hasher.add_digest(frames[ctr], ctr)
        return hasher


def decode_signed(data: bytes) -> SignedMessage | BurstSeal:
    """Parse a decrypted DATA payload; raises VerificationError(MALFORMED) on anything odd."""
    if len(data) > MAX_SIGNED:
        raise VerificationError(Refusal.MALFORMED, "signed payload too large")
    obj = parse(data)  # only VerificationError(MALFORMED), however deep the nesting
    kind = get(obj, "type", str)
    try:
        if kind == "message":
            return SignedMessage(
                id=get(obj, "id", str),
                channel=get(obj, "channel", str),
                commit=_commit(obj),
                sender=_sender(obj),
                timestamp=get(obj, "ts", int),
                kind=get(obj, "kind", str),
                body=b64d(get(obj, "body", str)),
                signature=b64d(get(obj, "sig", str)),
            )
        if kind == "seal":
            return BurstSeal(
                channel=get(obj, "channel", str),
                commit=_commit(obj),
                epoch=get(obj, "epoch", int),
                sender=_sender(obj),
                burst=get(obj, "burst", str),
                frames=get(obj, "frames", int),
                first_ctr=get(obj, "first_ctr", int),
                last_ctr=get(obj, "last_ctr", int),
                digest=b64d(get(obj, "digest", str)),
                signature=b64d(get(obj, "sig", str)),
            )
    except ValueError as exc:  # our own fixed reasons (__post_init__), never the input
        raise VerificationError(Refusal.MALFORMED, str(exc)) from None
    raise VerificationError(Refusal.MALFORMED, "unknown signed payload type")


def _commit(obj: dict[str, Any]) -> str:
    """The commit hash, "" if absent (then :func:`check_binding` refuses the item)."""
    return get(obj, "commit", str) if "commit" in obj else ""


def _sender(obj: dict[str, Any]) -> str:
    sender: str = get(obj, "sender", str)
    if not DEVICE_ID_RE.fullmatch(sender):
        raise VerificationError(Refusal.MALFORMED, "bad sender device id")  # never quoted
    return sender
