"""Commit bundles and their verification: who may change a channel, and how (DESIGN §4).

A :class:`CommitBundle` carries the signed commit (:mod:`crypto.commit`) plus what a member
needs to check it: the agreement (with every party's signature), the credentials of the issuer
and every roster member, and the epoch secret sealed with HPKE to each member (``info`` binds
channel, epoch and commit hash). :func:`verify_commit` performs every check and raises a precise
:class:`~crypto.errors.VerificationError`; membership is never taken from the relay.

:func:`verify_link` is :func:`verify_commit` without the checks of the roster and of the
channel's expiry: it says whether a commit a member refused is nonetheless *authentic* — its
issuer, signature, place in the chain, agreement and the issuer's right to dispatch under it —
so that the member may keep it as a link of the chain (:mod:`bridge.endpoint.chain`). Both run
the same code for what they share (:func:`_check_authority`).

A channel never outlives its authority: a commit's ``expires`` must not be later than the end
of the agreement's validity, of the issuing dispatcher's credential, nor of any roster member's
credential (:func:`latest_expiry`); :func:`verify_commit` refuses such a commit and
:func:`create_commit` refuses to build one, both with ``Refusal.EXPIRY_BEYOND_VALIDITY``.

Commit policy (what even a genuine dispatcher may not do, :func:`_check_authority`):

- the issuer, who knows every epoch secret it makes, is listed in the roster it issues
  (``ISSUER_NOT_LISTED``) and was a dispatcher in the previous one
  (``NOT_PREVIOUS_DISPATCHER``); a genesis commit, or a join where we hold no previous
  commit, has only the issuer's credential and the agreement to go by;
- the channel id, its name and its agreement are fixed for the chain (``WRONG_CHANNEL``,
  ``CHANNEL_RENAMED``, ``AGREEMENT_CHANGED``): a channel under another agreement is another
  channel;
- ``issued_at`` does not go back along the chain, nor lie ahead of ``now``, by more than
  :data:`~crypto.commit.MAX_CLOCK_SKEW` (``ISSUED_OUT_OF_ORDER``, ``ISSUED_IN_FUTURE``).

The chain rules are :func:`crypto.commit.check_succession`.

The commit itself and its derived values are re-exported here, so ``crypto.channel`` remains
the one import for callers.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable
from dataclasses import dataclass

from .agreement import Agreement, RevocationList, verify_agreement
from .commit import (
    COMMIT_DOMAIN,
    COMMIT_SUITES,
    GENESIS,
    MAX_CHANNEL_ID,
    MAX_CLOCK_SKEW,
    MAX_ROSTER,
    SECRET_LEN,
    SENDER_BITS,
    Commit,
    RosterEntry,
    check_succession,
    key_confirmation,
    seal_info,
)
from .encoding import b64d, b64e, canonical, parse, signing_input
from .encoding import field as get
from .errors import Refusal, VerificationError
from .identity import (
    Credential,
    DeviceKeys,
    TrustBundle,
    check_device_id,
    sign_device_statement,
    verify_credential,
    verify_device_statement,
)
from .sframe import CipherSuite

__all__ = [
    "COMMIT_DOMAIN",
    "COMMIT_SUITES",
    "GENESIS",
    "MAX_CHANNEL_ID",
    "MAX_CLOCK_SKEW",
    "MAX_ROSTER",
    "SECRET_LEN",
    "SENDER_BITS",
    "Commit",
    "CommitBundle",
    "RosterEntry",
    "check_expiry",
    "check_succession",
    "create_commit",
    "key_confirmation",
    "latest_expiry",
    "seal_info",
    "verify_commit",
    "verify_link",
]


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


def latest_expiry(
    agreement: Agreement, issuer: Credential, members: Iterable[Credential] = ()
) -> int:
    """The latest ``expires`` a commit may carry: the end of the agreement's validity, of the
    issuing dispatcher's credential or of any member's, whichever comes first."""
    return min([agreement.not_after, issuer.not_after, *(m.not_after for m in members)])


def check_expiry(
    expires: int, agreement: Agreement, issuer: Credential, members: Iterable[Credential] = ()
) -> None:
    """Refuse (EXPIRY_BEYOND_VALIDITY) an ``expires`` later than :func:`latest_expiry`; the
    detail names what it outlives."""
    if expires > agreement.not_after:
        raise VerificationError(
            Refusal.EXPIRY_BEYOND_VALIDITY,
            f"channel expires at {expires}, after agreement {agreement.id} ({agreement.not_after})",
        )
    for cred in (issuer, *members):
        if expires > cred.not_after:
            raise VerificationError(
                Refusal.EXPIRY_BEYOND_VALIDITY,
                f"channel expires at {expires}, after the credential of {cred.device} "
                f"({cred.not_after})",
            )


def _listed(c: Commit, creds: dict[str, Credential]) -> list[Credential]:
    """The credentials of the bundle that are those the roster names (by fingerprint)."""
    found = []
    for e in c.roster:
        cred = creds.get(e.device)
        if cred is not None and hmac.compare_digest(cred.fingerprint, e.cred):
            found.append(cred)
    return found


def _check_authority(
    bundle: CommitBundle,
    trust: TrustBundle,
    now: float,
    previous: Commit | None,
    revocations: dict[str, RevocationList] | None,
    earlier: Commit | None = None,
) -> None:
    """The checks :func:`verify_commit` and :func:`verify_link` share, in order: the issuer's
    credential and signature, the chain (:func:`~crypto.commit.check_succession`), the
    agreement (the one named, signed by every party), the expiry within the agreement's, the
    issuer's and the listed members' validity (:func:`check_expiry`; a member whose credential
    is missing is left to the roster check), and the issuer's right to dispatch: its
    credential and the agreement, its place in this roster and in the previous one. Raises
    VerificationError."""
    c = bundle.commit
    issuer_cred = bundle.credentials.get(c.issuer)
    if issuer_cred is None:
        raise VerificationError(Refusal.UNKNOWN_DEVICE, f"no credential for issuer {c.issuer}")
    verify_credential(issuer_cred, trust, now, revocations)
    verify_device_statement(issuer_cred, trust, c.signature, signing_input(COMMIT_DOMAIN, c.body()))
    check_succession(c, previous, now, earlier=earlier)
    # The agreement: signed by every party, and the one the commit names.
    agreement = bundle.agreement
    if agreement.id != c.agreement_id or not hmac.compare_digest(
        agreement.digest, c.agreement_digest
    ):
        raise VerificationError(Refusal.AGREEMENT_MISMATCH, c.agreement_id)
    verify_agreement(agreement, trust, now)
    # A channel never outlives the authority it was created under, nor any of its members.
    check_expiry(c.expires, agreement, issuer_cred, _listed(c, bundle.credentials))
    # The issuer: a dispatcher of an agency the agreement allows to dispatch, ...
    if not issuer_cred.has_role("dispatcher") or not agreement.allows(
        issuer_cred.agency, "dispatcher"
    ):
        raise VerificationError(Refusal.NOT_DISPATCHER, c.issuer)
    # ... who is a member of what it creates (it knows the secret), ...
    entry = c.entry(c.issuer)
    if entry is None or not hmac.compare_digest(entry.cred, issuer_cred.fingerprint):
        raise VerificationError(
            Refusal.ISSUER_NOT_LISTED,
            f"{c.issuer} is not in the roster of epoch {c.epoch} with this credential",
        )
    # ... and was a dispatcher of the channel it changes (by device: its credential may have
    # been renewed since).
    before = previous.entry(c.issuer) if previous is not None else None
    if previous is not None and (before is None or before.role != "dispatcher"):
        raise VerificationError(
            Refusal.NOT_PREVIOUS_DISPATCHER,
            f"{c.issuer} is not a dispatcher in epoch {previous.epoch}",
        )


def verify_link(
    bundle: CommitBundle,
    trust: TrustBundle,
    now: float,
    *,
    previous: Commit | None,
    revocations: dict[str, RevocationList] | None = None,
    earlier: Commit | None = None,
) -> Commit:
    """Every check of :func:`verify_commit` except those of the roster and of the channel's
    expiry (see the module docstring): the commit is authentic and the next link of the chain
    after ``previous``. Return it or raise VerificationError."""
    _check_authority(bundle, trust, now, previous, revocations, earlier)
    return bundle.commit


def verify_commit(
    bundle: CommitBundle,
    trust: TrustBundle,
    now: float,
    *,
    previous: Commit | None,
    revocations: dict[str, RevocationList] | None = None,
    earlier: Commit | None = None,
) -> Commit:
    """Run every check on a commit; return it or raise a precise VerificationError.

    ``previous`` is the last commit this party verified for the channel, or None if it has
    none (a member joining at epoch N accepts the chain from there, like an MLS Welcome).
    ``earlier``, with ``previous`` None, is an older commit of the chain this party holds (a
    member re-added after a removal): the commit must follow it and keep the channel's name
    and agreement (:func:`~crypto.commit.check_succession`).
    """
    _check_authority(bundle, trust, now, previous, revocations, earlier)
    c, creds, agreement = bundle.commit, bundle.credentials, bundle.agreement
    if now > c.expires:
        raise VerificationError(Refusal.EXPIRED, f"channel {c.channel} expired")
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
        agreement.check_kem(e.device, cred.hpke_key.kem)  # sealed to no weaker key
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
    An ``expires`` later than :func:`latest_expiry` (the agreement's, the issuer's or a
    member's end of validity) is refused with ``VerificationError(EXPIRY_BEYOND_VALIDITY)``,
    exactly as :func:`verify_commit` would refuse the commit; it is not clamped, because a
    channel that silently ends earlier than its dispatcher asked is a surprise in the middle
    of an incident. Callers that want "as long as allowed" pass
    ``min(wanted, latest_expiry(agreement, issuer, member_credentials))``.
    The rest of the commit policy (issuer listed, agreement and name kept, issue time) is left
    to :func:`verify_commit`, the one gate: what a caller asks for here is signed as asked.
    A member whose HPKE key cannot be sealed to (an X25519 point of small order) is refused
    with ``VerificationError(MALFORMED)`` naming the device; one whose KEM is weaker than the
    agreement's ``min_kem`` with ``ROLE_NOT_ALLOWED`` (:meth:`Agreement.check_kem`), as
    :func:`verify_commit` would refuse it. The commit is signed with the issuer's composite
    statement key if it has one (:func:`~crypto.identity.sign_device_statement`).
    """
    if len(members) > MAX_ROSTER:
        raise ValueError("roster too large")
    for cred, _ in members:  # no epoch secret sealed to a key weaker than the agreement's
        agreement.check_kem(cred.device, cred.hpke_key.kem)
    check_expiry(expires, agreement, issuer, [c for c, _ in members])
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
    sig = sign_device_statement(issuer_keys, signing_input(COMMIT_DOMAIN, unsigned.body()))
    commit = Commit.decode({"body": unsigned.body(), "sig": b64e(sig)})
    info = seal_info(channel, epoch, commit.hash)
    creds = {c.device: c for c, _ in members}
    creds[issuer.device] = issuer
    sealed = {}
    for cred, _ in members:
        try:
            sealed[cred.device] = cred.hpke_key.seal(secret, info)
        except VerificationError as exc:
            raise VerificationError(exc.code, f"{cred.device}: {exc.detail}") from None
    return CommitBundle(commit, agreement, creds, sealed), secret
