"""Credentials, trust bundles, agreements, revocation lists and key files."""

from __future__ import annotations

import os
import stat
from dataclasses import replace

import pytest

from crypto.agreement import Agreement, RevocationList, verify_agreement, verify_revocation_list
from crypto.errors import KeyFileError, Refusal, VerificationError
from crypto.identity import (
    AgencyRoot,
    Credential,
    DeviceKeys,
    TrustBundle,
    issue_credential,
    verify_credential,
)
from crypto.keyfile import load_device, load_root, save_device, save_root
from crypto.keys import Kem
from tests.world import NOW, make_world


def test_credential_round_trip_and_verify() -> None:
    w = make_world()
    d = w.device("us-cbp", "gw-1", ("member",), kind="radio-gateway", alias="Blaine gateway")
    again = Credential.decode(d.cred.encode())
    assert again == d.cred
    assert verify_credential(again, w.trust, NOW) is again
    assert again.kind == "radio-gateway" and again.alias == "Blaine gateway"


@pytest.mark.parametrize("kem", list(Kem))
def test_credential_carries_either_kem(kem: Kem) -> None:
    w = make_world()
    d = w.device("ca-rcmp", "vessel-1", ("member",), kem=kem)
    assert Credential.decode(d.cred.encode()).hpke_key.kem is kem


def test_unpinned_root_refused() -> None:
    w = make_world()
    rogue = AgencyRoot.generate("xx-rogue")
    cred = issue_credential(
        rogue,
        "d",
        DeviceKeys.generate(),
        roles=("member",),
        not_before=NOW,
        not_after=NOW + 10,
        serial=1,
    )
    with pytest.raises(VerificationError) as e:
        verify_credential(cred, w.trust, NOW)
    assert e.value.code is Refusal.UNPINNED_ROOT


def test_credential_signed_by_other_agency_refused() -> None:
    w = make_world()
    # ca-rcmp's root signs a credential that claims to be us-cbp's.
    fake_root = AgencyRoot("us-cbp", w.roots["ca-rcmp"].key)
    cred = issue_credential(
        fake_root,
        "d",
        DeviceKeys.generate(),
        roles=("dispatcher",),
        not_before=NOW,
        not_after=NOW + 10,
        serial=1,
    )
    with pytest.raises(VerificationError) as e:
        verify_credential(cred, w.trust, NOW)
    assert e.value.code is Refusal.BAD_SIGNATURE


def test_tampered_credential_refused() -> None:
    w = make_world()
    d = w.device("us-cbp", "gw-1", ("member",))
    promoted = replace(d.cred, roles=("dispatcher", "member"))
    with pytest.raises(VerificationError) as e:
        verify_credential(promoted, w.trust, NOW)
    assert e.value.code is Refusal.BAD_SIGNATURE


def test_validity_window() -> None:
    w = make_world()
    d = w.device("us-cbp", "gw-1", ("member",))
    with pytest.raises(VerificationError) as e:
        verify_credential(d.cred, w.trust, d.cred.not_after + 1)
    assert e.value.code is Refusal.EXPIRED
    with pytest.raises(VerificationError) as e:
        verify_credential(d.cred, w.trust, d.cred.not_before - 1)
    assert e.value.code is Refusal.NOT_YET_VALID


def test_revocation_list() -> None:
    w = make_world()
    d = w.device("us-cbp", "gw-1", ("member",))
    other = w.device("us-cbp", "gw-2", ("member",))
    rl = RevocationList.create(w.roots["us-cbp"], 1, NOW, {d.cred.serial})
    rl = verify_revocation_list(RevocationList.decode(rl.encode()), w.trust)
    with pytest.raises(VerificationError) as e:
        verify_credential(d.cred, w.trust, NOW, {"us-cbp": rl})
    assert e.value.code is Refusal.REVOKED
    verify_credential(other.cred, w.trust, NOW, {"us-cbp": rl})
    # A list signed by another agency's root does not verify.
    forged = RevocationList.create(AgencyRoot("us-cbp", w.roots["mx-gn"].key), 2, NOW, set())
    with pytest.raises(VerificationError) as e:
        verify_revocation_list(forged, w.trust)
    assert e.value.code is Refusal.BAD_SIGNATURE


