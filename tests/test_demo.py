"""The demo is the project's main job: it must run headless and pass all of its checks.

The run is checked from what it leaves behind as well as from what it prints: the summary's
fields parsed (not searched for a digit), every scripted check present and ``ok``, the relay
process gone, and the relay's audit log verified by ``crossband audit verify`` with the events
the incident must have produced. The memory search and the demo's checks around it are tested
on their own: reading nothing is a failure, never "plaintext found: 0".
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from bridge.demo import main as demo_main
from bridge.demo.main import Demo
from bridge.demo.memscan import MemoryScanError, process_memory

ROOT = Path(__file__).resolve().parents[1]
CHECKS = (
    "every member verified epoch 1 itself",
    "US radio call reached the Canadian gateway and the vessel as audio",
    "Mexican observer heard it with a verified burst seal",
    "simultaneous key-up: one talker at a time, the other waited",
    "the emergency preempted the US talker",
    "every position saw the channel's emergency state",
    "both dispatch messages reached the observer, signatures verified",
    "the removed gateway learned it is out",
    "after removal the others still hear, the removed gateway hears nothing",
    "the vessel got every missed message once, in order",
    "the vessel still holds every missed message exactly once, in order",
    "the relay's process memory was searched (and holds the public device ids)",
    "plaintext found at the relay (database, logs, audit log, memory): 0",
    "the relay's audit log verifies (hash chain intact)",
)
# The RCMP's Mumble channel and XMPP room (when murmurd and prosody are installed).
NATIVE_CHECKS = (
    "Cst.Tremblay's Mumble speech reached the Mexican observer, sealed by the bridge",
    "a US radio call was heard in the RCMP Mumble channel",
    "the XMPP officer's post reached US dispatch, signed by the bridge device",
    "US dispatch's reply reached the XMPP room",
)
SKIPPED = (
    "demo: Mumble channel skipped: murmurd is not installed (Debian package mumble-server)",
    "demo: XMPP room skipped: prosody is not installed (Debian package prosody)",
)
# What the relay must have audited during the incident (metadata only).
AUDITED = {"auth", "commit", "floor", "message", "disconnect"}


def summary_fields(out: str) -> dict[str, str]:
    """``name: value`` lines after the summary header, as a dict."""
    _, sep, tail = out.partition("==== Crossband demo summary ====")
    assert sep, "no summary"
    fields = {}
    for line in tail.splitlines():
        name, sep, value = line.partition(":")
        if sep and not line.startswith("result"):
            fields[name.strip()] = value.strip()
    return fields


def check_lines(out: str) -> list[tuple[str, bool]]:
    """Each ``CHECK`` line's text (name and detail) and whether it held."""
    return [(m[2], m[1] == "ok  ") for m in re.finditer(r"CHECK  (ok  |FAIL) (.+)$", out, re.M)]


def held(checks: list[tuple[str, bool]], name: str) -> bool | None:
    """Whether check ``name`` held (None: it never ran)."""
    for text, ok in checks:
        if text == name or text.startswith(name + " ("):
            return ok
    return None


