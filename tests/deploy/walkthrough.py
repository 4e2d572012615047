"""deploy/three-agency/ made real in a temporary folder: the README's walkthrough run, TLS for
loopback, and the configs pointed at loopback ports.

:func:`run_walkthrough` runs every ``sh`` block of the README in order, in the folder: a line
that starts with ``crossband`` is run in-process through :func:`bridge.cli.main.main` (the
real CLI; one interpreter instead of twenty), any other line by ``bash -euo pipefail``. A
command that fails raises. :func:`for_loopback` then changes only what a loopback run must
change, in the copy: addresses, ports, state paths, and the pasted ``relay_key``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bridge.cli.main import main as crossband
from bridge.demo.relay_process import free_port
from tests.bridge.test_config_pinning import make_ca

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
EXAMPLE = DEPLOY / "three-agency"
ENDPOINTS = ("us-cbp", "ca-rcmp", "mx-gn")
PASSPHRASES = {
    "CBP_ROOT_PASS": "cbp root: correct horse battery staple",
    "RCMP_ROOT_PASS": "rcmp root: tremble lighthouse gravel",
    "GN_ROOT_PASS": "gn root: mango cactus thunder parade",
}
_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.M | re.S)


def sh_blocks(readme: Path) -> list[str]:
    """The ``sh`` code blocks of a Markdown file, in order."""
    return _BLOCK.findall(readme.read_text())


def commands(block: str) -> list[str]:
    """The commands of a block: one per line, ``\\`` continuations joined, comments dropped."""
    out, pending = [], ""
    for raw in block.splitlines():
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if line and not line.startswith("#"):
            out.append(line)
    return out


@dataclass
class Walkthrough:
    folder: Path
    outputs: list[tuple[str, str]] = field(default_factory=list)  # (command, stdout)

    def output_of(self, prefix: str) -> str:
        (out,) = [o for c, o in self.outputs if c.startswith(prefix)]
        return out

    @property
    def relay_key(self) -> str:
        found = re.search(
            r"^relay_key for endpoint configs: (\S+)$",
            self.output_of("crossband keys relay "),
            re.M,
        )
        assert found, "crossband keys relay printed no relay_key"
        return found[1]


@contextlib.contextmanager
def _in(folder: Path, env: dict[str, str]) -> Iterator[None]:
    old_cwd, old_env = Path.cwd(), dict(os.environ)
    os.chdir(folder)
    os.environ.update(env)
    try:
        yield
    finally:
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)


def run_walkthrough(folder: Path) -> Walkthrough:
    """Run the README's ``sh`` blocks in ``folder`` (a copy of deploy/three-agency)."""
    blocks = sh_blocks(folder / "README.md")
    assert blocks, "the README has no sh block"
    done = Walkthrough(folder)
    with _in(folder, PASSPHRASES):
        for block in blocks:
            for cmd in commands(block):
                done.outputs.append((cmd, _run(cmd)))
    return done


def _run(cmd: str) -> str:
    if cmd.startswith("crossband "):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = crossband(shlex.split(cmd)[1:])
        if code != 0:
            raise AssertionError(f"`{cmd}` exited {code}: {err.getvalue().strip()}")
        return out.getvalue()
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=30
    )
    if proc.returncode != 0:
        raise AssertionError(f"`{cmd}` exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def add_tls(folder: Path) -> None:
    """What the README's ``text`` block asks of the operators' CA, for 127.0.0.1."""
    ca, cert, key = make_ca(folder / "ca")
    tls = folder / "relay" / "tls"
    tls.mkdir(mode=0o700)
    shutil.copy(cert, tls / "relay.crt")
    shutil.copy(key, tls / "relay.key")
    (tls / "relay.key").chmod(0o600)
    for name in ENDPOINTS:
        (folder / name / "tls").mkdir()
        shutil.copy(ca, folder / name / "tls" / "ca.pem")


@dataclass(frozen=True)
class Loopback:
    relay_config: Path
    port: int
    udp_port: int
    endpoint_configs: dict[str, Path]
    rtp_ports: dict[str, dict[str, int]]  # endpoint -> {"input": port, "output": port}

    @property
    def relay_url(self) -> str:
        return f"wss://127.0.0.1:{self.port}/ws"


def _rewrite(path: Path, change: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    unknown = set(change) - set(doc)
    assert not unknown, f"{path.name} lacks {unknown}: the example changed; update this rig"
    doc.update(change)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return doc


def for_loopback(done: Walkthrough, state: Path) -> Loopback:
    """Point the copy at 127.0.0.1 and free ports (the relay's, and RTP in and out), with
    state under ``state``; paste the relay_key the walkthrough printed. Nothing else in the
    configs changes: keys, credentials, bundle, revocation lists, TLS, roles, limits."""
    folder = done.folder
    port, udp_port = free_port(), free_port(socket.SOCK_DGRAM)
    relay = folder / "relay" / "relay.yaml"
    _rewrite(
        relay,
        {
            "host": "127.0.0.1",
            "port": port,
            "udp_port": udp_port,
            "database": str(state / "relay" / "relay.db"),
            "audit_log": str(state / "relay" / "audit.log"),
        },
    )
    (state / "relay").mkdir(parents=True, mode=0o700)
    configs, rtp_ports = {}, {}
    for name in ENDPOINTS:
        path = folder / name / "endpoint.yaml"
        doc = yaml.safe_load(path.read_text())
        ports = {}
        for mapping in doc["rtp"]["channels"]:
            for side in ("input", "output"):
                if side in mapping:
                    mapping[side]["host"] = "127.0.0.1"
                    mapping[side]["port"] = ports[side] = free_port(socket.SOCK_DGRAM)
        (state / name).mkdir(mode=0o700)
        _rewrite(
            path,
            {
                "relay": f"wss://127.0.0.1:{port}/ws",
                "relay_key": done.relay_key,
                "state": str(state / name / "endpoint.db"),
                "rtp": doc["rtp"],
            },
        )
        configs[name], rtp_ports[name] = path, ports
    return Loopback(relay, port, udp_port, configs, rtp_ports)


def copy_example(tmp: Path) -> Path:
    folder = tmp / "three-agency"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder
