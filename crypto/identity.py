"""Agency roots, device credentials and the trust bundle (DESIGN §3).

An **agency root** is an Ed25519 key named by an agency id (``us-cbp``, ``ca-rcmp``, …). A
**device credential** is a canonical statement signed by the root::

    {"v": 1, "agency", "device", "kind", "alias", "roles": [...], "sign_key", "hpke_kem",
     "hpke_key", "not_before", "not_after", "serial"}

Device ids are globally unique because they are written ``agency/name`` and the credential's
``agency`` must be that prefix. A **trust bundle** maps agency ids to pinned root public keys;
nothing chains to anything else. :func:`verify_credential` checks the signature against the
pinned root of the credential's own agency, the validity window at ``now``, and revocation.

Post-quantum by policy (:mod:`crypto.composite`): a root may be a legacy Ed25519 key or a
composite ML-DSA-65 + Ed25519 key; what it signs carries a signature of its own kind in the same
``sig`` field (a composite root refuses an Ed25519-only signature). A credential may carry a
composite ``statement_key`` (body field present only then) with which its device signs its
long-lived statements (commits); per-frame messages, seals and checkpoints stay with the
Ed25519 ``sign_key``. A trust bundle's ``min_signature`` is ``ed25519`` (default: the field is
absent, every file of earlier versions verifies as before) or ``composite``: then every pinned
root must be composite, so every root-signed statement must carry both signatures, and a
commit must be signed with its issuer's composite statement key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from .composite import (
    COMPOSITE,
    ED25519,
    SIGNATURE_POLICIES,
    AnySigningKey,
    AnyVerifyKey,
    CompositeSigningKey,
    CompositeVerifyKey,
    kind_of,
    verify_key_from_bytes,
)
from .encoding import b64d, b64e, canonical, parse, signing_input
from .encoding import field as get
from .errors import Refusal, VerificationError
from .keys import HpkePrivateKey, HpkePublicKey, Kem, SigningKey, VerifyKey, fingerprint

if TYPE_CHECKING:
    from .agreement import RevocationList

CREDENTIAL_DOMAIN = "crossband/v1/credential"
ROLES = ("dispatcher", "member", "observer")
KINDS = ("radio-gateway", "console", "vessel", "messaging-gateway", "person")
# Matched with fullmatch: ``$`` alone would also accept a trailing newline ("us-cbp/gw\n").
AGENCY_ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
DEVICE_ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}/[a-z0-9][a-z0-9._-]{0,62}")


def shown(value: object) -> str:
    """A peer-supplied value as an error message may show it: the repr of a short string,
    otherwise only its type (no unbounded or non-text input in logs)."""
    if isinstance(value, str) and len(value) <= 64:
        return repr(value)
    return f"<{type(value).__name__}>"


MAX_ALIAS = 64
MAX_VERIFIED = 1 << 16  # credential signatures a trust bundle remembers as verified


def _alias(alias: str) -> str:
    if len(alias) > MAX_ALIAS or not alias.isprintable():
        raise VerificationError(Refusal.MALFORMED, f"alias must be printable, <= {MAX_ALIAS}")
    return alias


def check_agency_id(agency: str) -> str:
    if not isinstance(agency, str) or not AGENCY_ID_RE.fullmatch(agency):
        raise VerificationError(Refusal.MALFORMED, f"bad agency id {shown(agency)}")
    return agency


def check_device_id(device: str) -> str:
    if not isinstance(device, str) or not DEVICE_ID_RE.fullmatch(device):
        raise VerificationError(Refusal.MALFORMED, f"bad device id {shown(device)}")
    return device


@dataclass(frozen=True)
class AgencyRoot:
    """An agency's root signing key (kept offline in real use)."""

    agency: str
    key: AnySigningKey

    @classmethod
    def generate(cls, agency: str, *, composite: bool = False) -> AgencyRoot:
        key = CompositeSigningKey.generate() if composite else SigningKey.generate()
        return cls(check_agency_id(agency), key)

    @property
    def public(self) -> AnyVerifyKey:
        return self.key.public


@dataclass(frozen=True)
class Credential:
    """A device credential as signed by its agency root. Build with :func:`issue_credential`."""

    agency: str
    device: str
    kind: str
    alias: str
    roles: tuple[str, ...]
    sign_key: VerifyKey
    hpke_key: HpkePublicKey
    not_before: int
    not_after: int
    serial: int
    signature: bytes = field(repr=False)
    statement_key: CompositeVerifyKey | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "v": 1,
            "agency": self.agency,
            "device": self.device,
            "kind": self.kind,
            "alias": self.alias,
            "roles": sorted(self.roles),
            "sign_key": b64e(self.sign_key.raw),
            "hpke_kem": self.hpke_key.kem.value,
            "hpke_key": b64e(self.hpke_key.raw),
            "not_before": self.not_before,
            "not_after": self.not_after,
            "serial": self.serial,
        }
        if self.statement_key is not None:
            body["statement_key"] = b64e(self.statement_key.raw)
        return body

    def encode(self) -> bytes:
        return canonical({"body": self.body(), "sig": b64e(self.signature)}, checked=False)

    @cached_property
    def signed_bytes(self) -> bytes:
        """What the agency root signed (computed once: commits re-verify every member)."""
        return signing_input(CREDENTIAL_DOMAIN, self.body(), checked=False)

    @cached_property
    def fingerprint(self) -> str:
        return fingerprint(self.encode())

    def has_role(self, role: str) -> bool:
        return role in self.roles

    @classmethod
    def decode(cls, data: bytes | dict[str, Any]) -> Credential:
        obj = parse(data) if isinstance(data, bytes) else data
        body = get(obj, "body", dict)
        if get(body, "v", int) != 1:
            raise VerificationError(Refusal.MALFORMED, "unknown credential version")
        roles = get(body, "roles", list)
        if not roles or any(r not in ROLES for r in roles) or len(set(roles)) != len(roles):
            raise VerificationError(Refusal.MALFORMED, "bad roles")
        kind = get(body, "kind", str)
        if kind not in KINDS:
            raise VerificationError(Refusal.MALFORMED, f"unknown device kind {shown(kind)}")
        try:
            kem = Kem(get(body, "hpke_kem", str))
        except ValueError:
            raise VerificationError(Refusal.MALFORMED, "unknown HPKE KEM")
        agency = check_agency_id(get(body, "agency", str))
        device = check_device_id(get(body, "device", str))
        if device.split("/", 1)[0] != agency:
            raise VerificationError(Refusal.MALFORMED, "device id must start with its agency")
        statement_key = None
        if "statement_key" in body:
            statement_key = CompositeVerifyKey(b64d(get(body, "statement_key", str)))
        return cls(
            statement_key=statement_key,
            agency=agency,
            device=device,
            kind=kind,
            alias=_alias(get(body, "alias", str)),
            roles=tuple(sorted(roles)),
            sign_key=VerifyKey(b64d(get(body, "sign_key", str))),
            hpke_key=HpkePublicKey(kem, b64d(get(body, "hpke_key", str))),
            not_before=get(body, "not_before", int),
            not_after=get(body, "not_after", int),
            serial=get(body, "serial", int),
            signature=b64d(get(obj, "sig", str)),
        )


@dataclass
class DeviceKeys:
    """A device's private keys: Ed25519 for signing, HPKE for receiving epoch secrets, and
    optionally a composite key for its long-lived statements (commits)."""

    sign: SigningKey
    hpke: HpkePrivateKey
    statement: CompositeSigningKey | None = None

    @classmethod
    def generate(cls, kem: Kem = Kem.X25519, *, composite: bool = False) -> DeviceKeys:
        statement = CompositeSigningKey.generate() if composite else None
        return cls(SigningKey.generate(), HpkePrivateKey.generate(kem), statement)

    def __repr__(self) -> str:
        return f"DeviceKeys(sign={self.sign.public.fingerprint})"


def issue_credential(
    root: AgencyRoot,
    name: str,
    keys: DeviceKeys,
    *,
    roles: tuple[str, ...] | list[str],
    not_before: int,
    not_after: int,
    serial: int,
    kind: str = "console",
    alias: str = "",
) -> Credential:
    """Sign a credential for device ``agency/name`` with the agency root."""
    device = check_device_id(f"{root.agency}/{name}")
    unsigned = Credential(
        agency=root.agency,
        device=device,
        kind=kind,
        alias=alias or name,
        roles=tuple(sorted(roles)),
        sign_key=keys.sign.public,
        hpke_key=keys.hpke.public,
        not_before=not_before,
        not_after=not_after,
        serial=serial,
        signature=b"",
        statement_key=keys.statement.public if keys.statement is not None else None,
    )
    # Round-trip through decode so that anything we issue is something we accept.
    sig = root.key.sign(signing_input(CREDENTIAL_DOMAIN, unsigned.body()))
    return Credential.decode(canonical({"body": unsigned.body(), "sig": b64e(sig)}))


