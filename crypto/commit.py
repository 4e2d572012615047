"""Channel commits: the signed statement that says who is in a channel in which epoch
(DESIGN §4), and the values derived from it.

A commit body::

    {"v": 1, "channel", "name", "epoch", "prev", "agreement": {"id", "digest"},
     "roster": [{"device", "role", "index", "cred"}], "expires", "issued_at",
     "issuer", "suite", "confirm"}

is signed by the issuing dispatcher's device key. ``prev`` is the hex SHA-256 of the previous
signed commit (64 zeros for epoch 1). ``index`` is the member's SFrame sender index, ``null``
for observers: the right to send is visible in the commit alone, so a relay can enforce it
without any key. ``confirm`` is a key-confirmation value derived from the fresh epoch secret,
so a relay that seals a secret of its own to a member is caught (the member recomputes it).

:meth:`Commit.decode` is strict: a channel id of 1-128 printable characters, lowercase hex
hashes and fingerprints of full length, a known role and a unique sender index per entry, and
only the AES-GCM SFrame suites (DESIGN §4a). Anything else is ``VerificationError(MALFORMED)``.
:func:`check_succession` checks a commit's place in its chain, from the commits alone: the next
epoch of the same channel, chained by hash, under the same agreement and name, and issued in
order (within :data:`MAX_CLOCK_SKEW`). The checks that need more than the commits (signatures,
agreement, issuer, roster) are in :func:`crypto.channel.verify_commit`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import struct
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from .encoding import b64d, b64e, canonical, text_field
from .encoding import field as get
from .errors import Refusal, VerificationError
from .identity import ROLES, check_device_id
from .sframe import CipherSuite

COMMIT_DOMAIN = "crossband/v1/commit"
GENESIS = "0" * 64
SENDER_BITS = 12  # up to 4096 senders per channel
MAX_ROSTER = 1 << SENDER_BITS
SECRET_LEN = 32
MAX_CHANNEL_ID = 128
MAX_NAME = 256
COMMIT_SUITES = frozenset({CipherSuite.AES_128_GCM_SHA256_128, CipherSuite.AES_256_GCM_SHA512_128})
"""DESIGN §4a: only the AES-GCM suites in commits (suites 1-3 have 32-80 bit tags)."""
MAX_CLOCK_SKEW = 300
"""Seconds two clocks may disagree: a commit's ``issued_at`` may be this much earlier than its
predecessor's (two dispatchers' clocks) and this much later than the verifier's ``now``."""
_HASH = re.compile(r"[0-9a-f]{64}")
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")


def _hex(obj: dict[str, Any], name: str, pattern: re.Pattern[str]) -> str:
    value: str = get(obj, name, str)
    if not pattern.fullmatch(value):
        raise VerificationError(Refusal.MALFORMED, f"field {name!r} is not a lowercase hex digest")
    return value


def _expand(secret: bytes, label: bytes, length: int = 32) -> bytes:
    return HKDFExpand(hashes.SHA256(), length, label).derive(secret)


def key_confirmation(secret: bytes, channel: str, epoch: int) -> bytes:
    return _expand(
        secret, b"crossband/v1 confirm\x00" + channel.encode() + struct.pack(">Q", epoch)
    )


def seal_info(channel: str, epoch: int, commit_hash: str) -> bytes:
    return (
        b"crossband/v1 epoch secret\x00"
        + channel.encode()
        + b"\x00"
        + struct.pack(">Q", epoch)
        + bytes.fromhex(commit_hash)
    )


@dataclass(frozen=True)
class RosterEntry:
    device: str
    role: str
    index: int | None  # SFrame sender index; None: may not send (observer)
    cred: str  # credential fingerprint

    def body(self) -> dict[str, Any]:
        return {"device": self.device, "role": self.role, "index": self.index, "cred": self.cred}


