"""The demo is the project's main job: it must run headless and pass all of its checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_headless_and_every_check_holds(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bridge.cli.main",
            "demo",
            "--duration",
            "30",
            "--workdir",
            str(tmp_path / "demo"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = proc.stdout + proc.stderr
    failed = [line for line in out.splitlines() if "FAIL" in line or "ERROR" in line]
    assert proc.returncode == 0, "\n".join(failed) + "\n...\n" + out[-3000:]
    assert "ALL CHECKS PASSED" in out
    assert "plaintext found at the relay: 0" in out
    assert "FAIL" not in out
    for needle in (
        "emergency DECLARED",
        "floor queued",
        "removes ca-rcmp/gw-pacific",
        "got every missed message once, in order",
    ):
        assert needle in out, needle
    # The relay process it started is gone, and its audit log is on disk and verifies.
    assert (tmp_path / "demo" / "relay" / "audit.log").stat().st_size > 0


def test_demo_refuses_too_short_a_duration() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "demo", "--duration", "5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "at least 30" in proc.stderr
