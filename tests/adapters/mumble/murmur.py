"""A real murmurd (Debian's mumble-server) on 127.0.0.1, in a temporary directory, for tests.

murmurd drops to the ``mumble-server`` user even when ``uname=`` is empty, so its directory
is owned by that user. Its TLS certificate is ours (made here), so the tests pin its SHA-256
fingerprint exactly as an operator would (or verify it as its own CA: it names 127.0.0.1).
Its directory is a fresh one directly under the system temporary directory, not under
pytest's ``tmp_path``: that one is mode 0700 root, and murmurd, dropped to ``mumble-server``,
could not reach its database through it. ``-supw`` sets the SuperUser password first, so a
test can log in as SuperUser and create the channel the bridge joins.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import ipaddress
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from adapters.mumble.client import ClientConfig, Joined, MumbleEvent
from adapters.mumble.driver import MumbleDriver, ServerConfig
from tests.rigs.tools import RigUnavailable

MURMURD = "/usr/sbin/murmurd"
E = TypeVar("E")
SUPERUSER_PASSWORD = "test-superuser-pw"


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (murmurd binds both)."""
    for _ in range(50):
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def _self_signed(directory: Path) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "murmur-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.chmod(directory / "key.pem", 0o600)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


class Murmur:
    """One murmurd process; :meth:`start`, :meth:`stop`, :meth:`restart` (same port, same DB)."""

    def __init__(self) -> None:
        if not os.path.exists(MURMURD):
            raise RigUnavailable("`murmurd` is not installed (Debian package mumble-server)")
        self.dir = Path(tempfile.mkdtemp(prefix="crossband-murmur-"))
        self.port = free_port()
        self.fingerprint = _self_signed(self.dir)
        self.ini = self.dir / "murmur.ini"
        self.ini.write_text(
            "\n".join(
                [
                    f"database={self.dir / 'murmur.sqlite'}",
                    "host=127.0.0.1",
                    f"port={self.port}",
                    "registerName=",
                    "autobanAttempts=0",
                    "bandwidth=130000",
                    "users=20",
                    "messageburst=1000",
                    "messagelimit=1000",
                    f"sslCert={self.dir / 'cert.pem'}",
                    f"sslKey={self.dir / 'key.pem'}",
                    "welcometext=",
                    "allowping=false",
                    "",
                ]
            )
        )
        if os.geteuid() == 0:
            user = pwd.getpwnam("mumble-server")
            for path in (self.dir, *self.dir.iterdir()):
                os.chown(path, user.pw_uid, user.pw_gid)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = open(self.dir / "murmur.log", "ab")  # noqa: SIM115 - closed in close()
        subprocess.run(
            [MURMURD, "-ini", str(self.ini), "-supw", SUPERUSER_PASSWORD],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            timeout=30,
            check=True,
        )

    def start(self, timeout: float = 20.0) -> None:
        self.proc = subprocess.Popen(
            [MURMURD, "-fg", "-ini", str(self.ini)], stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"murmurd exited with {self.proc.returncode}: {self.tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"murmurd did not listen within {timeout} s: {self.tail()}")

    def kill(self) -> None:
        """SIGKILL: the server vanishes without closing a connection."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def pause(self, paused: bool) -> None:
        """SIGSTOP / SIGCONT: a server that hangs, its connections open but silent."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP if paused else signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self, kill: bool = False) -> None:
        self.kill() if kill else self.stop()
        self.start()

    @staticmethod
    def self_signed_elsewhere(directory: Path) -> str:
        """Another self-signed certificate (not the server's): its path."""
        _self_signed(directory)
        return str(directory / "cert.pem")

    def tail(self) -> str:
        return (self.dir / "murmur.log").read_text(errors="replace")[-2000:]

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.pause(False)
        self.stop()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


async def make_channel(server: Murmur, name: str) -> None:
    """Log in as SuperUser and create the permanent channel ``name`` under the root."""
    events: list[MumbleEvent] = []
    cfg = ServerConfig("127.0.0.1", server.port, fingerprint=server.fingerprint)
    admin = MumbleDriver(cfg, ClientConfig("SuperUser", password=SUPERUSER_PASSWORD), events.append)
    await admin.start()
    try:
        admin.create_channel(name)
        async with asyncio.timeout(5):
            while admin.client is None or admin.client.find_channel(name) is None:
                await asyncio.sleep(0.01)
    finally:
        await admin.stop()


async def until(check: Callable[[], object], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


class Peer:
    """A second Mumble user: our client on its own connection, events in a list."""

    def __init__(self, m: Murmur, name: str) -> None:
        self.events: list[MumbleEvent] = []
        self.driver = MumbleDriver(
            ServerConfig("127.0.0.1", m.port, fingerprint=m.fingerprint, min_delay=0.2),
            ClientConfig(name, "Dispatch"),
            self.events.append,
        )

    async def __aenter__(self) -> Peer:
        await self.driver.start()
        await until(lambda: any(isinstance(e, Joined) for e in self.events), 5)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.driver.stop()

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]
