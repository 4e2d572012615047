"""Commits each member can afford (issue 10): one member's view of a commit bundle.

A :class:`~crypto.channel.CommitBundle` carries every member's credential and sealed epoch
secret: for 500 hybrid (ML-KEM-768 + X25519) members that is 1.85 MB, delivered to *each*
member. A :class:`MemberView` carries, for one member, only

- the signed commit, with its roster given *against the previous commit* the member holds
  (``base``): runs of unchanged entries by position (``[start, count]``) and the entries that
  are new or changed in full, so an unchanged 500-member roster costs a few bytes (the whole
  roster is sent only to a member without the base: a joiner);
- the agreement only if the member's base cites another one (never, along one chain);
- the credentials whose fingerprints the member does not already hold;
- its own sealed secret, and nobody else's.

Nothing in a view is trusted by itself: :func:`rebuild` puts the member's
:class:`~crypto.channel.CommitBundle` back together (the commit exactly as signed, the
credentials from its cache and the view, its sealed secret) and the usual
:func:`~crypto.channel.verify_commit` / ``ChannelMember.prepare_commit`` check it all; a view
whose roster runs, entries, credentials or agreement differ from what the issuer signed fails
the commit's signature or its credential fingerprints. The format does not change the signed
:class:`~crypto.commit.Commit`: a view is a transport encoding of the bundle.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .agreement import Agreement
from .channel import Commit, CommitBundle
from .commit import MAX_ROSTER
from .encoding import b64d, b64e, canonical, parse
from .encoding import field as get
from .errors import Refusal, VerificationError
from .identity import Credential, check_device_id

VIEW_VERSION = 1
Op = tuple[int, int] | dict[str, Any]  # a run [start, count] of the base roster, or an entry


@dataclass(frozen=True)
class MemberView:
    device: str  # whose view
    base: str | None  # hash of the commit the roster ops apply to (None: the roster in full)
    header: dict[str, Any]  # the signed commit (encode()), its body's roster left empty
    ops: tuple[Op, ...]  # how the roster is rebuilt from the base's (see the module docstring)
    agreement: dict[str, Any] | None  # None: the one the base cites
    credentials: tuple[dict[str, Any], ...]  # those the member lacks
    sealed: bytes  # the member's sealed epoch secret

    def encode(self) -> bytes:
        return canonical(
            {
                "v": VIEW_VERSION,
                "device": self.device,
                "base": self.base,
                "header": self.header,
                "ops": [list(o) if isinstance(o, tuple) else o for o in self.ops],
                "agreement": self.agreement,
                "credentials": list(self.credentials),
                "sealed": b64e(self.sealed),
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> MemberView:
        obj = parse(data)
        if get(obj, "v", int) != VIEW_VERSION:
            raise VerificationError(Refusal.MALFORMED, "unknown commit view version")
        base = get(obj, "base", (str, type(None)))
        ops: list[Op] = []
        raw_ops = get(obj, "ops", list)
        if len(raw_ops) > MAX_ROSTER:
            raise VerificationError(Refusal.MALFORMED, "too many roster ops")
        for op in raw_ops:
            if isinstance(op, dict):
                ops.append(op)
            elif (
                isinstance(op, list)
                and len(op) == 2
                and all(isinstance(n, int) and not isinstance(n, bool) for n in op)
                and 0 <= op[0] < MAX_ROSTER
                and 0 < op[1] <= MAX_ROSTER
            ):
                ops.append((op[0], op[1]))
            else:
                raise VerificationError(Refusal.MALFORMED, "roster op")
        agreement = get(obj, "agreement", (dict, type(None)))
        creds = get(obj, "credentials", list)
        if not all(isinstance(c, dict) for c in creds):
            raise VerificationError(Refusal.MALFORMED, "credential")
        return cls(
            device=check_device_id(get(obj, "device", str)),
            base=base,
            header=get(obj, "header", dict),
            ops=tuple(ops),
            agreement=agreement,
            credentials=tuple(creds),
            sealed=b64d(get(obj, "sealed", str)),
        )


def _ops(new: list[dict[str, Any]], base: list[dict[str, Any]]) -> list[Op]:
    """Runs of ``base`` (by position) and full entries that spell ``new``."""
    where = {canonical(e): i for i, e in enumerate(base)}
    ops: list[Op] = []
    for e in new:
        i = where.get(canonical(e))
        last = ops[-1] if ops else None
        if i is None:
            ops.append(e)
        elif isinstance(last, tuple) and last[0] + last[1] == i:
            ops[-1] = (last[0], last[1] + 1)
        else:
            ops.append((i, 1))
    return ops


def member_view(
    bundle: CommitBundle, device: str, base: Commit | None, known: frozenset[str] = frozenset()
) -> MemberView:
    """``device``'s view of ``bundle``: against ``base`` (the commit it holds, normally the
    previous one; None for a joiner), without the credentials whose fingerprints are in
    ``known``. KeyError if nothing is sealed to ``device``."""
    return member_views(bundle, [device], base, known)[device]


def member_views(
    bundle: CommitBundle,
    devices: list[str],
    base: Commit | None,
    known: frozenset[str] = frozenset(),
) -> dict[str, MemberView]:
    """The views of several members that hold the same ``base`` and credentials: the roster
    ops and the credentials are worked out once (what a relay does for one commit)."""
    c = bundle.commit
    header = c.encode()
    roster = header["body"]["roster"]
    header = {**header, "body": {**header["body"], "roster": []}}
    ops: list[Op] = list(roster) if base is None else _ops(roster, base.encode()["body"]["roster"])
    same = base is not None and hmac.compare_digest(base.agreement_digest, bundle.agreement.digest)
    agreement = None if same else parse(bundle.agreement.encode())
    creds = tuple(
        parse(cred.encode())
        for cred in bundle.credentials.values()
        if cred.fingerprint not in known
    )
    base_hash = base.hash if base is not None else None
    return {
        d: MemberView(d, base_hash, header, tuple(ops), agreement, creds, bundle.sealed[d])
        for d in devices
    }


def rebuild(
    view: MemberView,
    base: Commit | None,
    base_agreement: Agreement | None,
    cache: Mapping[str, Credential],
) -> CommitBundle:
    """The bundle ``view`` stands for, to be verified as any other (the module docstring).
    ``base``: the commit the member holds whose hash the view names; ``base_agreement``: the
    agreement that commit cites; ``cache``: credentials it holds, by fingerprint. Refuses
    (VerificationError) a view that names another base or lacks a credential."""
    if view.base is not None:
        if base is None or not hmac.compare_digest(base.hash, view.base):
            raise VerificationError(Refusal.WRONG_PREVIOUS, "the view is against another commit")
        old = base.encode()["body"]["roster"]
    else:
        old = []
    roster: list[dict[str, Any]] = []
    for op in view.ops:
        if isinstance(op, tuple):
            start, count = op
            if start + count > len(old):
                raise VerificationError(Refusal.MALFORMED, "roster run beyond the base")
            roster += old[start : start + count]
        else:
            roster.append(op)
        if len(roster) > MAX_ROSTER:
            raise VerificationError(Refusal.MALFORMED, "roster too long")
    header = view.header
    body = get(header, "body", dict)
    commit = Commit.decode({**header, "body": {**body, "roster": roster}})
    if view.agreement is not None:
        agreement = Agreement.decode(view.agreement)
    elif base_agreement is not None:
        agreement = base_agreement
    else:
        raise VerificationError(Refusal.MALFORMED, "no agreement for the commit")
    given = {c.fingerprint: c for c in (Credential.decode(x) for x in view.credentials)}
    creds: dict[str, Credential] = {}
    for e in commit.roster:
        cred = given.get(e.cred) or cache.get(e.cred)
        if cred is None:
            raise VerificationError(Refusal.UNKNOWN_DEVICE, f"no credential for {e.device}")
        creds[e.device] = cred
    return CommitBundle(commit, agreement, creds, {view.device: view.sealed})
