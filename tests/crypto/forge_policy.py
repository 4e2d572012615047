"""What a genuine but hostile dispatcher can build without forging a signature: commits that
break the channel's policy (issue 9, fault 6), each signed with a valid dispatcher key.

``commit`` is :meth:`tests.world.World.commit` with every field a dispatcher chooses (name,
agreement, expiry, issue time); ``other_agreement`` is a second agreement every party signed,
as agencies that cooperate in several regions would hold; ``dispatcher`` issues a US
dispatcher credential that no roster lists.
"""

from __future__ import annotations

from crypto.agreement import Agreement
from crypto.channel import CommitBundle, create_commit
from crypto.identity import issue_credential
from tests.world import NOW, Device, World

DAY = 86400
YEAR = 365 * DAY


def commit(
    w: World,
    issuer: Device,
    members: list[tuple[Device, str]],
    previous: CommitBundle | None,
    *,
    name: str = "Incident 1",
    agreement: Agreement | None = None,
    expires: int | None = None,
    now: int = NOW,
) -> CommitBundle:
    """A commit on channel ``inc-1``, signed by ``issuer``, with the fields given."""
    bundle, _ = create_commit(
        issuer=issuer.cred,
        issuer_keys=issuer.keys,
        channel="inc-1",
        name=name,
        agreement=agreement or w.agreement,
        members=[(d.cred, r) for d, r in members],
        previous=previous.commit if previous else None,
        expires=now + DAY if expires is None else expires,
        now=now,
    )
    return bundle


def other_agreement(w: World, id: str = "shiprider-wide", *, years: int = 12) -> Agreement:
    """A second agreement, signed by every party of the world's, valid for ``years`` years and
    letting Mexico's devices talk (the world's lets them only observe)."""
    a = Agreement.create(
        id,
        "Shiprider, all waters",
        {"us-cbp": ["dispatcher", "member"], "ca-rcmp": ["dispatcher", "member"],
         "mx-gn": ["member", "observer"]},
        NOW - 3600,
        NOW + years * YEAR,
    )  # fmt: skip
    for agency in a.parties:
        a = a.add_signature(w.roots[agency])
    return a


def dispatcher(w: World, name: str, *, until: int | None = None) -> Device:
    """A US dispatcher with a valid credential (until ``until``, else 30 days)."""
    d = w.device("us-cbp", name, ("dispatcher", "member"))
    if until is None:
        return d
    cred = issue_credential(
        w.roots["us-cbp"], name, d.keys, roles=("dispatcher", "member"),
        not_before=NOW - 60, not_after=until, serial=next(w.serials),
    )  # fmt: skip
    return Device(cred, d.keys)
