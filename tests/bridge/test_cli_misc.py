"""The ``crossband`` CLI's plumbing: help, the command registry, log lines, safe public
outputs, the relay's identity key (the operator walk-through is in test_cli_keys.py)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.cli import main as cli
from tests.bridge.cli_helpers import REPO, run


def test_help_runs_as_console_script_and_module(tmp_path: Path) -> None:
    for module in ("bridge.cli.main", "bridge"):
        done = subprocess.run(
            [sys.executable, "-m", module, "--help"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            timeout=60,
        )
        assert done.returncode == 0 and "keys" in done.stdout and "audit" in done.stdout
    done = run("keys", "device", "issue", "--roles", "commander", cwd=tmp_path)
    assert done.returncode == 2 and "crossband keys device issue: error:" in done.stderr


def test_group_without_subcommand_prints_help(cb) -> None:
    code, _, err = cb("keys", "agreement")
    assert code == 2 and "sign" in err and "show" in err


def test_structured_log_lines(cb) -> None:
    code, _, err = cb(
        "--log-level", "info", "keys", "root", "create", "--agency", "mx-gn", "--out", "mx.key"
    )
    assert code == 0
    lines = err.strip().splitlines()
    assert any(
        "level=info" in line and 'msg="agency root created"' in line and "agency=mx-gn" in line
        for line in lines
    )
    assert all(line.startswith("ts=") for line in lines)


def test_audit_verify_is_registered(cb) -> None:
    code, out, _ = cb("audit", "verify", "no-such-audit.log")
    assert code == 1 and "cannot read" in out


def test_registry_skips_only_missing_command_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cbtest_broken_cmd.py").write_text("import cbtest_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "_COMMAND_MODULES", ["bridge.cli.keys", "cbtest_not_written_yet"])
    assert [m.__name__ for m in cli._command_modules()] == ["bridge.cli.keys"]
    monkeypatch.setattr(cli, "_COMMAND_MODULES", ["cbtest_broken_cmd"])
    with pytest.raises(ModuleNotFoundError) as excinfo:
        cli._command_modules()
    assert excinfo.value.name == "cbtest_no_such_dependency"


def test_public_outputs_never_replace_special_files_or_links(tmp_path: Path, cb) -> None:
    cb("keys", "root", "create", "--agency", "us-cbp", "--out", "us.key")
    # A device or pipe given as --out is written to, never replaced by a regular file.
    done = run("keys", "root", "public", "--root", "us.key", "--out", "/dev/stdout", cwd=tmp_path)
    assert done.returncode == 0 and '"agency":"us-cbp"' in done.stdout
    # A symlinked output keeps its link; the file it points to is replaced atomically.
    (tmp_path / "real.pub").write_text("old")
    (tmp_path / "link.pub").symlink_to("real.pub")
    assert cb("keys", "root", "public", "--root", "us.key", "--out", "link.pub")[0] == 0
    assert (tmp_path / "link.pub").is_symlink()
    assert json.loads((tmp_path / "real.pub").read_text())["agency"] == "us-cbp"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.pub", "real.pub", "us.key"]


def test_relay_identity_key(tmp_path: Path, cb) -> None:
    from crypto.encoding import b64d
    from crypto.keyfile import load_relay_key

    code, out, _ = cb("keys", "relay", "--id", "relay-blaine-1", "--out", "relay.key")
    assert code == 0
    assert stat.S_IMODE(os.stat(tmp_path / "relay.key").st_mode) == 0o600
    line = next(x for x in out.splitlines() if x.startswith("relay_key for endpoint configs:"))
    relay_id, key = load_relay_key(tmp_path / "relay.key", None)
    assert relay_id == "relay-blaine-1" and b64d(line.split(": ")[1]) == key.public.raw
    code, _, err = cb("keys", "relay", "--id", "relay-blaine-1", "--out", "relay.key")
    assert code == 2 and "refusing to overwrite" in err