def test_agreement_needs_every_party() -> None:
    w = make_world(signers=("us-cbp", "ca-rcmp"))
    with pytest.raises(VerificationError) as e:
        verify_agreement(w.agreement, w.trust, NOW)
    assert e.value.code is Refusal.AGREEMENT_UNSIGNED
    signed = Agreement.decode(w.agreement.add_signature(w.roots["mx-gn"]).encode())
    assert verify_agreement(signed, w.trust, NOW) == signed


def test_agreement_signature_is_over_content() -> None:
    w = make_world()
    widened = replace(w.agreement, parties={**w.agreement.parties, "mx-gn": ("dispatcher",)})
    with pytest.raises(VerificationError) as e:
        verify_agreement(widened, w.trust, NOW)
    assert e.value.code is Refusal.BAD_SIGNATURE


def test_trust_bundle_round_trip() -> None:
    w = make_world()
    again = TrustBundle.decode(w.trust.encode())
    assert again.roots == w.trust.roots


@pytest.mark.parametrize("passphrase", [None, "correct horse"])
def test_key_files_0600_and_passphrase(tmp_path, passphrase: str | None) -> None:
    root = AgencyRoot.generate("us-cbp")
    keys = DeviceKeys.generate(Kem.MLKEM768_X25519)
    save_root(tmp_path / "root.key", root, passphrase)
    save_device(tmp_path / "dev.key", "us-cbp/gw-1", keys, passphrase)
    for name in ("root.key", "dev.key"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600
        raw = (tmp_path / name).read_bytes()
        if passphrase:  # no key material in the clear
            assert root.key.to_bytes() not in raw and keys.sign.to_bytes() not in raw
    assert load_root(tmp_path / "root.key", passphrase).public == root.public
    name, loaded = load_device(tmp_path / "dev.key", passphrase)
    assert name == "us-cbp/gw-1" and loaded.hpke.public.raw == keys.hpke.public.raw
    if passphrase:
        with pytest.raises(KeyFileError, match="passphrase"):
            load_root(tmp_path / "root.key", "wrong")
        with pytest.raises(KeyFileError, match="passphrase"):
            load_root(tmp_path / "root.key", None)


def test_loose_key_file_refused(tmp_path) -> None:
    save_root(tmp_path / "root.key", AgencyRoot.generate("us-cbp"), None)
    os.chmod(tmp_path / "root.key", 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_root(tmp_path / "root.key", None)


def test_long_alias_refused_not_truncated() -> None:
    w = make_world()
    with pytest.raises(VerificationError) as e:
        w.device("us-cbp", "gw-1", ("member",), alias="x" * 65)
    assert e.value.code is Refusal.MALFORMED


def test_inverted_validity_window_refused() -> None:
    w = make_world()
    cred = issue_credential(
        w.roots["us-cbp"],
        "d",
        DeviceKeys.generate(),
        roles=("member",),
        not_before=NOW + 10,
        not_after=NOW - 10,
        serial=5,
    )
    with pytest.raises(VerificationError) as e:
        verify_credential(cred, w.trust, NOW)
    assert e.value.code is Refusal.MALFORMED


def test_key_file_never_written_through_a_symlink(tmp_path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("not a key")
    (tmp_path / "root.key").symlink_to(target)
    with pytest.raises(KeyFileError, match="not a regular file"):
        save_root(tmp_path / "root.key", AgencyRoot.generate("us-cbp"), None)
    assert target.read_text() == "not a key"


def test_empty_passphrase_refused(tmp_path) -> None:
    with pytest.raises(KeyFileError, match="empty passphrase"):
        save_root(tmp_path / "root.key", AgencyRoot.generate("us-cbp"), "")


def test_damaged_root_key_file_is_a_key_file_error(tmp_path) -> None:
    from crypto.keyfile import seal_keyfile, write_private

    write_private(tmp_path / "root.key", seal_keyfile("agency-root", "us-cbp", {}, None))
    with pytest.raises(KeyFileError, match="damaged"):
        load_root(tmp_path / "root.key", None)
