"""Which refused commits an endpoint keeps as links of a channel's chain.

A member that refuses one commit must not be stuck on ``epoch-skip`` for good: the relay
acknowledges and forgets the refused delivery, and every later commit chains to it. So a
refused commit that is nonetheless *authentic* — :func:`verify_link` — is installed as a link
(:attr:`crypto.group.ChannelMember.refused`): the chain moves on, no key is derived for a
roster we refused, and we may not send until a commit we accept arrives. Typical case: we hold
a newer revocation list than the dispatcher and refuse its roster; its next commit, once it
has the list too, brings us back.
"""

from __future__ import annotations

import hmac

from crypto.agreement import RevocationList, verify_agreement
from crypto.channel import COMMIT_DOMAIN, GENESIS, Commit, CommitBundle
from crypto.encoding import signing_input
from crypto.errors import Refusal, VerificationError
from crypto.group import ChannelMember, PreparedCommit
from crypto.identity import TrustBundle, verify_credential

# Refusals that say the commit is not a link of our chain (or not genuine): never kept.
NOT_A_LINK = frozenset(
    {Refusal.EPOCH_SKIP, Refusal.WRONG_PREVIOUS, Refusal.WRONG_CHANNEL, Refusal.BAD_SIGNATURE}
)


def verify_link(
    bundle: CommitBundle,
    trust: TrustBundle,
    now: float,
    previous: Commit | None,
    revocations: dict[str, RevocationList] | None = None,
) -> Commit:
    """Every check of :func:`crypto.channel.verify_commit` except those of the roster: the
    issuer's credential (against our own revocation lists) and signature, the chain (channel,
    epoch, previous hash), the agreement (signed by every party) and the issuer's right to
    dispatch under it. Raises VerificationError."""
    c = bundle.commit
    issuer = bundle.credentials.get(c.issuer)
    if issuer is None:
        raise VerificationError(Refusal.UNKNOWN_DEVICE, "no credential for the issuer")
    verify_credential(issuer, trust, now, revocations)
    issuer.sign_key.verify(c.signature, signing_input(COMMIT_DOMAIN, c.body()))
    if previous is not None:
        if c.channel != previous.channel:
            raise VerificationError(Refusal.WRONG_CHANNEL, c.channel)
        if c.epoch != previous.epoch + 1:
            raise VerificationError(Refusal.EPOCH_SKIP, f"epoch {c.epoch} after {previous.epoch}")
        if not hmac.compare_digest(c.prev, previous.hash):
            raise VerificationError(Refusal.WRONG_PREVIOUS, f"epoch {c.epoch}")
    elif c.epoch < 1 or (c.epoch == 1 and c.prev != GENESIS):
        raise VerificationError(Refusal.WRONG_PREVIOUS, "bad chain start")
    agreement = bundle.agreement
    if agreement.id != c.agreement_id or not hmac.compare_digest(
        agreement.digest, c.agreement_digest
    ):
        raise VerificationError(Refusal.AGREEMENT_MISMATCH, c.agreement_id)
    verify_agreement(agreement, trust, now)
    if not issuer.has_role("dispatcher") or not agreement.allows(issuer.agency, "dispatcher"):
        raise VerificationError(Refusal.NOT_DISPATCHER, c.issuer)
    return c


def prepare_link(
    member: ChannelMember,
    trust: TrustBundle,
    bundle: CommitBundle,
    now: float,
    revocations: dict[str, RevocationList] | None,
    reason: VerificationError,
) -> PreparedCommit:
    """``bundle`` as a link after ``member`` refused it for ``reason``, or raise ``reason``.

    Also how a persisted link is restored: it is never re-verified into keys."""
    if reason.code in NOT_A_LINK:
        raise reason
    try:
        commit = verify_link(bundle, trust, now, member.last_commit, revocations)
    except VerificationError:
        raise reason from None
    return PreparedCommit(bundle, commit, member.last_commit, None, reason)
