"""Interoperability agreements and revocation lists (DESIGN §3).

An **agreement** names the agencies that may share a channel and the roles each may hold, with
a validity window, and must carry a signature from the pinned root of **every** party: no single
administrator can patch another country into a channel. Agencies sign in turn
(:meth:`Agreement.add_signature`), each over the same canonical body.

An agreement states the **minimum KEM** of the members' HPKE keys (``min_kem``): a commit
under it that seals an epoch secret to a weaker key is refused, by :func:`create_commit` and by
:func:`verify_commit` (:func:`Agreement.check_kem`). ``crossband keys agreement create``
writes :data:`DEFAULT_MIN_KEM`, ``mlkem768x25519`` (hybrid, post-quantum), unless told
``--min-kem x25519``; :meth:`Agreement.create` writes what it is given (None, for now its
default so that its callers of earlier versions keep working: no field). An agreement without
the field (every one of earlier versions) re-encodes without it, its signatures stay valid, and
it requires only ``x25519``, the one KEM it could have meant.

Signatures are those of each party's pinned root, of whichever kind it is (Ed25519 or
composite ML-DSA-65 + Ed25519, :mod:`crypto.composite`): a party that moves to a composite root
re-signs the same body, so the agreement's digest, and every commit that cites it, is kept.

A **revocation list** is signed by one agency root and lists the serials of that agency's
revoked device credentials; a higher ``number`` supersedes a lower one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .encoding import b64d, b64e, canonical, int_list, parse, signing_input, text_field
from .encoding import field as get
from .errors import Refusal, VerificationError
from .identity import (
    ROLES,
    AgencyRoot,
    Credential,
    TrustBundle,
    check_agency_id,
    check_window,
    shown,
)
from .keys import Kem, fingerprint

AGREEMENT_DOMAIN = "crossband/v1/agreement"
MAX_ID = 128
MAX_NAME = 256
REVOCATION_DOMAIN = "crossband/v1/revocation"
DEFAULT_MIN_KEM = Kem.MLKEM768_X25519
KEM_STRENGTH = {Kem.X25519: 0, Kem.MLKEM768_X25519: 1}


@dataclass(frozen=True)
class Agreement:
    """Which agencies may share channels under this agreement, in which roles."""

    id: str
    name: str
    parties: dict[str, tuple[str, ...]]  # agency -> roles its devices may hold
    not_before: int
    not_after: int
    signatures: dict[str, bytes] = field(default_factory=dict, repr=False)
    min_kem: Kem | None = None  # None: an agreement of an earlier version (x25519 suffices)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "v": 1,
            "id": self.id,
            "name": self.name,
            "parties": {a: sorted(r) for a, r in sorted(self.parties.items())},
            "not_before": self.not_before,
            "not_after": self.not_after,
        }
        if self.min_kem is not None:
            body["min_kem"] = self.min_kem.value
        return body

    @property
    def minimum_kem(self) -> Kem:
        return self.min_kem if self.min_kem is not None else Kem.X25519

    def check_kem(self, device: str, kem: Kem) -> None:
        """Refuse (ROLE_NOT_ALLOWED) a member whose HPKE key is weaker than ``min_kem``."""
        if KEM_STRENGTH[kem] < KEM_STRENGTH[self.minimum_kem]:
            raise VerificationError(
                Refusal.ROLE_NOT_ALLOWED,
                f"{device}: HPKE key {kem.value} is weaker than agreement {self.id}'s "
                f"minimum KEM {self.minimum_kem.value}",
            )

    @property
    def digest(self) -> str:
        """Identifies this agreement's content (not its signatures) in commits."""
        return fingerprint(canonical(self.body()))

    def allows(self, agency: str, role: str) -> bool:
        return role in self.parties.get(agency, ())

    def add_signature(self, root: AgencyRoot) -> Agreement:
        """Return a copy signed additionally by ``root`` (which must be a party)."""
        if root.agency not in self.parties:
            raise VerificationError(Refusal.AGENCY_NOT_IN_AGREEMENT, root.agency)
        sig = root.key.sign(signing_input(AGREEMENT_DOMAIN, self.body()))
        return replace(self, signatures={**self.signatures, root.agency: sig})

    def encode(self) -> bytes:
        sigs = {a: b64e(s) for a, s in sorted(self.signatures.items())}
        return canonical({"body": self.body(), "sigs": sigs})

    @classmethod
    def create(
        cls,
        id: str,
        name: str,
        parties: dict[str, list[str] | tuple[str, ...]],
        not_before: int,
        not_after: int,
        *,
        min_kem: Kem | None = None,
    ) -> Agreement:
        """A new, unsigned agreement. ``min_kem`` None (for now the default, so that callers of
        earlier versions keep working) writes no minimum; the CLI writes DEFAULT_MIN_KEM."""
        body: dict[str, Any] = {
            "v": 1,
            "id": id,
            "name": name,
            "parties": {a: sorted(r) for a, r in parties.items()},
            "not_before": not_before,
            "not_after": not_after,
        }
        if min_kem is not None:
            body["min_kem"] = Kem(min_kem).value
        return cls.decode({"body": body, "sigs": {}})

    @classmethod
    def decode(cls, data: bytes | dict[str, Any]) -> Agreement:
        obj = parse(data) if isinstance(data, bytes) else data
        body = get(obj, "body", dict)
        if get(body, "v", int) != 1:
            raise VerificationError(Refusal.MALFORMED, "unknown agreement version")
        parties: dict[str, tuple[str, ...]] = {}
        for agency, roles in get(body, "parties", dict).items():
            check_agency_id(agency)
            if not isinstance(roles, list) or not roles or any(r not in ROLES for r in roles):
                raise VerificationError(Refusal.MALFORMED, f"bad roles for {shown(agency)}")
            parties[agency] = tuple(sorted(set(roles)))
        if not parties:
            raise VerificationError(Refusal.MALFORMED, "agreement without parties")
        sigs = {check_agency_id(a): b64d(s) for a, s in get(obj, "sigs", dict).items()}
        min_kem = None
        if "min_kem" in body:
            try:
                min_kem = Kem(get(body, "min_kem", str))
            except ValueError:
                raise VerificationError(Refusal.MALFORMED, "unknown minimum KEM") from None
        return cls(
            min_kem=min_kem,
            id=text_field(body, "id", max_len=MAX_ID),
            name=text_field(body, "name", max_len=MAX_NAME, min_len=0),
            parties=parties,
            not_before=get(body, "not_before", int),
            not_after=get(body, "not_after", int),
            signatures=sigs,
        )