class TrustBundle:
    """The pinned root public keys of the agencies this party trusts, and the signature policy
    (``min_signature``: ``ed25519``, the default, or ``composite``)."""

    def __init__(
        self, roots: dict[str, AnyVerifyKey] | None = None, *, min_signature: str = ED25519
    ) -> None:
        if min_signature not in SIGNATURE_POLICIES:
            raise VerificationError(
                Refusal.MALFORMED, f"unknown min_signature {shown(min_signature)}"
            )
        self.min_signature = min_signature
        self.roots: dict[str, AnyVerifyKey] = {}
        # (credential fingerprint, root fingerprint) whose signature verified: a rekey of a
        # 500-member channel re-checks 500 credentials, each ML-DSA-65 verify costing ~0.7 ms.
        # The fingerprint is the SHA-256 of the whole encoding, signature included, so a hit
        # is the very bytes that verified under the very root; window and revocation are
        # checked every time.
        self._verified: set[tuple[str, str]] = set()
        for agency, key in (roots or {}).items():
            self.pin(agency, key)

    @property
    def requires_composite(self) -> bool:
        return self.min_signature == COMPOSITE

    def pin(self, agency: str, key: AnyVerifyKey) -> None:
        check_agency_id(agency)
        if self.requires_composite and not isinstance(key, CompositeVerifyKey):
            raise VerificationError(
                Refusal.BAD_SIGNATURE,
                f"root of {agency} is Ed25519-only; this trust bundle requires composite "
                "(ML-DSA-65 + Ed25519) roots",
            )
        self.roots[agency] = key

    def root(self, agency: str) -> AnyVerifyKey:
        try:
            return self.roots[agency]
        except KeyError:
            raise VerificationError(Refusal.UNPINNED_ROOT, f"no pinned root for {shown(agency)}")

    def encode(self) -> bytes:
        obj: dict[str, Any] = {"v": 1, "roots": {a: b64e(k.raw) for a, k in self.roots.items()}}
        if self.min_signature != ED25519:  # absent = default, as in every earlier bundle
            obj["min_signature"] = self.min_signature
        return canonical(obj)

    @classmethod
    def decode(cls, data: bytes) -> TrustBundle:
        obj = parse(data)
        if get(obj, "v", int) != 1:
            raise VerificationError(Refusal.MALFORMED, "unknown trust bundle version")
        if set(obj) - {"v", "roots", "min_signature"}:
            raise VerificationError(Refusal.MALFORMED, "unknown trust bundle field")
        policy = get(obj, "min_signature", str) if "min_signature" in obj else ED25519
        if policy == ED25519 and "min_signature" in obj:
            raise VerificationError(Refusal.MALFORMED, "default min_signature is written absent")
        roots = get(obj, "roots", dict)
        keys = {check_agency_id(a): verify_key_from_bytes(b64d(k)) for a, k in roots.items()}
        return cls(keys, min_signature=policy)


def verify_device_statement(
    cred: Credential, bundle: TrustBundle, signature: bytes, message: bytes
) -> None:
    """Verify a long-lived statement (a commit) signed by ``cred``'s device: with its composite
    statement key if the credential has one, else (legacy) with its Ed25519 key, which a
    bundle requiring composite refuses."""
    if cred.statement_key is not None:
        cred.statement_key.verify(signature, message)
        return
    if bundle.requires_composite:
        raise VerificationError(
            Refusal.BAD_SIGNATURE,
            f"{cred.device} has no composite statement key; this trust bundle requires composite",
        )
    cred.sign_key.verify(signature, message)


def sign_device_statement(keys: DeviceKeys, message: bytes) -> bytes:
    """Sign a long-lived statement with the device's composite key if it has one, else with
    its Ed25519 key (what :func:`verify_device_statement` expects of its credential)."""
    if keys.statement is not None:
        return keys.statement.sign(message)
    return keys.sign.sign(message)


def root_kind(root: AgencyRoot) -> str:
    return kind_of(root.key)


def check_window(not_before: int, not_after: int, now: float, what: str) -> None:
    if not_before > not_after:
        raise VerificationError(Refusal.MALFORMED, f"{what}: validity window is inverted")
    if now < not_before:
        raise VerificationError(Refusal.NOT_YET_VALID, f"{what} not valid before {not_before}")
    if now > not_after:
        raise VerificationError(Refusal.EXPIRED, f"{what} expired at {not_after}")


def verify_credential(
    cred: Credential,
    bundle: TrustBundle,
    now: float,
    revocations: dict[str, RevocationList] | None = None,
) -> Credential:
    """Verify ``cred`` against the pinned root of its agency at time ``now``.

    ``revocations`` maps agency ids to that agency's latest *verified* revocation list.
    Returns the credential so calls can be chained; raises :class:`VerificationError`.
    """
    root = bundle.root(cred.agency)
    seen = (cred.fingerprint, root.fingerprint)
    if seen not in bundle._verified:
        root.verify(cred.signature, cred.signed_bytes)
        if len(bundle._verified) >= MAX_VERIFIED:
            bundle._verified.clear()
        bundle._verified.add(seen)
    check_window(cred.not_before, cred.not_after, now, f"credential of {cred.device}")
    if revocations:
        rl = revocations.get(cred.agency)
        if rl is not None and rl.revokes(cred):
            raise VerificationError(Refusal.REVOKED, f"{cred.device} serial {cred.serial}")
    return cred
