"""Agency roots, device credentials and the trust bundle (DESIGN §3).

An **agency root** is an Ed25519 key named by an agency id (``us-cbp``, ``ca-rcmp``, …). A
**device credential** is a canonical statement signed by the root::

    {"v": 1, "agency", "device", "kind", "alias", "roles": [...], "sign_key", "hpke_kem",
     "hpke_key", "not_before", "not_after", "serial"}

Device ids are globally unique because they are written ``agency/name`` and the credential's
``agency`` must be that prefix. A **trust bundle** maps agency ids to pinned root public keys;
nothing chains to anything else. :func:`verify_credential` checks the signature against the
pinned root of the credential's own agency, the validity window at ``now``, and revocation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

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
    key: SigningKey

    @classmethod
    def generate(cls, agency: str) -> AgencyRoot:
        return cls(check_agency_id(agency), SigningKey.generate())

    @property
    def public(self) -> VerifyKey:
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

    def body(self) -> dict[str, Any]:
        return {
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
        return cls(
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
    """A device's private keys: Ed25519 for signing, HPKE for receiving epoch secrets."""

    sign: SigningKey
    hpke: HpkePrivateKey

    @classmethod
    def generate(cls, kem: Kem = Kem.X25519) -> DeviceKeys:
        return cls(SigningKey.generate(), HpkePrivateKey.generate(kem))

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
    )
    # Round-trip through decode so that anything we issue is something we accept.
    sig = root.key.sign(signing_input(CREDENTIAL_DOMAIN, unsigned.body()))
    return Credential.decode(canonical({"body": unsigned.body(), "sig": b64e(sig)}))


class TrustBundle:
    """The pinned root public keys of the agencies this party trusts."""

    def __init__(self, roots: dict[str, VerifyKey] | None = None) -> None:
        self.roots: dict[str, VerifyKey] = dict(roots or {})

    def pin(self, agency: str, key: VerifyKey) -> None:
        self.roots[check_agency_id(agency)] = key

    def root(self, agency: str) -> VerifyKey:
        try:
            return self.roots[agency]
        except KeyError:
            raise VerificationError(Refusal.UNPINNED_ROOT, f"no pinned root for {shown(agency)}")

    def encode(self) -> bytes:
        return canonical({"v": 1, "roots": {a: b64e(k.raw) for a, k in self.roots.items()}})

    @classmethod
    def decode(cls, data: bytes) -> TrustBundle:
        obj = parse(data)
        if get(obj, "v", int) != 1:
            raise VerificationError(Refusal.MALFORMED, "unknown trust bundle version")
        roots = get(obj, "roots", dict)
        return cls({check_agency_id(a): VerifyKey(b64d(k)) for a, k in roots.items()})


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
    bundle.root(cred.agency).verify(cred.signature, cred.signed_bytes)
    check_window(cred.not_before, cred.not_after, now, f"credential of {cred.device}")
    if revocations:
        rl = revocations.get(cred.agency)
        if rl is not None and rl.revokes(cred):
            raise VerificationError(Refusal.REVOKED, f"{cred.device} serial {cred.serial}")
    return cred