def verify_agreement(agreement: Agreement, bundle: TrustBundle, now: float) -> Agreement:
    """Check that every party signed ``agreement`` with its pinned root and that it is valid."""
    message = signing_input(AGREEMENT_DOMAIN, agreement.body())
    for agency in agreement.parties:
        root = bundle.root(agency)
        sig = agreement.signatures.get(agency)
        if sig is None:
            raise VerificationError(Refusal.AGREEMENT_UNSIGNED, f"not signed by {agency}")
        root.verify(sig, message)
    check_window(agreement.not_before, agreement.not_after, now, f"agreement {agreement.id}")
    return agreement


@dataclass(frozen=True)
class RevocationList:
    """An agency's list of revoked credential serials."""

    agency: str
    number: int
    issued_at: int
    serials: frozenset[int]
    signature: bytes = field(default=b"", repr=False)

    def body(self) -> dict[str, Any]:
        return {
            "v": 1,
            "agency": self.agency,
            "number": self.number,
            "issued_at": self.issued_at,
            "serials": sorted(self.serials),
        }

    def revokes(self, cred: Credential) -> bool:
        return cred.agency == self.agency and cred.serial in self.serials

    def encode(self) -> bytes:
        return canonical({"body": self.body(), "sig": b64e(self.signature)})

    @classmethod
    def create(
        cls, root: AgencyRoot, number: int, issued_at: int, serials: set[int] | frozenset[int]
    ) -> RevocationList:
        unsigned = cls(root.agency, number, issued_at, frozenset(serials))
        sig = root.key.sign(signing_input(REVOCATION_DOMAIN, unsigned.body()))
        return replace(unsigned, signature=sig)

    @classmethod
    def decode(cls, data: bytes | dict[str, Any]) -> RevocationList:
        obj = parse(data) if isinstance(data, bytes) else data
        body = get(obj, "body", dict)
        if get(body, "v", int) != 1:
            raise VerificationError(Refusal.MALFORMED, "unknown revocation list version")
        serials = int_list(body, "serials")
        return cls(
            agency=check_agency_id(get(body, "agency", str)),
            number=get(body, "number", int),
            issued_at=get(body, "issued_at", int),
            serials=frozenset(serials),
            signature=b64d(get(obj, "sig", str)),
        )


def verify_revocation_list(rl: RevocationList, bundle: TrustBundle) -> RevocationList:
    bundle.root(rl.agency).verify(rl.signature, signing_input(REVOCATION_DOMAIN, rl.body()))
    return rl
