"""Forward secrecy core (crypto.keypackage): short-lived signed HPKE key packages, the newest
valid one chosen, epochs sealed to it, and its private half erased once opened — so a key
file captured afterwards opens no past epoch."""

from __future__ import annotations

import json

import pytest

from crypto.agreement import Agreement
from crypto.channel import create_commit
from crypto.commit import seal_info
from crypto.encoding import canonical
from crypto.errors import DecryptError, Refusal, VerificationError
from crypto.identity import AgencyRoot, Credential, DeviceKeys, issue_credential
from crypto.keypackage import (
    MAX_LIFETIME,
    KeyPackage,
    PackageKeys,
    create_key_package,
    is_package_sealed,
    newest,
    seal_to_newest,
    verify_key_package,
)
from crypto.keys import Kem

NOW = 1_800_000_000
DAY = 86400


def _setup(kem: Kem = Kem.MLKEM768_X25519):  # type: ignore[no-untyped-def]
    root = AgencyRoot.generate("us-cbp")
    devs = []
    for i, roles in enumerate((("dispatcher", "member"), ("member",))):
        keys = DeviceKeys.generate(kem)
        cred = issue_credential(
            root, f"d{i}", keys, roles=roles, not_before=NOW - 60, not_after=NOW + DAY,
            serial=i + 1,
        )  # fmt: skip
        devs.append((cred, keys))
    a = Agreement.create(
        "a", "A", {"us-cbp": ["dispatcher", "member"]}, NOW - 60, NOW + DAY, min_kem=kem
    ).add_signature(root)
    return devs, a


def _commit(devs: list[tuple[Credential, DeviceKeys]], a: Agreement):  # type: ignore[no-untyped-def]
    (disp, dkeys), (member, _) = devs
    return create_commit(
        issuer=disp, issuer_keys=dkeys, channel="inc", name="I", agreement=a,
        members=[(disp, "dispatcher"), (member, "member")], previous=None,
        expires=NOW + 3600, now=NOW,
    )  # fmt: skip


def test_a_stolen_key_file_opens_no_epoch_sealed_to_an_erased_package() -> None:
    devs, a = _setup()
    member, mkeys = devs[1]
    store = PackageKeys()
    kp, private = create_key_package(member, mkeys, 1, NOW)
    store.add(kp, private)
    bundle, secret = _commit(devs, a)
    bundle = seal_to_newest(bundle, secret, {member.device: [kp]}, NOW)
    c, sealed = bundle.commit, bundle.sealed[member.device]
    assert is_package_sealed(sealed)
    ref, opened = store.open(sealed, c.channel, c.epoch, c.hash)
    assert opened == secret
    store.erase(ref)
    # Afterwards: the device's key file (its static keys) and its store open nothing.
    info = seal_info(c.channel, c.epoch, c.hash)
    with pytest.raises(DecryptError):
        mkeys.hpke.open(sealed, info)
    with pytest.raises(DecryptError):
        mkeys.hpke.open(sealed[36:], info)
    with pytest.raises(DecryptError):
        store.open(sealed, c.channel, c.epoch, c.hash)
    assert len(store) == 0


def test_the_newest_valid_package_is_chosen() -> None:
    devs, _ = _setup()
    member, mkeys = devs[1]
    old, _ = create_key_package(member, mkeys, 1, NOW - 100)
    new, _ = create_key_package(member, mkeys, 2, NOW - 50)
    expired, _ = create_key_package(member, mkeys, 9, NOW - 7200, lifetime=3600)
    future, _ = create_key_package(member, mkeys, 8, NOW + 600)
    assert newest([old, expired, new, future], member, NOW) == new
    assert newest([expired], member, NOW) is None


def test_forged_foreign_or_long_lived_packages_are_refused() -> None:
    devs, _ = _setup()
    (disp, dkeys), (member, mkeys) = devs
    kp, _ = create_key_package(member, mkeys, 1, NOW)
    assert KeyPackage.decode(kp.encode()).encode() == kp.encode()
    verify_key_package(KeyPackage.decode(kp.encode()), member, NOW)
    forged, _ = create_key_package(member, dkeys, 1, NOW)  # signed with another device's key
    with pytest.raises(VerificationError) as err:
        verify_key_package(forged, member, NOW)
    assert err.value.code is Refusal.BAD_SIGNATURE
    with pytest.raises(VerificationError) as err:
        verify_key_package(kp, disp, NOW)
    assert err.value.code is Refusal.UNKNOWN_DEVICE
    with pytest.raises(VerificationError) as err:
        verify_key_package(kp, member, NOW + 3601)
    assert err.value.code is Refusal.EXPIRED
    with pytest.raises(ValueError):
        create_key_package(member, mkeys, 1, NOW, lifetime=MAX_LIFETIME + 1)
    obj = json.loads(kp.encode())
    obj["body"]["not_after"] = obj["body"]["not_before"] + MAX_LIFETIME + 1
    with pytest.raises(VerificationError):
        verify_key_package(KeyPackage.decode(canonical(obj)), member, NOW)
    for bad in ({"seq": -1}, {"cred": "AB" * 32}, {"hpke_kem": "rsa"}, {"v": 2}):
        obj = json.loads(kp.encode())
        obj["body"].update(bad)
        with pytest.raises(VerificationError) as err:
            KeyPackage.decode(canonical(obj))
        assert err.value.code is Refusal.MALFORMED


def test_an_x25519_package_under_a_hybrid_minimum_is_refused() -> None:
    devs, a = _setup()
    member, mkeys = devs[1]
    weak, _ = create_key_package(member, mkeys, 1, NOW, kem=Kem.X25519)
    bundle, secret = _commit(devs, a)
    with pytest.raises(VerificationError, match="weaker") as err:
        seal_to_newest(bundle, secret, {member.device: [weak]}, NOW)
    assert err.value.code is Refusal.ROLE_NOT_ALLOWED


def test_expired_private_halves_are_dropped() -> None:
    devs, _ = _setup(Kem.X25519)
    member, mkeys = devs[1]
    store = PackageKeys()
    for seq, at in ((1, NOW - 4000), (2, NOW)):
        kp, private = create_key_package(member, mkeys, seq, at)
        store.add(kp, private)
    with pytest.raises(ValueError):
        store.add(kp, DeviceKeys.generate().hpke)
    assert store.expire(NOW) == 1 and len(store) == 1
