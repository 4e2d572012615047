"""Start the real relay process on loopback for integration tests, and stop it afterwards."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bridge.endpoint import events as ev
from bridge.endpoint.endpoint import Endpoint
from tests.world import Device, World

ROOT = Path(__file__).resolve().parents[2]


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RelayProcess:
    """``python -m bridge.cli.relay`` with its own config, database and audit log."""

    def __init__(self, tmp: Path, world: World, **options: Any) -> None:
        self.dir = tmp / "relay"
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "trust.json").write_bytes(world.trust.encode())
        self.port = free_port()
        self.udp_port = free_port(socket.SOCK_DGRAM)
        cfg = {
            "relay_id": "test-relay",
            "host": "127.0.0.1",
            "port": self.port,
            "udp_port": self.udp_port,
            "trust_bundle": "trust.json",
            "database": "relay.db",
            "audit_log": "audit.log",
            "revocation_lists": [],
            **options,
        }
        self.config = self.dir / "relay.yaml"
        self.config.write_text(yaml.safe_dump(cfg))
        self.log = self.dir / "relay.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self, timeout: float = 20.0) -> None:
        ready = self.dir / "ready.json"
        ready.unlink(missing_ok=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
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
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"relay exited: {self.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError("relay did not start")
            time.sleep(0.05)
        json.loads(ready.read_text())

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


async def endpoint(
    relay: RelayProcess, world: World, device: Device, tmp: Path, transport: str = "udp"
) -> Endpoint:
    ep = Endpoint(
        device.cred,
        device.keys,
        world.trust,
        relay.url,
        str(tmp / f"{device.id.replace('/', '_')}.db"),
        transport=transport,
    )
    await ep.start()
    await ep.wait_connected(15)
    return ep


async def next_event(ep: Endpoint, kind: type, timeout: float = 5.0, **match: Any) -> Any:
    """Wait for the next event of ``kind`` whose fields equal ``match``; skip others."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise TimeoutError(f"no {kind.__name__} {match} on {ep.device}")
        e = await asyncio.wait_for(ep.events.get(), left)
        if isinstance(e, kind) and all(getattr(e, k) == v for k, v in match.items()):
            return e


def drain(ep: Endpoint) -> list[ev.Event]:
    out = []
    while not ep.events.empty():
        out.append(ep.events.get_nowait())
    return out
