"""A real Debian ``prosody`` on loopback, configured in a temporary directory, for XMPP tests.

:class:`Prosody` writes a config in ``tmp`` (pidfile, data and log there; ``run_as_root`` when
root; ``interfaces = {"127.0.0.1"}``; its own free c2s port; s2s, http and components' listener
off; ``internal_plain`` auth without TLS — loopback only), a MUC component on ``rooms.<domain>``
with unlocked, persistent rooms, and registers accounts with ``prosodyctl --config FILE
register``. :meth:`Prosody.start` runs ``prosody -F --config FILE`` as a child process and waits
for the port with a deadline; :meth:`Prosody.stop` terminates it and waits. Never run
``prosody --version``: in this release it starts a server with the default config.

The ``prosody`` fixture gives one started server with the accounts :data:`ACCOUNTS` and stops it
at teardown; a missing ``prosody`` skips (fails in CI) through :func:`skip_unavailable`.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import slixmpp

from tests.rigs.tools import require_tool, skip_unavailable

DOMAIN = "xmpp.test"
MUC = f"rooms.{DOMAIN}"
ACCOUNTS = ("gw", "officer")
START_DEADLINE = 15.0

CONFIG = """\
{run_as_root}
pidfile = "{tmp}/prosody.pid"
data_path = "{tmp}/data"
certificates = "{tmp}/certs"
interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
c2s_direct_tls_ports = {{ }}
legacy_ssl_ports = {{ }}
s2s_ports = {{ }}
component_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
modules_enabled = {{ "roster"; "saslauth"; "disco"; "ping"; "posix"{tls_module} }}
modules_disabled = {{ "s2s"; "offline"{no_tls} }}
authentication = "internal_plain"
c2s_require_encryption = {tls}
allow_unencrypted_plain_auth = {plain}
log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = "{tmp}/prosody.log" }} }}
VirtualHost "{domain}"
{ssl}Component "{muc}" "muc"
    muc_room_locking = false
    muc_room_default_persistent = true
    muc_room_default_history_length = 50
