"""The ``crossband`` CLI stands up three agencies from nothing, as an operator would.

Most steps call :func:`bridge.cli.main.main` in-process (stdout capture is enough); the steps that
matter most for operators — a whole agency signing, the wrong passphrase, ``--help`` — run the
real CLI in a subprocess, so exit codes and stderr are exactly what a shell sees.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from tests.bridge.cli_helpers import run


def test_three_agencies_from_nothing(tmp_path: Path, cb) -> None:
    # 1. Three roots: us-cbp sealed with a passphrase, the other two unencrypted (warned).
    code, out, err = cb(
        "keys",
        "root",
        "create",
        "--agency",
        "us-cbp",
        "--out",
        "us-cbp.root.key",
        "--passphrase-env",
        "US_CBP_PASS",
    )
    assert code == 0 and "fingerprint:" in out and err == ""
    for agency in ("ca-rcmp", "mx-gn"):
        code, out, err = cb(
            "keys", "root", "create", "--agency", agency, "--out", f"{agency}.root.key"
        )
        assert code == 0 and "fingerprint:" in out
        assert err.count("unencrypted") == 1 and "level=warning" in err

    # 2. Public exports and a trust bundle of the three pinned roots.
    us = ("--root", "us-cbp.root.key", "--passphrase-env", "US_CBP_PASS")
    assert cb("keys", "root", "public", *us, "--out", "us-cbp.pub")[0] == 0
    for agency in ("ca-rcmp", "mx-gn"):
        assert (
            cb("keys", "root", "public", "--root", f"{agency}.root.key", "--out", f"{agency}.pub")[
                0
            ]
            == 0
        )
    assert set(json.loads((tmp_path / "us-cbp.pub").read_text())) == {"agency", "key"}
    code, out, _ = cb(
        "keys",
        "bundle",
        "--pub",
        "us-cbp.pub",
        "--pub",
        "ca-rcmp.pub",
        "--pub",
        "mx-gn.pub",
        "--out",
        "trust.json",
    )
    assert code == 0 and "3 pinned roots" in out

    # 3. Five devices: one hybrid KEM, one observer. Serials come from the counter file.
    code, out, _ = cb(
        "keys",
        "device",
        "issue",
        *us,
        "--name",
        "gw-1",
        "--roles",
        "member",
        "--kind",
        "radio-gateway",
        "--alias",
        "Blaine RoIP",
        "--days",
        "365",
        "--key-out",
        "gw-1.key",
        "--cred-out",
        "gw-1.cred",
    )
    assert code == 0 and "us-cbp/gw-1 serial 1" in out
    code, out, _ = cb(
        "keys",
        "device",
        "issue",
        *us,
        "--name",
        "disp-1",
        "--roles",
        "dispatcher,member",
        "--kem",
        "hybrid",
        "--key-out",
        "disp-1.key",
        "--cred-out",
        "disp-1.cred",
    )
    assert code == 0 and "us-cbp/disp-1 serial 2" in out and "kem mlkem768x25519" in out
    ca = ("--root", "ca-rcmp.root.key")
    assert (
        cb(
            "keys",
            "device",
            "issue",
            *ca,
            "--name",
            "cgs-1",
            "--roles",
            "member",
            "--kind",
            "vessel",
            "--key-out",
            "cgs-1.key",
            "--cred-out",
            "cgs-1.cred",
        )[0]
        == 0
    )
    assert (
        cb(
            "keys",
            "device",
            "issue",
            *ca,
            "--name",
            "disp-1",
            "--roles",
            "dispatcher,member",
            "--key-out",
            "ca-disp-1.key",
            "--cred-out",
            "ca-disp-1.cred",
            "--serial",
            "7",
        )[0]
        == 0
    )
    code, out, _ = cb(
        "keys",
        "device",
        "issue",
        "--root",
        "mx-gn.root.key",
        "--name",
        "obs-1",
        "--roles",
        "observer",
        "--kind",
        "person",
        "--key-out",
        "obs-1.key",
        "--cred-out",
        "obs-1.cred",
    )
    assert code == 0 and "roles observer" in out
    assert json.loads((tmp_path / "ca-rcmp.root.key.serials").read_text())["issued"] == [1, 7]
    code, _, err = cb(
        "keys", "device", "issue", *ca, "--name", "dup", "--roles", "member", "--serial", "7"
    )
    assert code == 2 and "serial 7 was already issued" in err
    code, _, err = cb(
        "keys", "device", "issue", *ca, "--name", "x", "--roles", "member", "--key-out", "gw-1.key"
    )
    assert code == 2 and "refusing to overwrite" in err

    # Every private key file is 0600; the credentials are public statements.
    keys = sorted(tmp_path.glob("*.key"))
    assert len(keys) == 8
    for path in keys:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for cred in ("gw-1", "disp-1", "cgs-1", "ca-disp-1", "obs-1"):
        code, out, _ = cb("keys", "verify", "--bundle", "trust.json", f"{cred}.cred")
        assert code == 0 and out.startswith("OK credential"), out

    # 4. A trilateral agreement, signed by each agency in turn.
    code, out, _ = cb(
        "keys",
        "agreement",
        "create",
        "--id",
        "shiprider-gl",
        "--name",
        "Great Lakes Shiprider",
        "--party",
        "us-cbp=dispatcher,member",
        "--party",
        "ca-rcmp=dispatcher,member",
        "--party",
        "mx-gn=observer",
        "--days",
        "30",
        "--out",
        "agr.json",
    )
    assert code == 0
    code, out, _ = cb("keys", "agreement", "sign", *us, "agr.json")
    assert code == 0 and "missing signatures: ca-rcmp, mx-gn" in out
    code, out, _ = cb("keys", "agreement", "sign", *ca, "agr.json")
    assert code == 0 and "missing signatures: mx-gn" in out

    code, out, _ = cb("keys", "agreement", "show", "--bundle", "trust.json", "agr.json")
    assert code == 0
    assert "signatures: 2 of 3 present; missing: mx-gn" in out
    assert "mx-gn" in out and "MISSING" in out and out.count("signed, verified") == 2
    code, out, _ = cb("keys", "verify", "--bundle", "trust.json", "agr.json")
    assert code == 1 and out.startswith("REFUSED agreement-unsigned: agreement shiprider-gl")

    # The last agency signs with the real CLI, in its own process.
    done = run("keys", "agreement", "sign", "--root", "mx-gn.root.key", "agr.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "signed by every party" in done.stdout
    code, out, _ = cb("keys", "agreement", "show", "agr.json")
    assert "signatures: 3 of 3 present" in out and "MISSING" not in out
    done = run("keys", "verify", "--bundle", "trust.json", "agr.json", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("OK agreement shiprider-gl")

    # 5. Revocation: gw-1 (serial 1) is revoked, then disp-1 too in the next list.
    code, out, _ = cb("keys", "revoke", *us, "--serial", "1", "--out", "us-cbp.crl")
    assert code == 0 and "revocation list 1" in out
    code, out, _ = cb(
        "keys", "verify", "--bundle", "trust.json", "--crl", "us-cbp.crl", "gw-1.cred"
    )
    assert code == 1 and out.startswith("REFUSED revoked: credential us-cbp/gw-1")
    code, out, _ = cb(
        "keys", "verify", "--bundle", "trust.json", "--crl", "us-cbp.crl", "disp-1.cred"
    )
    assert code == 0 and "revocation checked list 1" in out
    code, out, _ = cb(
        "keys", "revoke", *us, "--serial", "2", "--crl", "us-cbp.crl", "--out", "us-cbp.crl"
    )
    assert code == 0 and "revocation list 2" in out and "revoked serials 1, 2" in out
    for cred in ("gw-1", "disp-1"):
        code, out, _ = cb(
            "keys", "verify", "--bundle", "trust.json", "--crl", "us-cbp.crl", f"{cred}.cred"
        )
        assert code == 1 and "REFUSED revoked" in out
    # Another agency's list cannot be extended with this root.
    code, _, err = cb(
        "keys", "revoke", *ca, "--serial", "3", "--crl", "us-cbp.crl", "--out", "x.crl"
    )
    assert code == 2 and err.startswith("crossband: error:")

    # 6. The wrong passphrase: one clean line, exit 2, no traceback, nothing secret.
    done = run(
        "keys",
        "root",
        "public",
        "--root",
        "us-cbp.root.key",
        "--passphrase-env",
        "PP",
        "--out",
        "x.pub",
        env={"PP": "wrong"},
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("crossband: error:") and "wrong passphrase" in done.stderr
    assert "Traceback" not in done.stderr and "wrong" not in done.stdout
    assert len(done.stderr.strip().splitlines()) == 1
    code, _, err = cb("keys", "root", "public", "--root", "us-cbp.root.key", "--out", "x.pub")
    assert code == 2 and "--passphrase-env" in err


def test_verify_refusals(tmp_path: Path, cb) -> None:
    for agency in ("us-cbp", "ca-rcmp"):
        cb("keys", "root", "create", "--agency", agency, "--out", f"{agency}.key")
        cb("keys", "root", "public", "--root", f"{agency}.key", "--out", f"{agency}.pub")
    cb("keys", "bundle", "--pub", "us-cbp.pub", "--out", "us-only.json")
    cb("keys", "device", "issue", "--root", "ca-rcmp.key", "--name", "c1", "--roles", "member")
    code, out, _ = cb("keys", "verify", "--bundle", "us-only.json", "c1.cred")
    assert code == 1 and out.startswith("REFUSED unpinned-root: credential ca-rcmp/c1")

    cb("keys", "bundle", "--pub", "us-cbp.pub", "--pub", "ca-rcmp.pub", "--out", "trust.json")
    cred = json.loads((tmp_path / "c1.cred").read_text())
    cred["body"]["roles"] = ["dispatcher", "member"]
    (tmp_path / "forged.cred").write_text(json.dumps(cred))
    code, out, _ = cb("keys", "verify", "--bundle", "trust.json", "forged.cred")
    assert code == 1 and out.startswith("REFUSED bad-signature")
    (tmp_path / "junk").write_text("not json")
    code, out, _ = cb("keys", "verify", "--bundle", "trust.json", "junk")
    assert code == 1 and out.startswith("REFUSED malformed")

    # Two exports of one agency with different keys: refused, never silently pinned.
    cb("keys", "root", "create", "--agency", "us-cbp", "--out", "impostor.key")
    cb("keys", "root", "public", "--root", "impostor.key", "--out", "impostor.pub")
    code, _, err = cb(
        "keys", "bundle", "--pub", "us-cbp.pub", "--pub", "impostor.pub", "--out", "t2.json"
    )
    assert code == 2 and "different keys" in err and not (tmp_path / "t2.json").exists()

    # A key file that others can read is refused; so is an alias crypto would truncate.
    os.chmod(tmp_path / "us-cbp.key", 0o644)
    code, _, err = cb("keys", "root", "public", "--root", "us-cbp.key", "--out", "x.pub")
    assert code == 2 and "chmod 600" in err
    code, _, err = cb(
        "keys",
        "device",
        "issue",
        "--root",
        "ca-rcmp.key",
        "--name",
        "c2",
        "--roles",
        "member",
        "--alias",
        "x" * 65,
    )
    assert code == 2 and "alias" in err
    code, _, err = cb("keys", "root", "public", "--root", "missing.key", "--out", "x.pub")
    assert code == 2 and err.startswith("crossband: error:")