@dataclass(frozen=True)
class Commit:
    channel: str
    name: str
    epoch: int
    prev: str
    agreement_id: str
    agreement_digest: str
    roster: tuple[RosterEntry, ...]
    expires: int
    issued_at: int
    issuer: str
    suite: int
    confirm: bytes
    signature: bytes = field(repr=False)

    def body(self) -> dict[str, Any]:
        return {
            "v": 1,
            "channel": self.channel,
            "name": self.name,
            "epoch": self.epoch,
            "prev": self.prev,
            "agreement": {"id": self.agreement_id, "digest": self.agreement_digest},
            "roster": [e.body() for e in self.roster],
            "expires": self.expires,
            "issued_at": self.issued_at,
            "issuer": self.issuer,
            "suite": self.suite,
            "confirm": b64e(self.confirm),
        }

    def encode(self) -> dict[str, Any]:
        return {"body": self.body(), "sig": b64e(self.signature)}

    # The commit is frozen, so its hash and roster index are computed once, on first use: the
    # send path looks its own entry up on every frame, and a 500-entry scan cost ~18 µs.
    @cached_property
    def hash(self) -> str:
        return hashlib.sha256(canonical(self.encode())).hexdigest()

    @cached_property
    def _by_device(self) -> dict[str, RosterEntry]:
        index: dict[str, RosterEntry] = {}
        for e in self.roster:
            index.setdefault(e.device, e)  # the first entry wins, as a linear scan would
        return index

    def entry(self, device: str) -> RosterEntry | None:
        return self._by_device.get(device)

    def may_send(self, device: str) -> bool:
        """True if the commit gives ``device`` a sender index (observers have none)."""
        e = self.entry(device)
        return e is not None and e.index is not None

    def device_for_index(self, index: int) -> str | None:
        for e in self.roster:
            if e.index == index:
                return e.device
        return None

    @classmethod
    def decode(cls, obj: dict[str, Any]) -> Commit:
        """Decode a signed commit (the parsed ``{"body", "sig"}`` object); MALFORMED if any
        field is missing, of the wrong type or out of its range."""
        body = get(obj, "body", dict)
        if get(body, "v", int) != 1:
            raise VerificationError(Refusal.MALFORMED, "unknown commit version")
        agr = get(body, "agreement", dict)
        roster: list[RosterEntry] = []
        seen: set[str] = set()
        indices: set[int] = set()
        for raw in get(body, "roster", list):
            if not isinstance(raw, dict):
                raise VerificationError(Refusal.MALFORMED, "bad roster entry")
            index = raw.get("index")
            if index is not None and (
                not isinstance(index, int)
                or isinstance(index, bool)
                or not 0 <= index < MAX_ROSTER
                or index in indices
            ):
                raise VerificationError(Refusal.MALFORMED, "bad sender index")
            device = check_device_id(get(raw, "device", str))
            if device in seen:
                raise VerificationError(Refusal.MALFORMED, f"{device} twice in roster")
            seen.add(device)
            if index is not None:
                indices.add(index)
            role = get(raw, "role", str)
            if role not in ROLES:
                raise VerificationError(Refusal.MALFORMED, "unknown role in roster")
            roster.append(RosterEntry(device, role, index, _hex(raw, "cred", _FINGERPRINT)))
        suite = get(body, "suite", int)
        if suite not in COMMIT_SUITES:
            raise VerificationError(Refusal.MALFORMED, "SFrame suite not allowed in commits")
        return cls(
            channel=text_field(body, "channel", max_len=MAX_CHANNEL_ID),
            name=text_field(body, "name", max_len=MAX_NAME, min_len=0),
            epoch=get(body, "epoch", int),
            prev=_hex(body, "prev", _HASH),
            agreement_id=text_field(agr, "id", max_len=128),
            agreement_digest=_hex(agr, "digest", _FINGERPRINT),
            roster=tuple(roster),
            expires=get(body, "expires", int),
            issued_at=get(body, "issued_at", int),
            issuer=check_device_id(get(body, "issuer", str)),
            suite=int(suite),
            confirm=b64d(get(body, "confirm", str)),
            signature=b64d(get(obj, "sig", str)),
        )


def check_succession(
    c: Commit, previous: Commit | None, now: float, *, earlier: Commit | None = None
) -> None:
    """Refuse ``c`` unless it is the next link after ``previous`` (None: we hold none, so ``c``
    starts the chain at epoch 1 or is a join at a later epoch).

    Along a chain the channel id, its name and its agreement never change, and ``issued_at``
    never goes back by more than :data:`MAX_CLOCK_SKEW`; no commit is issued more than that
    ahead of ``now`` either (else it would make every honest successor look out of order).
    ``earlier``, when ``previous`` is None, is an older commit of the chain (a member re-added
    after a removal holds one): ``c`` must come after it and keep what it fixed."""
    if previous is not None:
        if c.channel != previous.channel:
            raise VerificationError(Refusal.WRONG_CHANNEL, c.channel)
        if c.epoch != previous.epoch + 1:
            raise VerificationError(Refusal.EPOCH_SKIP, f"epoch {c.epoch} after {previous.epoch}")
        if not hmac.compare_digest(c.prev, previous.hash):
            raise VerificationError(Refusal.WRONG_PREVIOUS, f"epoch {c.epoch}")
    elif c.epoch == 1 and c.prev != GENESIS:
        raise VerificationError(Refusal.WRONG_PREVIOUS, "epoch 1 must start from genesis")
    elif c.epoch < 1:
        raise VerificationError(Refusal.EPOCH_SKIP, f"epoch {c.epoch}")
    if previous is None and earlier is not None:
        if c.channel != earlier.channel:
            raise VerificationError(Refusal.WRONG_CHANNEL, c.channel)
        if c.epoch <= earlier.epoch:
            raise VerificationError(Refusal.EPOCH_SKIP, f"epoch {c.epoch} after {earlier.epoch}")
    before = previous or earlier
    if before is not None:
        if c.agreement_id != before.agreement_id or not hmac.compare_digest(
            c.agreement_digest, before.agreement_digest
        ):
            raise VerificationError(
                Refusal.AGREEMENT_CHANGED,
                f"epoch {c.epoch} cites agreement {c.agreement_id} ({c.agreement_digest[:8]}), "
                f"the channel's is {before.agreement_id} ({before.agreement_digest[:8]})",
            )
        if c.name != before.name:
            raise VerificationError(Refusal.CHANNEL_RENAMED, f"epoch {c.epoch} of {c.channel}")
        if c.issued_at < before.issued_at - MAX_CLOCK_SKEW:
            raise VerificationError(
                Refusal.ISSUED_OUT_OF_ORDER,
                f"epoch {c.epoch} issued at {c.issued_at}, epoch {before.epoch} at "
                f"{before.issued_at}",
            )
    if c.issued_at > now + MAX_CLOCK_SKEW:
        raise VerificationError(
            Refusal.ISSUED_IN_FUTURE, f"epoch {c.epoch} issued at {c.issued_at}, now {int(now)}"
        )
