"""A small three-agency world for tests: roots, a trust bundle, devices and an agreement."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from crypto.agreement import Agreement
from crypto.channel import CommitBundle, create_commit
from crypto.counters import MemoryCounterStore
from crypto.group import ChannelMember
from crypto.identity import AgencyRoot, Credential, DeviceKeys, TrustBundle, issue_credential
from crypto.keys import Kem

NOW = 1_800_000_000
AGENCIES = ("us-cbp", "ca-rcmp", "mx-gn")
_serials = itertools.count(1)


@dataclass
class Device:
    cred: Credential
    keys: DeviceKeys

    @property
    def id(self) -> str:
        return self.cred.device


@dataclass
class World:
    roots: dict[str, AgencyRoot]
    trust: TrustBundle
    agreement: Agreement
    devices: dict[str, Device] = field(default_factory=dict)
    now: int = NOW

    def device(
        self, agency: str, name: str, roles: tuple[str, ...], kem: Kem = Kem.X25519, **kw: object
    ) -> Device:
        keys = DeviceKeys.generate(kem)
        cred = issue_credential(
            self.roots[agency],
            name,
            keys,
            roles=roles,
            not_before=self.now - 60,
            not_after=self.now + 30 * 86400,
            serial=next(_serials),
            **kw,  # type: ignore[arg-type]
        )
        d = self.devices[cred.device] = Device(cred, keys)
        return d

    def commit(
        self,
        issuer: Device,
        members: list[tuple[Device, str]],
        previous: CommitBundle | None,
        channel: str = "inc-1",
        now: int | None = None,
        agreement: Agreement | None = None,
    ) -> CommitBundle:
        now = self.now if now is None else now
        bundle, _ = create_commit(
            issuer=issuer.cred,
            issuer_keys=issuer.keys,
            channel=channel,
            name="Incident 1",
            agreement=agreement or self.agreement,
            members=[(d.cred, r) for d, r in members],
            previous=previous.commit if previous else None,
            expires=now + 86400,
            now=now,
        )
        return bundle

    def member(self, device: Device, store: MemoryCounterStore | None = None) -> ChannelMember:
        return ChannelMember(device.id, device.keys, self.trust, store or MemoryCounterStore())


def make_world(signers: tuple[str, ...] = AGENCIES, now: int = NOW) -> World:
    roots = {a: AgencyRoot.generate(a) for a in AGENCIES}
    trust = TrustBundle({a: r.public for a, r in roots.items()})
    agreement = Agreement.create(
        "shiprider-gl",
        "Great Lakes Shiprider",
        {
            "us-cbp": ["dispatcher", "member"],
            "ca-rcmp": ["dispatcher", "member"],
            "mx-gn": ["observer"],
        },
        now - 3600,
        now + 365 * 86400,
    )
    for a in signers:
        agreement = agreement.add_signature(roots[a])
    return World(roots, trust, agreement, now=now)
