"""``crossband keys`` makes composite roots, composite-signing dispatchers, composite-only trust
bundles and hybrid-minimum agreements; what it writes loads back (key files 0600) and carries
a commit that every check accepts."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.cli.main import main
from crypto.agreement import Agreement, verify_agreement
from crypto.channel import create_commit, verify_commit
from crypto.composite import CompositeSigningKey, CompositeVerifyKey
from crypto.errors import VerificationError
from crypto.identity import Credential, TrustBundle
from crypto.keyfile import load_device, load_root
from crypto.keys import Kem

AGENCIES = ("us-cbp", "ca-rcmp")
CLI = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> CLI:
    monkeypatch.chdir(tmp_path)

    def call(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        return code, out, err

    return call


def _issue(cb: CLI, agency: str, name: str, roles: str, *extra: str) -> tuple[int, str, str]:
    result: tuple[int, str, str] = cb(
        "keys", "device", "issue", "--root", f"{agency}.root.key", "--name", name,
        "--roles", roles, "--key-out", f"{name}.key", "--cred-out", f"{name}.cred", *extra,
    )  # fmt: skip
    return result


def test_composite_agencies_from_nothing(tmp_path: Path, cb: CLI) -> None:
    for agency in AGENCIES:
        code, out, _ = cb(
            "keys", "root", "create", "--agency", agency, "--out", f"{agency}.root.key",
            "--composite",
        )  # fmt: skip
        assert code == 0 and "created composite agency root" in out
        assert cb("keys", "root", "public", "--root", f"{agency}.root.key", "--out",
                  f"{agency}.pub")[0] == 0  # fmt: skip
    assert isinstance(load_root(tmp_path / "us-cbp.root.key", None).key, CompositeSigningKey)
    code, out, _ = cb(
        "keys", "bundle", "--pub", "us-cbp.pub", "--pub", "ca-rcmp.pub", "--out", "trust.json",
        "--min-signature", "composite",
    )  # fmt: skip
    assert code == 0 and "min signature composite" in out
    trust = TrustBundle.decode((tmp_path / "trust.json").read_bytes())
    assert trust.requires_composite

    code, out, _ = _issue(cb, "us-cbp", "disp", "dispatcher,member", "--composite")
    assert code == 0 and "signed composite" in out and "kem mlkem768x25519" in out
    code, out, _ = _issue(cb, "ca-rcmp", "boat", "member")
    assert code == 0 and "kem mlkem768x25519" in out  # hybrid is the default
    for name in ("disp", "boat"):
        assert stat.S_IMODE((tmp_path / f"{name}.key").stat().st_mode) == 0o600
        code, out, _ = cb("keys", "verify", "--bundle", "trust.json", f"{name}.cred")
        assert code == 0 and out.startswith("OK credential"), out

    code, out, _ = cb(
        "keys", "agreement", "create", "--id", "pq", "--name", "PQ", "--party",
        "us-cbp=dispatcher,member", "--party", "ca-rcmp=member", "--out", "agr.json",
    )  # fmt: skip
    assert code == 0 and "minimum KEM: mlkem768x25519" in out
    for agency in AGENCIES:
        assert cb("keys", "agreement", "sign", "--root", f"{agency}.root.key", "agr.json")[0] == 0
    code, out, _ = cb("keys", "verify", "--bundle", "trust.json", "agr.json")
    assert code == 0, out

    now = int(time.time())
    agreement = verify_agreement(Agreement.decode((tmp_path / "agr.json").read_bytes()), trust, now)
    _, disp_keys = load_device(tmp_path / "disp.key", None)
    assert disp_keys.statement is not None
    disp = Credential.decode((tmp_path / "disp.cred").read_bytes())
    boat = Credential.decode((tmp_path / "boat.cred").read_bytes())
    assert isinstance(disp.statement_key, CompositeVerifyKey) and boat.statement_key is None
    bundle, _ = create_commit(
        issuer=disp, issuer_keys=disp_keys, channel="inc", name="Incident",
        agreement=agreement, members=[(disp, "dispatcher"), (boat, "member")], previous=None,
        expires=now + 3600, now=now,
    )  # fmt: skip
    assert verify_commit(bundle, trust, now, previous=None) == bundle.commit


def test_composite_bundle_refuses_an_ed25519_root(tmp_path: Path, cb: CLI) -> None:
    assert cb("keys", "root", "create", "--agency", "us-cbp", "--out", "us-cbp.root.key")[0] == 0
    assert cb("keys", "root", "public", "--root", "us-cbp.root.key", "--out", "us.pub")[0] == 0
    code, _, err = cb(
        "keys", "bundle", "--pub", "us.pub", "--out", "trust.json", "--min-signature", "composite"
    )
    assert code == 2 and "Ed25519-only" in err
    assert not (tmp_path / "trust.json").exists()
    # The default policy still takes it, as before.
    assert cb("keys", "bundle", "--pub", "us.pub", "--out", "trust.json")[0] == 0
    assert "min_signature" not in json.loads((tmp_path / "trust.json").read_text())


def test_an_x25519_device_cannot_join_a_default_agreement(tmp_path: Path, cb: CLI) -> None:
    assert cb("keys", "root", "create", "--agency", "us-cbp", "--out", "us-cbp.root.key")[0] == 0
    assert _issue(cb, "us-cbp", "disp", "dispatcher,member")[0] == 0
    assert _issue(cb, "us-cbp", "gw", "member", "--kem", "x25519")[0] == 0
    args = ("--id", "a", "--name", "A", "--party", "us-cbp=dispatcher,member")
    assert cb("keys", "agreement", "create", *args, "--out", "agr.json")[0] == 0
    assert cb("keys", "agreement", "sign", "--root", "us-cbp.root.key", "agr.json")[0] == 0
    agreement = Agreement.decode((tmp_path / "agr.json").read_bytes())
    assert agreement.minimum_kem is Kem.MLKEM768_X25519
    _, keys = load_device(tmp_path / "disp.key", None)
    disp = Credential.decode((tmp_path / "disp.cred").read_bytes())
    gw = Credential.decode((tmp_path / "gw.cred").read_bytes())
    now = int(time.time())
    with pytest.raises(VerificationError, match="us-cbp/gw: HPKE key x25519 is weaker"):
        create_commit(
            issuer=disp, issuer_keys=keys, channel="inc", name="I", agreement=agreement,
            members=[(disp, "dispatcher"), (gw, "member")], previous=None,
            expires=now + 3600, now=now,
        )  # fmt: skip
