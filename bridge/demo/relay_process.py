"""The real relay as a child process on loopback, for the demo and the integration tests.

:class:`RelayProcess` writes a relay config into its own directory (trust bundle, SQLite
database, audit log, log file), runs ``python -m bridge.cli.relay --config … --ready-file …``,
waits (with a deadline that fails) until the relay says it listens, and stops it: SIGTERM, then
SIGKILL if it does not exit. ``tests/bridge/harness.py`` builds on it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from crypto.identity import TrustBundle

ROOT = Path(__file__).resolve().parents[2]  # the directory that holds the bridge package


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RelayProcess:
    """One relay process with its own config, database and audit log in ``directory``."""

    def __init__(
        self, directory: Path, trust: TrustBundle, relay_id: str = "demo-relay", **options: Any
    ) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "trust.json").write_bytes(trust.encode())
        self.port = free_port()
        self.udp_port = free_port(socket.SOCK_DGRAM)
        cfg = {
            "relay_id": relay_id,
            "host": "127.0.0.1",
            "port": self.port,
            "udp_port": self.udp_port,
            "trust_bundle": "trust.json",
            "database": "relay.db",
            "audit_log": "audit.log",
            **options,
        }
        self.config = self.dir / "relay.yaml"
        self.config.write_text(yaml.safe_dump(cfg))
        self.log = self.dir / "relay.log"
        self.audit_log = self.dir / "audit.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 20.0) -> None:
        """Start the relay; return once it listens. Raises RuntimeError if it exits first (with
        the end of its log) and TimeoutError if it is not ready within ``timeout`` seconds."""
        ready = self.dir / "ready.json"
        ready.unlink(missing_ok=True)
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else "")}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bridge.cli.relay",
                    "--config",
                    str(self.config),
                    "--ready-file",
                    str(ready),
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_ready(ready, timeout)
        except BaseException:
            self.stop()  # never leave a relay running behind a failed start
            raise

    def _wait_ready(self, ready: Path, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while not ready.exists():  # the relay writes it whole and renames it into place
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the relay exited with {self.proc.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the relay was not ready within {timeout} s; see {self.log}")
            time.sleep(0.05)
        json.loads(ready.read_text())

    def metrics(self, timeout: float = 5.0) -> str:
        """The relay's ``/metrics`` page (Prometheus text; counters, no content)."""
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback)
            return str(response.read().decode())

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
