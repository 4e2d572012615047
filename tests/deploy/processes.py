"""The services of the deployment as child processes of a test, on loopback.

:class:`ConfiguredRelay` is ``crossband relay`` run from an existing relay.yaml (the demo's
:class:`~bridge.demo.relay_process.RelayProcess` writes its own config); :class:`Process` is
any other ``crossband`` command, with its log in a file that :meth:`Process.wait_for` reads
with a deadline that fails. Both are stopped with SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from bridge.demo.relay_process import ROOT, RelayProcess

DEADLINE = 30.0  # seconds for any one thing to happen across processes


class ConfiguredRelay(RelayProcess):
    """The relay process run from an existing relay.yaml (RelayProcess writes its own); its
    start() waits for the ready file with a deadline, its stop() sends SIGTERM, then SIGKILL."""

    def __init__(self, config: Path, port: int, udp_port: int) -> None:
        self.dir = config.parent
        self.config = config
        self.port, self.udp_port = port, udp_port
        self.log = self.dir / "relay.log"
        self.audit_log = self.dir / "audit.log"
        self.proc = None


class Process:
    """``crossband ARGS`` as a child process with its output in ``log``; stopped by SIGTERM."""

    def __init__(self, log: Path, *args: str) -> None:
        self.log = log
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bridge.cli", "--log-level", "info", *args],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def wait_for(self, text: str, timeout: float = DEADLINE) -> str:
        """The first line of the log that contains ``text``; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log.read_text(errors="replace").splitlines():
                if text in line:
                    return line
            if self.proc.poll() is not None:
                break
            await asyncio.sleep(0.05)
        tail = self.log.read_text(errors="replace")[-2000:]
        raise AssertionError(f"no {text!r} within {timeout} s (exit {self.proc.poll()}):\n{tail}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode
