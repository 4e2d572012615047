"""The processes under test in ``bench/relay_bench.py``, and how their CPU is accounted.

- :class:`Relay` runs the real, unmodified ``python -m bridge.cli.relay`` with its own
  config, database and audit log (on the ordinary disk), pinned to ``RELAY_CPU`` with a raised
  ``RLIMIT_NOFILE``. Its config raises the per-session media rate limit and ``max_talk_time``
  so that saturation is the relay's CPU, not its policy.
- :class:`Forwarder` runs :func:`bench.relay_forwarder.forwarder_main`, the bare asyncio UDP
  forwarder, on the same CPU.
- :class:`Meter` measures one window: wall time, CPU used by the process under test and by
  this process, and CPU used by *foreign* processes (anything on the machine that is not part
  of the bench and not a kernel thread), so a figure taken while something else was running
  says so.
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.relay_load import UdpSink
from bridge.demo.relay_process import free_port
from crypto.identity import TrustBundle

ROOT = Path(__file__).resolve().parents[1]
# The source tree the relay process runs from (default: this checkout). Pointing it at a
# snapshot (``git archive HEAD | tar -x -C DIR``) measures a committed relay while the working
# tree is being edited, or an old relay against a new one.
RELAY_TREE = Path(os.environ.get("CROSSBAND_BENCH_RELAY_TREE") or ROOT)
RELAY_CPU, GEN_CPU = 0, 1
_CLK = os.sysconf("SC_CLK_TCK")


def raise_nofile() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _child_setup() -> None:  # in the relay/forwarder child, before exec
    raise_nofile()
    os.sched_setaffinity(0, {RELAY_CPU})


def _ticks(pid: int | str) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def cpu_seconds(pid: int) -> float:
    return _ticks(pid) / _CLK


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _foreign(mine: set[int]) -> dict[int, int]:
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in mine:
            continue
        try:
            if not Path(f"/proc/{name}/cmdline").read_bytes():
                continue  # a kernel thread
            out[int(name)] = _ticks(name)
        except OSError:
            continue
    return out


@dataclass
class Window:
    seconds: float
    target_cpu: float  # share of one CPU used by the process under test
    own_cpu: float  # ... by this load generator
    foreign_cpu: float  # ... by every other (non-kernel) process on the machine


class Meter:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.mine = {os.getpid(), pid}

    def start(self) -> None:
        self._t = time.perf_counter()
        self._target, self._own = cpu_seconds(self.pid), time.process_time()
        self._foreign = _foreign(self.mine)

    def stop(self) -> Window:
        dt = time.perf_counter() - self._t
        foreign = _foreign(self.mine)
        other = sum(t - self._foreign.get(p, 0) for p, t in foreign.items()) / _CLK
        return Window(
            dt,
            (cpu_seconds(self.pid) - self._target) / dt,
            (time.process_time() - self._own) / dt,
            max(0.0, other) / dt,
        )


class Relay:
    """The real relay process (``python -m bridge.cli.relay``), pinned to RELAY_CPU."""

    def __init__(
        self,
        tmp: Path,
        trust: TrustBundle,
        name: str,
        patch: str | None = None,
        wrap: list[str] | None = None,
        tree: Path | None = None,
    ) -> None:
        self.patch = patch  # run through bench.relay_patched with these patches
        self.wrap = wrap or []  # a command the relay runs under (py-spy record ... --)
        self.tree = tree or RELAY_TREE  # the source tree the relay runs from
        self.dir = tmp / name
        self.dir.mkdir()
        (self.dir / "trust.json").write_bytes(trust.encode())
        self.port, self.udp_port = free_port(), free_port(socket.SOCK_DGRAM)
        cfg = {
            "relay_id": "bench-relay",
            "host": "127.0.0.1",
            "port": self.port,
            "udp_port": self.udp_port,
            "trust_bundle": "trust.json",
            "database": "relay.db",
            "audit_log": "audit.log",
            "max_talk_time": 3600,
            "limits": {
                "media_rate": 1e6,
                "media_burst": 1e6,
                # the bench holds ~2,500 sessions and authenticates 100 at a time
                "max_connections": 20_000,
                "max_unauthenticated": 1_000,
            },
        }
        (self.dir / "relay.yaml").write_text(yaml.safe_dump(cfg))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        ready = self.dir / "ready.json"
        # relay_patched runs as a script so that ``bridge`` comes from RELAY_TREE alone
        patched = [str(ROOT / "bench" / "relay_patched.py"), self.patch or ""]
        module = patched if self.patch else ["-m", "bridge.cli.relay"]
        cmd = [sys.executable, *module, "--config", str(self.dir / "relay.yaml")]
        with open(self.dir / "relay.log", "ab") as log:
            self.proc = subprocess.Popen(
                [*self.wrap, *cmd, "--ready-file", str(ready)],
                cwd=self.tree,
                env={
                    **os.environ,
                    "PYTHONPATH": str(self.tree),
                    "CROSSBAND_BENCH_PROFILE": str(self.dir / "relay.prof"),
                },
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_child_setup,
            )
        deadline = time.monotonic() + 30
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((self.dir / "relay.log").read_text()[-2000:])
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        """The relay's own pid (the child of the wrapper, if it runs under one)."""
        assert self.proc is not None
        if not self.wrap:
            return self.proc.pid
        if not hasattr(self, "_child"):
            kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
            self._child = int(kids.split()[0])
        return self._child

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def loop_name(self) -> str:
        """The event loop class the relay reported (``bench.relay_patched`` only)."""
        lines = self.log_lines("event-loop: ")
        return lines[-1].split(": ", 1)[1] if lines else "?"

    def metrics(self) -> dict[str, float]:
        url = f"http://127.0.0.1:{self.port}/metrics"
        text = urllib.request.urlopen(url, timeout=30).read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if self.wrap:  # stop the relay; its wrapper then writes its output and exits
                try:
                    os.kill(self.pid, 15)
                except (OSError, ValueError, IndexError):
                    pass
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    pass
            if self.proc.poll() is not None:
                return
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log_lines(self, prefix: str) -> list[str]:
        text = (self.dir / "relay.log").read_text(errors="replace")
        return [line for line in text.splitlines() if line.startswith(prefix)]


class Forwarder:
    """The bare asyncio UDP forwarder, pinned to RELAY_CPU; ``count()`` asks it for its total."""

    def __init__(self, sinks: list[UdpSink], loop: str = "asyncio") -> None:
        self.loop = loop  # "asyncio" or "uvloop"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "bench" / "relay_bench.py"),
                "--forwarder",
                ",".join(str(s.addr[1]) for s in sinks),
            ],
            cwd=ROOT,
            env={**os.environ, "CROSSBAND_BENCH_LOOP": loop},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            preexec_fn=_child_setup,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self.ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.ctl.bind(("127.0.0.1", 0))
        self.ctl.settimeout(0.05)
        self._tag = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def count(self) -> int:
        """Datagrams received so far (asked again if the query drowned in a full buffer)."""
        for _ in range(100):
            self._tag += 1
            tag = str(self._tag).encode()
            self.ctl.sendto(b"STATS" + tag, ("127.0.0.1", self.port))
            deadline = time.monotonic() + 0.05
            while time.monotonic() < deadline:  # skip late answers to earlier queries
                try:
                    got, _, n = self.ctl.recv(64).partition(b" ")
                except TimeoutError:
                    break
                if got == tag:
                    return int(n)
        raise TimeoutError("forwarder does not answer")

    def stop(self) -> None:
        self.ctl.close()
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
