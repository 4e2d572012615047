"""Channel commits: the signed chain that decides who is in a channel in which epoch (DESIGN §4).

A commit body::

    {"v": 1, "channel", "name", "epoch", "prev", "agreement": {"id", "digest"},
     "roster": [{"device", "role", "index", "cred"}], "expires", "issued_at",
     "issuer", "suite", "confirm"}

is signed by the issuing dispatcher's device key. ``prev`` is the hex SHA-256 of the previous
signed commit (64 zeros for epoch 1). ``index`` is the member's SFrame sender index, ``null``
for observers: the right to send is visible in the commit alone, so a relay can enforce it
without any key. ``confirm`` is a key-confirmation value derived from the fresh epoch secret,
so a relay that seals a secret of its own to a member is caught (the member recomputes it).

A :class:`CommitBundle` carries the signed commit plus what a member needs to check it: the
agreement (with every party's signature), the credentials of the issuer and every roster
member, and the epoch secret sealed with HPKE to each member (``info`` binds channel, epoch and
commit hash). :func:`verify_commit` performs every check and raises a precise
:class:`~crypto.errors.VerificationError`; membership is never taken from the relay.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from .agreement import Agreement, RevocationList, verify_agreement
from .encoding import b64d, b64e, canonical, parse, signing_input
from .encoding import field as get
from .errors import Refusal, VerificationError
from .identity import Credential, DeviceKeys, TrustBundle, check_device_id, verify_credential
from .sframe import CipherSuite

COMMIT_DOMAIN = "crossband/v1/commit"
GENESIS = "0" * 64
SENDER_BITS = 12  # up to 4096 senders per channel
MAX_ROSTER = 1 << SENDER_BITS
SECRET_LEN = 32


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
            roster.append(RosterEntry(device, get(raw, "role", str), index, get(raw, "cred", str)))
        prev = get(body, "prev", str)
        if len(prev) != 64:
            raise VerificationError(Refusal.MALFORMED, "bad previous hash")
        try:
            suite = CipherSuite(get(body, "suite", int))
        except ValueError:
            raise VerificationError(Refusal.MALFORMED, "unknown SFrame suite")
        return cls(
            channel=get(body, "channel", str),
            name=get(body, "name", str),
            epoch=get(body, "epoch", int),
            prev=prev,
            agreement_id=get(agr, "id", str),
            agreement_digest=get(agr, "digest", str),
            roster=tuple(roster),
            expires=get(body, "expires", int),
            issued_at=get(body, "issued_at", int),
            issuer=check_device_id(get(body, "issuer", str)),
            suite=int(suite),
            confirm=b64d(get(body, "confirm", str)),
            signature=b64d(get(obj, "sig", str)),
        )


@dataclass(frozen=True)
class CommitBundle:
    """A commit with the agreement, credentials and sealed secrets that accompany it."""

    commit: Commit
    agreement: Agreement
    credentials: dict[str, Credential]  # device -> credential (issuer and every member)
    sealed: dict[str, bytes]  # device -> HPKE(enc || ct) of the epoch secret

    def encode(self) -> bytes:
        return canonical(
            {
                "commit": self.commit.encode(),
                "agreement": parse(self.agreement.encode()),
                "credentials": [parse(c.encode()) for c in self.credentials.values()],
                "sealed": {d: b64e(s) for d, s in self.sealed.items()},
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> CommitBundle:
        obj = parse(data)
        creds = [Credential.decode(c) for c in get(obj, "credentials", list)]
        return cls(
            commit=Commit.decode(get(obj, "commit", dict)),
            agreement=Agreement.decode(get(obj, "agreement", dict)),
            credentials={c.device: c for c in creds},
            sealed={check_device_id(d): b64d(s) for d, s in get(obj, "sealed", dict).items()},
        )

    def without_secrets(self) -> CommitBundle:
        return CommitBundle(self.commit, self.agreement, self.credentials, {})


def verify_commit(
    bundle: CommitBundle,
    trust: TrustBundle,
    now: float,
    *,
    previous: Commit | None,
    revocations: dict[str, RevocationList] | None = None,
) -> Commit:
    """Run every check on a commit; return it or raise a precise VerificationError.

    ``previous`` is the last commit this party verified for the channel, or None if it has
    none (a member joining at epoch N accepts the chain from there, like an MLS Welcome).
    """
    c = bundle.commit
    creds = bundle.credentials
    issuer_cred = creds.get(c.issuer)
    if issuer_cred is None:
        raise VerificationError(Refusal.UNKNOWN_DEVICE, f"no credential for issuer {c.issuer}")
    verify_credential(issuer_cred, trust, now, revocations)
    issuer_cred.sign_key.verify(c.signature, signing_input(COMMIT_DOMAIN, c.body()))
    # The chain.
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
    if now > c.expires:
        raise VerificationError(Refusal.EXPIRED, f"channel {c.channel} expired")
    # The agreement: signed by every party, and the one the commit names.
    agreement = bundle.agreement
    if agreement.id != c.agreement_id or not hmac.compare_digest(
        agreement.digest, c.agreement_digest
    ):
        raise VerificationError(Refusal.AGREEMENT_MISMATCH, c.agreement_id)
    verify_agreement(agreement, trust, now)
    # The issuer: a dispatcher of an agency the agreement allows to dispatch.
    if not issuer_cred.has_role("dispatcher") or not agreement.allows(
        issuer_cred.agency, "dispatcher"
    ):
        raise VerificationError(Refusal.NOT_DISPATCHER, c.issuer)
    # The roster: every member credentialed, unrevoked, in a role both its credential and the
    # agreement give it; observers carry no sender index.
    for e in c.roster:
        cred = creds.get(e.device)
        if cred is None:
            raise VerificationError(Refusal.UNKNOWN_DEVICE, e.device)
        if not hmac.compare_digest(cred.fingerprint, e.cred):
            raise VerificationError(Refusal.MALFORMED, f"credential mismatch for {e.device}")
        verify_credential(cred, trust, now, revocations)
        if cred.agency not in agreement.parties:
            raise VerificationError(Refusal.AGENCY_NOT_IN_AGREEMENT, cred.agency)
        if not cred.has_role(e.role) or not agreement.allows(cred.agency, e.role):
            raise VerificationError(Refusal.ROLE_NOT_ALLOWED, f"{e.device} as {e.role}")
        if (e.role == "observer") != (e.index is None):
            raise VerificationError(Refusal.ROLE_NOT_ALLOWED, f"{e.device}: index vs role")
    return c


def create_commit(
    *,
    issuer: Credential,
    issuer_keys: DeviceKeys,
    channel: str,
    name: str,
    agreement: Agreement,
    members: list[tuple[Credential, str]],
    previous: Commit | None,
    expires: int,
    now: int,
    suite: CipherSuite = CipherSuite.AES_128_GCM_SHA256_128,
) -> tuple[CommitBundle, bytes]:
    """Build, sign and seal the next commit. Returns the bundle and the fresh epoch secret.

    Sender indices are kept for members that stay; newcomers get the lowest free index.
    """
    if len(members) > MAX_ROSTER:
        raise ValueError("roster too large")
    epoch = previous.epoch + 1 if previous else 1
    prev_hash = previous.hash if previous else GENESIS
    old = {e.device: e.index for e in previous.roster} if previous else {}
    staying = {c.device for c, _ in members}
    taken = {i for d, i in old.items() if i is not None and d in staying}
    free = (i for i in range(MAX_ROSTER) if i not in taken)
    roster = []
    for cred, role in sorted(members, key=lambda m: m[0].device):
        index: int | None = None
        if role != "observer":
            kept = old.get(cred.device)
            index = kept if kept is not None else next(free)
        roster.append(RosterEntry(cred.device, role, index, cred.fingerprint))
    secret = os.urandom(SECRET_LEN)
    unsigned = Commit(
        channel=channel,
        name=name,
        epoch=epoch,
        prev=prev_hash,
        agreement_id=agreement.id,
        agreement_digest=agreement.digest,
        roster=tuple(roster),
        expires=expires,
        issued_at=now,
        issuer=issuer.device,
        suite=int(suite),
        confirm=key_confirmation(secret, channel, epoch),
        signature=b"",
    )
    sig = issuer_keys.sign.sign(signing_input(COMMIT_DOMAIN, unsigned.body()))
    commit = Commit.decode({"body": unsigned.body(), "sig": b64e(sig)})
    info = seal_info(channel, epoch, commit.hash)
    creds = {c.device: c for c, _ in members}
    creds[issuer.device] = issuer
    sealed = {c.device: c.hpke_key.seal(secret, info) for c, _ in members}
    return CommitBundle(commit, agreement, creds, sealed), secret