"""


def _make_certs(d: Path) -> Path:
    """A CA and a certificate for DOMAIN signed by it (``host.crt``/``host.key``); the CA's path."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def cert(subject: str, pub: ec.EllipticCurvePublicKey, ca: bool) -> x509.Certificate:
        b = x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name("test CA"))
        b = b.public_key(pub).serial_number(x509.random_serial_number())
        b = b.not_valid_before(now - datetime.timedelta(hours=1))
        b = b.not_valid_after(now + datetime.timedelta(days=1))
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        if not ca:
            alt = [x509.DNSName(DOMAIN), x509.DNSName(MUC)]
            b = b.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        return b.sign(ca_key, hashes.SHA256())

    pem = serialization.Encoding.PEM
    (d / "ca.crt").write_bytes(cert("test CA", ca_key.public_key(), True).public_bytes(pem))
    (d / "host.crt").write_bytes(cert(DOMAIN, key.public_key(), False).public_bytes(pem))
    raw = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (d / "host.key").write_bytes(raw)
    (d / "host.key").chmod(0o600)
    return d / "ca.crt"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Prosody:
    """One prosody server whose files all live in ``tmp`` (see the module docstring)."""

    def __init__(
        self, tmp: Path, accounts: tuple[str, ...] = ACCOUNTS, *, tls: bool = False
    ) -> None:
        self.prosody = require_tool("prosody")
        self.prosodyctl = require_tool("prosodyctl")
        self.tmp = tmp
        self.port = free_port()
        self.domain = DOMAIN
        self.muc = MUC
        self.passwords = {name: secrets.token_urlsafe(12) for name in accounts}
        for sub in ("data", "certs"):
            (tmp / sub).mkdir(mode=0o700, exist_ok=True)
        self.config = tmp / "prosody.cfg.lua"
        root = "run_as_root = true" if os.geteuid() == 0 else ""
        self.ca_file = str(_make_certs(tmp / "certs")) if tls else None
        ssl = (
            f'    ssl = {{ certificate = "{tmp}/certs/host.crt", key = "{tmp}/certs/host.key" }}\n'
        )
        self.config.write_text(
            CONFIG.format(
                run_as_root=root,
                tmp=tmp,
                port=self.port,
                domain=DOMAIN,
                muc=MUC,
                no_tls="" if tls else '; "tls"',
                tls_module='; "tls"' if tls else "",
                tls=str(tls).lower(),
                plain=str(not tls).lower(),
                ssl=ssl if tls else "",
            )
        )
        self.config.chmod(0o600)
        self.proc: subprocess.Popen[bytes] | None = None
        for name, password in self.passwords.items():
            self._ctl("register", name, DOMAIN, password)

    def jid(self, name: str) -> str:
        return f"{name}@{self.domain}"

    def room(self, name: str) -> str:
        return f"{name}@{self.muc}"

    def _ctl(self, *args: str) -> None:
        done = subprocess.run(
            [self.prosodyctl, "--config", str(self.config), *args],
            capture_output=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            raise RuntimeError(f"prosodyctl {args[0]} failed: {done.stderr.decode()[-500:]}")

    def start(self) -> None:
        if self.proc is not None:
            raise RuntimeError("prosody is already running")
        log = (self.tmp / "prosody.stdout").open("ab")
        self.proc = subprocess.Popen(
            [self.prosody, "-F", "--config", str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + START_DEADLINE
        while not _port_open(self.port):
            if self.proc.poll() is not None:
                self.proc = None
                raise RuntimeError(f"prosody exited at start; see {self.tmp}/prosody.log")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"prosody did not listen on {self.port} in {START_DEADLINE}s")
            time.sleep(0.05)

    def stop(self, kill: bool = False) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if kill:
            proc.kill()
        else:
            proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def restart(self, kill: bool = False) -> None:
        self.stop(kill)
        self.start()


class Occupant:
    """A plain slixmpp client in a room (nobody here wrote its protocol side): ``messages``
    gets ``(nick, body, delayed)`` of every groupchat message with a body."""

    def __init__(self, server: Prosody, name: str, room: str, nick: str = "") -> None:
        self.server = server
        self.room = room
        self.nick = nick or name
        c = slixmpp.ClientXMPP(f"{server.jid(name)}/test", server.passwords[name])
        c.register_plugin("xep_0045")
        c.enable_direct_tls = c.enable_starttls = False
        c.enable_plaintext = True
        c.plugin["feature_mechanisms"].unencrypted_plain = True
        c.add_event_handler("groupchat_message", self._on_message)
        self.client = c
        self.messages: asyncio.Queue[tuple[str, str, bool]] = asyncio.Queue()

    def _on_message(self, msg: slixmpp.Message) -> None:
        if msg["from"].bare == self.room and msg["body"]:
            delayed = msg.xml.find("{urn:xmpp:delay}delay") is not None
            self.messages.put_nowait((msg["from"].resource, str(msg["body"]), delayed))

    async def join(self, history: int = 0, timeout: float = 10.0) -> None:
        started = asyncio.get_running_loop().create_future()
        self.client.add_event_handler("session_start", lambda _: started.set_result(None))
        self.client.connect("127.0.0.1", self.server.port)
        await asyncio.wait_for(started, timeout)
        await self.client.plugin["xep_0045"].join_muc_wait(
            slixmpp.JID(self.room), self.nick, maxstanzas=history, timeout=timeout
        )

    def say(self, body: str) -> None:
        self.client.send_message(mto=slixmpp.JID(self.room), mbody=body, mtype="groupchat")

    async def next(self, timeout: float = 5.0) -> tuple[str, str, bool]:
        return await asyncio.wait_for(self.messages.get(), timeout)

    async def close(self) -> None:
        self.client.cancel_connection_attempt()
        if self.client.transport is not None:
            try:
                await asyncio.wait_for(self.client.disconnect(wait=0.5), 2.0)
            except TimeoutError:
                pass
            self.client.abort()
        for name in list(self.client.scheduled_events):
            self.client.cancel_schedule(name)
        if self.client._run_out_filters is not None:
            self.client._run_out_filters.cancel()


@pytest.fixture
def prosody(tmp_path: Path) -> Iterator[Prosody]:
    with skip_unavailable():
        server = Prosody(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


__all__ = [
    "ACCOUNTS",
    "DOMAIN",
    "MUC",
    "Occupant",
    "Prosody",
    "free_port",
    "prosody",
]
