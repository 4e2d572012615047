"""Three agencies from nothing: roots, a trust bundle, an agreement every party signed, devices.

The one builder of the three-agency world, shared by the demo (:mod:`bridge.demo.stage`, which
also saves it as the files an operator would have) and the tests (``tests/world.py``). It reads
no clock: ``now`` is a parameter (the tests use the fixed :data:`NOW`, the demo the wall clock).

- :func:`make_world` creates a root per agency, pins them all in one trust bundle, and has each
  agency in ``signers`` sign the interoperability agreement in turn (US and Canadian devices
  may dispatch and talk, Mexico's observe).
- :meth:`World.device` issues a device credential under an agency root, with serials unique
  within the world (revocation is by serial).
- :meth:`World.commit` and :meth:`World.member` build channel commits and channel members.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from crypto.agreement import Agreement
from crypto.channel import CommitBundle, create_commit, latest_expiry
from crypto.counters import MemoryCounterStore
from crypto.group import ChannelMember
from crypto.identity import AgencyRoot, Credential, DeviceKeys, TrustBundle, issue_credential
from crypto.keyfile import save_device, save_root
from crypto.keys import Kem

NOW = 1_800_000_000
DAY = 86400
AGENCIES = ("us-cbp", "ca-rcmp", "mx-gn")
AGENCY_NAMES = {
    "us-cbp": "US Customs and Border Protection",
    "ca-rcmp": "Royal Canadian Mounted Police",
    "mx-gn": "Guardia Nacional (Mexico)",
}
PARTIES: dict[str, tuple[str, ...]] = {
    "us-cbp": ("dispatcher", "member"),
    "ca-rcmp": ("dispatcher", "member"),
    "mx-gn": ("observer",),
}


@dataclass(frozen=True)
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
    serials: Iterator[int] = field(default_factory=lambda: itertools.count(1), repr=False)

    def device(
        self,
        agency: str,
        name: str,
        roles: tuple[str, ...],
        kem: Kem = Kem.X25519,
        *,
        kind: str = "console",
        alias: str = "",
        days: int = 30,
    ) -> Device:
        """Issue ``agency/name`` a credential valid from a minute ago for ``days`` days."""
        keys = DeviceKeys.generate(kem)
        cred = issue_credential(
            self.roots[agency],
            name,
            keys,
            roles=roles,
            not_before=self.now - 60,
            not_after=self.now + days * DAY,
            serial=next(self.serials),
            kind=kind,
            alias=alias,
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
        agreement = agreement or self.agreement
        creds = [d.cred for d, _ in members]
        bundle, _ = create_commit(
            issuer=issuer.cred,
            issuer_keys=issuer.keys,
            channel=channel,
            name="Incident 1",
            agreement=agreement,
            members=[(d.cred, r) for d, r in members],
            previous=previous.commit if previous else None,
            expires=min(now + DAY, latest_expiry(agreement, issuer.cred, creds)),
            now=now,
        )
        return bundle

    def member(self, device: Device, store: MemoryCounterStore | None = None) -> ChannelMember:
        return ChannelMember(device.id, device.keys, self.trust, store or MemoryCounterStore())

    def save(self, directory: Path) -> None:
        """Write what each agency's operators would hold: ``keys/`` (root and device keys,
        0600, unencrypted; credentials), ``trust.json`` and ``agreement.json``."""
        keys = directory / "keys"
        keys.mkdir(parents=True, exist_ok=True)
        for agency, root in self.roots.items():
            save_root(keys / f"{agency}.root.key", root, None)
        for device_id, d in self.devices.items():
            stem = device_id.replace("/", "_")
            save_device(keys / f"{stem}.key", device_id, d.keys, None)
            (keys / f"{stem}.cred").write_bytes(d.cred.encode())
        (directory / "trust.json").write_bytes(self.trust.encode())
        (directory / "agreement.json").write_bytes(self.agreement.encode())


def make_world(
    signers: tuple[str, ...] = AGENCIES,
    now: int = NOW,
    *,
    agreement_id: str = "shiprider-gl",
    agreement_name: str = "Great Lakes Shiprider",
    days: int = 365,
) -> World:
    """Roots for :data:`AGENCIES`, their trust bundle, and the agreement signed by ``signers``
    in that order (valid from an hour before ``now`` for ``days`` days)."""
    roots = {a: AgencyRoot.generate(a) for a in AGENCIES}
    trust = TrustBundle({a: r.public for a, r in roots.items()})
    parties: dict[str, list[str] | tuple[str, ...]] = dict(PARTIES)
    agreement = Agreement.create(
        agreement_id, agreement_name, parties, now - 3600, now + days * DAY
    )
    for a in signers:
        agreement = agreement.add_signature(roots[a])
    return World(roots, trust, agreement, now=now)
