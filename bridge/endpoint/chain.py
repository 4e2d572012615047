"""Which refused commits an endpoint keeps as links of a channel's chain.

A member that refuses one commit must not be stuck on ``epoch-skip`` for good: the relay
acknowledges and forgets the refused delivery, and every later commit chains to it. So a
refused commit that is nonetheless *authentic* (:func:`crypto.channel.verify_link`: every
check of ``verify_commit`` but the roster's and the expiry's) is installed as a link
(:attr:`crypto.group.ChannelMember.refused`): the chain moves on, no key is derived for a
roster we refused, and we may not send until a commit we accept arrives. Typical case: we hold
a newer revocation list than the dispatcher and refuse its roster; its next commit, once it
has the list too, brings us back. A commit that outlives its agreement or issuer is not
authentic in this sense and is never kept.
"""

from __future__ import annotations

from crypto.agreement import RevocationList
from crypto.channel import CommitBundle, verify_link
from crypto.errors import Refusal, VerificationError
from crypto.group import ChannelMember, PreparedCommit
from crypto.identity import TrustBundle

# Refusals that say the commit is not a link of our chain (or not genuine): never kept.
NOT_A_LINK = frozenset(
    {Refusal.EPOCH_SKIP, Refusal.WRONG_PREVIOUS, Refusal.WRONG_CHANNEL, Refusal.BAD_SIGNATURE}
)


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
        commit = verify_link(
            bundle, trust, now, previous=member.last_commit, revocations=revocations
        )
    except VerificationError:
        raise reason from None
    return PreparedCommit(bundle, commit, member.last_commit, None, reason)
