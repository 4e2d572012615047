"""The demo's own Mumble and XMPP servers: Debian's ``murmurd`` and ``prosody`` on loopback.

When both programs are on ``PATH`` the demo gives the RCMP a Mumble channel and an XMPP room
(:mod:`bridge.demo.native`); these classes start each in a temporary directory, on its own
loopback ports, and stop it (SIGTERM, then SIGKILL). A missing program is a
:class:`Unavailable` whose message is the plain line the demo prints.

* :class:`MumbleServer`: murmurd drops to the ``mumble-server`` user when started as root, so
  its directory (directly under the system temporary directory, removed at :meth:`stop`) is
  owned by that user. Its TLS certificate is made here and pinned by SHA-256, as an operator
  would. ``-supw`` sets the SuperUser password, used once to create the channel.
* :class:`XmppServer`: ``prosody -F --config FILE`` with ``run_as_root`` when root,
  ``interfaces = {"127.0.0.1"}``, its own c2s port, s2s/http/components' listener off,
  ``internal_plain`` auth without TLS (loopback only), a MUC component; accounts are made with
  ``prosodyctl --config FILE register``. ``prosody --version`` is never run: in this release
  it starts a server with the default config on every interface.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

START_TIMEOUT = 15.0


class Unavailable(Exception):
    """A server the demo would use is not installed or cannot run here (the message says)."""


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
    raise OSError("no free loopback port")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class _Server:
    """A child process that listens on ``port``; its output goes to ``log``."""

    name = "server"

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.port = free_port()
        self.log = directory / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, argv: list[str]) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not _listening(self.port):
            if self.proc.poll() is not None:
                code, self.proc = self.proc.returncode, None
                raise RuntimeError(f"{self.name} exited with {code} at start; see {self.log}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"{self.name} did not listen within {START_TIMEOUT:g} s")
            time.sleep(0.05)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """Stop the process (idempotent): SIGTERM, then SIGKILL after 5 s."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _self_signed(directory: Path, name: str) -> str:
    """``cert.pem``/``key.pem`` for ``name`` in ``directory``; the SHA-256 of the DER cert."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    raw = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    fd = os.open(directory / "key.pem", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(raw)
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


class MumbleServer(_Server):
    """Debian's murmurd on 127.0.0.1 (see the module docstring)."""

    name = "murmurd"

    def __init__(self) -> None:
        binary = shutil.which("murmurd")
        if binary is None:
            raise Unavailable("murmurd is not installed (Debian package mumble-server)")
        owner = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("mumble-server")
            except KeyError:
                why = "murmurd runs as root but there is no mumble-server user"
                raise Unavailable(why) from None
        super().__init__(Path(tempfile.mkdtemp(prefix="crossband-demo-murmur-")))
        self.binary = binary
        self.superuser_password = secrets.token_urlsafe(16)
        self.fingerprint = _self_signed(self.dir, "crossband-demo-murmur")
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
        self.log.touch()
        if owner is not None:  # murmurd drops to mumble-server: it must reach its files
            for path in (self.dir, *self.dir.iterdir()):
                os.chown(path, owner.pw_uid, owner.pw_gid)

    def start(self) -> None:
        with open(self.log, "ab") as out:
            subprocess.run(
                [self.binary, "-ini", str(self.ini), "-supw", self.superuser_password],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=30,
                check=True,
            )
        self._spawn([self.binary, "-fg", "-ini", str(self.ini)])

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.dir, ignore_errors=True)


PROSODY_CONFIG = """\
{run_as_root}
pidfile = "{dir}/prosody.pid"
data_path = "{dir}/data"
certificates = "{dir}/certs"
interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
c2s_direct_tls_ports = {{ }}
legacy_ssl_ports = {{ }}
s2s_ports = {{ }}
component_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
modules_enabled = {{ "roster"; "saslauth"; "disco"; "ping"; "posix" }}
modules_disabled = {{ "s2s"; "offline"; "tls" }}
authentication = "internal_plain"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
log = {{ {{ levels = {{ min = "warn" }}, to = "file", filename = "{dir}/prosody.log" }} }}
VirtualHost "{domain}"
Component "{muc}" "muc"
    muc_room_locking = false
    muc_room_default_persistent = true
    muc_room_default_history_length = 0
"""


class XmppServer(_Server):
    """Debian's prosody on 127.0.0.1 with a MUC component (see the module docstring)."""

    name = "prosody"

    def __init__(self, directory: Path, domain: str, accounts: tuple[str, ...]) -> None:
        binaries = [shutil.which("prosody"), shutil.which("prosodyctl")]
        if None in binaries:
            raise Unavailable("prosody is not installed (Debian package prosody)")
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        super().__init__(directory)
        self.binary, self.ctl = (str(b) for b in binaries)
        self.domain = domain
        self.muc = f"rooms.{domain}"
        for sub in ("data", "certs"):
            (directory / sub).mkdir(mode=0o700, exist_ok=True)
        self.config = directory / "prosody.cfg.lua"
        self.config.write_text(
            PROSODY_CONFIG.format(
                run_as_root="run_as_root = true" if os.geteuid() == 0 else "",
                dir=directory,
                port=self.port,
                domain=domain,
                muc=self.muc,
            )
        )
        self.config.chmod(0o600)
        self.passwords = {name: secrets.token_urlsafe(16) for name in accounts}

    def jid(self, name: str) -> str:
        return f"{name}@{self.domain}"

    def start(self) -> None:
        for name, password in self.passwords.items():
            done = subprocess.run(
                [self.ctl, "--config", str(self.config), "register", name, self.domain, password],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=30,
            )
            if done.returncode != 0:
                raise RuntimeError(f"prosodyctl register {name} failed (exit {done.returncode})")
        self._spawn([self.binary, "-F", "--config", str(self.config)])
