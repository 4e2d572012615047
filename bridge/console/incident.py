"""Incident channels from the dispatcher's side: open one under an agreement, add and remove
members, end it early.

:class:`IncidentDesk` knows the agreements this console may open channels under (verified
against the trust bundle: every party signed, valid now) and a directory of device credentials
(verified the same way: the ``console.directory`` files, the members of the console's channels,
and devices looked up in the relay's directory, which the endpoint verifies itself). Each
operation checks what the agreement allows before it asks the endpoint for the commit; the
outcome (``pending``, ``done``, ``failed`` and why) is kept in :attr:`IncidentDesk.last` for
the page. Ending a channel early is a commit whose expiry is :data:`END_GRACE` seconds away.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from crypto.agreement import Agreement, verify_agreement
from crypto.channel import Commit
from crypto.errors import CrossbandError
from crypto.group import ChannelMember
from crypto.identity import Credential, TrustBundle, verify_credential

__all__ = ["END_GRACE", "IncidentDesk", "IncidentEndpoint", "IncidentError"]

END_GRACE = 5  # seconds: an ended channel's commit expires this soon
CHANNEL_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
MAX_HOURS = 24 * 30


class IncidentError(Exception):
    """An incident operation refused before anything was sent (safe to show)."""


class IncidentEndpoint(Protocol):
    cred: Credential
    trust: TrustBundle

    @property
    def channels(self) -> dict[str, ChannelMember]: ...

    async def commit(
        self,
        ch: str,
        members: list[tuple[Credential, str]],
        *,
        agreement: Agreement | None = None,
        name: str | None = None,
        expires: int | None = None,
    ) -> Commit: ...

    async def lookup(self, devices: list[str]) -> dict[str, Credential]: ...


class IncidentDesk:
    def __init__(
        self,
        endpoint: IncidentEndpoint,
        agreements: Iterable[Agreement] = (),
        directory: Iterable[Credential] = (),
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.endpoint = endpoint
        self.clock = clock
        now = clock()
        self.agreements = {a.id: verify_agreement(a, endpoint.trust, now) for a in agreements}
        self.directory: dict[str, Credential] = {}
        for cred in directory:
            self.directory[cred.device] = verify_credential(cred, endpoint.trust, now)
        self.last: dict[str, Any] = {}

    def learn_channel(self, ch: str) -> None:
        """Add a channel's agreement and its members' credentials (verified with its commit)."""
        member = self.endpoint.channels.get(ch)
        if member is None or member.commit is None:
            return
        if member.agreement is not None:
            self.agreements.setdefault(member.agreement.id, member.agreement)
        for entry in member.commit.roster:
            cred = member.credential(entry.device)
            if cred is not None:
                self.directory.setdefault(entry.device, cred)

    def as_json(self) -> dict[str, Any]:
        me = self.endpoint.cred
        return {
            "may_open": "dispatcher" in me.roles,
            "agreements": [
                {"id": a.id, "name": a.name, "parties": {k: list(v) for k, v in a.parties.items()}}
                for a in sorted(self.agreements.values(), key=lambda a: a.id)
            ],
            "directory": [
                {"device": c.device, "agency": c.agency, "alias": c.alias, "roles": list(c.roles)}
                for c in sorted(self.directory.values(), key=lambda c: c.device)
                if c.device != me.device
            ],
            "channels": {
                ch: m.agreement.id
                for ch, m in self.endpoint.channels.items()
                if m.agreement is not None and not m.removed
            },
            "last": dict(self.last),
        }

    # -- checks (raise IncidentError before anything is sent) ---------------------------------

    def _member(self, agreement: Agreement, device: Any, role: Any) -> tuple[Credential, str]:
        cred = self.directory.get(device) if isinstance(device, str) else None
        if cred is None:
            raise IncidentError(f"{device} is not in the directory")
        if not isinstance(role, str) or role not in cred.roles:
            raise IncidentError(f"{device} does not hold the role {role}")
        if not agreement.allows(cred.agency, role):
            raise IncidentError(f"agreement {agreement.id} does not allow {cred.agency} as {role}")
        return cred, role

    def check_open(self, spec: dict[str, Any]) -> tuple[str, str, Agreement, list[Any], int]:
        ch, name, aid = spec.get("channel"), spec.get("name"), spec.get("agreement")
        if not isinstance(ch, str) or not CHANNEL_ID.fullmatch(ch):
            raise IncidentError("a channel id is 1-64 of a-z 0-9 . _ - (starting a-z or 0-9)")
        if ch in self.endpoint.channels:
            raise IncidentError(f"channel {ch} exists already")
        if not isinstance(name, str) or not name.strip() or len(name) > 120:
            raise IncidentError("a channel needs a name (at most 120 characters)")
        agreement = self.agreements.get(aid) if isinstance(aid, str) else None
        if agreement is None:
            raise IncidentError("pick an agreement this console knows")
        hours = spec.get("hours")
        if not isinstance(hours, (int, float)) or not 0 < hours <= MAX_HOURS:
            raise IncidentError(f"the expiry is 0 to {MAX_HOURS} hours away")
        me = self.endpoint.cred
        if not agreement.allows(me.agency, "dispatcher") or "dispatcher" not in me.roles:
            raise IncidentError("this console may not open channels under that agreement")
        raw = spec.get("members")
        if not isinstance(raw, list) or not raw or len(raw) > 200:
            raise IncidentError("pick at least one member")
        members = [(me, "dispatcher")]
        for m in raw:
            if not isinstance(m, dict) or m.get("device") == me.device:
                raise IncidentError("a member is {device, role}, not this console")
            members.append(self._member(agreement, m.get("device"), m.get("role")))
        if len({c.device for c, _ in members}) != len(members):
            raise IncidentError("a device is listed twice")
        return ch, name.strip(), agreement, members, int(self.clock() + hours * 3600)

    def current(self, ch: Any) -> tuple[str, ChannelMember, Agreement, list[Any]]:
        member = self.endpoint.channels.get(ch) if isinstance(ch, str) else None
        if member is None or member.commit is None or member.agreement is None:
            raise IncidentError("not a channel of this console")
        roster = []
        for entry in member.commit.roster:
            cred = member.credential(entry.device)
            if cred is None:
                raise IncidentError(f"no verified credential for {entry.device}")
            roster.append((cred, entry.role))
        return str(ch), member, member.agreement, roster

    # -- operations ----------------------------------------------------------------------------

    async def run(self, op: str, ch: str, commit: Callable[[], Any]) -> None:
        """Carry out one commit, keeping its outcome in :attr:`last`."""
        self.last = {"op": op, "channel": ch, "state": "pending", "detail": ""}
        try:
            await commit()
        except (CrossbandError, TimeoutError, ValueError) as exc:
            self.last = {"op": op, "channel": ch, "state": "failed", "detail": str(exc)[:300]}
            return
        self.last = {"op": op, "channel": ch, "state": "done", "detail": ""}

    def plan(self, cmd: dict[str, Any]) -> tuple[str, str, Callable[[], Any]]:
        """(operation, channel, the commit to run) for a command; IncidentError if refused."""
        op, ep = cmd.get("t"), self.endpoint
        if op == "open":
            ch, name, agreement, members, expires = self.check_open(cmd)
            return (
                "open",
                ch,
                lambda: ep.commit(ch, members, agreement=agreement, name=name, expires=expires),
            )
        ch, _, agreement, roster = self.current(cmd.get("channel"))
        device = cmd.get("device")
        if op == "add":
            if any(c.device == device for c, _ in roster):
                raise IncidentError(f"{device} is a member already")
            added = [*roster, self._member(agreement, device, cmd.get("role"))]
            return "add", ch, lambda: ep.commit(ch, added)
        if op == "remove":
            if device == ep.cred.device or not any(c.device == device for c, _ in roster):
                raise IncidentError(f"{device} is not a member this console can remove")
            kept = [(c, r) for c, r in roster if c.device != device]
            return "remove", ch, lambda: ep.commit(ch, kept)
        if op == "end":
            ends = int(self.clock()) + END_GRACE
            return "end", ch, lambda: ep.commit(ch, roster, expires=ends)
        raise IncidentError("unknown incident operation")