def run_demo(workdir: Path, env: dict[str, str] | None = None) -> str:
    """Run ``crossband demo --duration 30``; its output, once it passed (exit 0)."""
    proc = subprocess.run(
        [
            sys.executable,
            *("-m", "bridge.cli.main", "demo", "--duration", "30", "--workdir", str(workdir)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    out = proc.stdout + proc.stderr
    failed = [line for line in out.splitlines() if "FAIL" in line or "ERROR" in line]
    assert proc.returncode == 0, "\n".join(failed) + "\n...\n" + out[-3000:]
    assert "result: ALL CHECKS PASSED" in out
    return out


def native_installed() -> bool:
    """Whether murmurd and prosody are on PATH; in CI (which installs them) they must be."""
    found = all(shutil.which(tool) for tool in ("murmurd", "prosody", "prosodyctl"))
    if not found and os.environ.get("CI"):
        pytest.fail(
            "murmurd/prosody missing; CI runs ./deploy/setup.sh --test, which installs them"
        )
    return found


def assert_servers_gone(out: str) -> None:
    """The servers the demo said it started no longer listen on their ports."""
    ports = [int(p) for p in re.findall(r"\((?:murmurd|prosody)\) on 127\.0\.0\.1:(\d+)", out)]
    assert len(ports) == 2, out[:3000]
    for port in ports:
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still listening"


def test_demo_runs_headless_and_every_check_holds(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    native = native_installed()
    out = run_demo(workdir)

    checks = check_lines(out)
    assert {name: held(checks, name) for name in CHECKS} == dict.fromkeys(CHECKS, True)
    if native:  # the RCMP's Mumble channel and XMPP room took part, and their servers stopped
        expected = dict.fromkeys(NATIVE_CHECKS, True)
        assert {name: held(checks, name) for name in NATIVE_CHECKS} == expected
        assert "xmpp:Cpl. Singh via ca-rcmp/xmpp-surrey: Marine unit 12" in out
        assert not any(line in out for line in SKIPPED)
        assert_servers_gone(out)
    else:
        assert all(line in out for line in SKIPPED)
    assert all(ok for _, ok in checks), [text for text, ok in checks if not ok]
    fields = summary_fields(out)
    assert fields["plaintext found at the relay"] == "0"
    assert fields["checks"] == f"{len(checks)} passed, 0 failed"
    assert int(fields["talk bursts"]) >= 6  # the script's six, then routine calls as time allows
    sent, delivered = (int(n) for n in fields["messages sent / delivered"].split(" / "))
    assert sent >= 5 and delivered >= sent
    for needle in ("emergency DECLARED", "floor queued", "removes ca-rcmp/gw-pacific"):
        assert needle in out, needle

    # The relay process the demo started is gone.
    pid = int(re.search(r"relay process (\d+) listening", out)[1])  # type: ignore[index]
    assert not Path(f"/proc/{pid}").exists()

    # Its audit log verifies with the operator's command and holds the incident's events.
    audit = workdir / "relay" / "audit.log"
    verify = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "audit", "verify", str(audit)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert re.search(rf"OK, {len(records)} records, chain intact", verify.stdout), verify.stdout
    events = {r["event"] for r in records}
    assert AUDITED <= events, f"missing from the audit log: {AUDITED - events}"


def test_demo_without_mumble_and_xmpp_says_so_and_passes(tmp_path: Path) -> None:
    """A PATH without murmurd and prosody: one plain line each, the rest runs and passes."""
    empty = tmp_path / "bin"
    empty.mkdir()
    out = run_demo(tmp_path / "demo", env={**os.environ, "PATH": str(empty)})
    lines = out.splitlines()
    assert [line for line in lines if line.startswith("demo: ")] == list(SKIPPED)
    checks = check_lines(out)
    assert {name: held(checks, name) for name in CHECKS} == dict.fromkeys(CHECKS, True)
    assert {name: held(checks, name) for name in NATIVE_CHECKS} == dict.fromkeys(NATIVE_CHECKS)
    assert "ca-rcmp/mumble-surrey" not in out and "ca-rcmp/xmpp-surrey" not in out


def test_demo_refuses_too_short_a_duration() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "demo", "--duration", "5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "at least 30" in proc.stderr


# -- the memory search --------------------------------------------------------------------------


def test_memory_of_a_child_process_is_read() -> None:
    marker = "crossband-memscan-marker-4f1c"
    code = f"import sys; m = {marker!r} * 2; print('ready', flush=True); sys.stdin.read()"
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        memory = process_memory(child.pid)
        assert (marker * 2).encode() in memory
    finally:
        child.communicate("", timeout=10)


def test_memory_of_a_process_that_is_gone_cannot_be_read() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    assert gone.wait(10) == 0  # exited and reaped: its /proc entry is gone
    with pytest.raises(MemoryScanError):
        process_memory(gone.pid)


class _FakeRelay:
    """What :meth:`Demo.final_checks` uses of the relay process, with a given pid."""

    def __init__(self, directory: Path, pid: int) -> None:
        self.dir = directory
        self.audit_log = directory / "audit.log"
        self.proc = SimpleNamespace(pid=pid)
        self.running = True

    def metrics(self) -> str:
        raise OSError("not running")

    def stop(self) -> None:
        self.running = False


def test_the_demo_fails_when_relay_memory_cannot_be_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay_dir = tmp_path / "relay"
    relay_dir.mkdir()
    for name in ("relay.db", "relay.log", "trust.json"):
        (relay_dir / name).write_bytes(b"no canary here")
    (relay_dir / "audit.log").write_bytes(b"")

    def unreadable(pid: int) -> bytes:
        raise MemoryScanError(f"no memory of process {pid} could be read")

    monkeypatch.setattr(demo_main, "process_memory", unreadable)
    lines: list[str] = []
    demo = Demo(tmp_path, 30, out=lambda text, flush=False: lines.append(text))
    demo.relay = _FakeRelay(relay_dir, 4242)  # type: ignore[assignment]
    demo.canaries = ["canary-0123456789ab"]
    demo.final_checks()
    assert demo.summary() is False
    checks = {c.name: c for c in demo.checks}
    searched = checks["the relay's process memory was searched (and holds the public device ids)"]
    assert not searched.ok and "could be read" in searched.detail
    assert not checks["plaintext found at the relay (database, logs, audit log, memory): 0"].ok
    assert "plaintext found at the relay: unknown" in lines
