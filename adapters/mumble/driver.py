"""Thin asyncio driver for :class:`~adapters.mumble.client.MumbleClient`: TLS, timers, reconnect.

It only moves bytes and arms the client's timer; every protocol decision is in the client.

**Server certificate.** Mumble servers mostly run on self-signed certificates, so the usual
setting is ``fingerprint``: the SHA-256 of the server certificate (DER), hex, colons allowed.
The certificate presented is compared with it in constant time right after the handshake; a
mismatch is a :class:`MumbleCertificateError` naming both fingerprints, and the connection is
dropped before a byte of Mumble is sent. Without a fingerprint the server is verified against
``ca_file`` (or the system's CAs) with its host name. There is no "insecure" setting.

**Client certificate.** Mumble identifies a user by certificate. :func:`ensure_client_certificate`
makes a self-signed one on first use and keeps it (key file mode 0600; a key file readable by
others is refused).

**Reconnect.** When the connection ends (server restart, ping timeout, reject), the driver
waits ``min_delay`` seconds, doubling up to ``max_delay``, and connects again with a fresh
client; the delay is reset after a session that reached ``ServerSync``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import hmac
import logging
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from adapters.mumble.client import ClientConfig, Closed, Connected, MumbleClient, MumbleEvent
from adapters.mumble.proto import MumbleError

__all__ = [
    "MumbleCertificateError",
    "MumbleDriver",
    "ServerConfig",
    "ensure_client_certificate",
    "normalize_fingerprint",
]

log = logging.getLogger(__name__)
MAX_WRITE_BUFFER = 256 * 1024  # bytes queued to the server before voice is dropped


class MumbleCertificateError(MumbleError):
    """The server's certificate is not the pinned one (or does not verify)."""


def normalize_fingerprint(text: str) -> str:
    """A SHA-256 fingerprint as 64 lowercase hex digits (colons and spaces dropped)."""
    digits = text.replace(":", "").replace(" ", "").lower()
    if len(digits) != 64 or any(c not in "0123456789abcdef" for c in digits):
        raise ValueError("a certificate fingerprint is the SHA-256 of the DER certificate, hex")
    return digits


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str
    port: int = 64738
    fingerprint: str | None = None  # normalized SHA-256 hex of the server certificate
    ca_file: str | None = None
    cert_file: str | None = None  # the bridge user's certificate (made on first use)
    key_file: str | None = None
    connect_timeout: float = 5.0
    min_delay: float = 0.5
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if not self.host or not 0 < self.port < 65536:
            raise ValueError("the Mumble server needs a host and a port in 1..65535")
        if self.fingerprint is not None:
            object.__setattr__(self, "fingerprint", normalize_fingerprint(self.fingerprint))
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        if not 0 < self.min_delay <= self.max_delay:
            raise ValueError("reconnect delays: 0 < min_delay <= max_delay")


def ensure_client_certificate(cert_file: str, key_file: str, name: str) -> None:
    """Make a self-signed client certificate for ``name`` unless both files exist."""
    cert, key = Path(cert_file), Path(key_file)
    if cert.exists() and key.exists():
        if key.stat().st_mode & 0o077:
            raise MumbleError(f"{key_file}: the key file must be mode 0600 (chmod 600 it)")
        return
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(private, hashes.SHA256())
    )
    pem_key = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem_key)
    os.chmod(key, 0o600)
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def _ssl_context(cfg: ServerConfig) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cfg.fingerprint is not None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # checked against the pin right after the handshake
    elif cfg.ca_file is not None:
        ctx.load_verify_locations(cfg.ca_file)
    else:
        ctx.load_default_certs()
    if cfg.cert_file is not None and cfg.key_file is not None:
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    return ctx


class MumbleDriver:
    """Keeps one Mumble control connection up; client events go to ``on_event``."""

    def __init__(
        self,
        server: ServerConfig,
        client: ClientConfig,
        on_event: Callable[[MumbleEvent], None],
    ) -> None:
        self.server = server
        self.client_config = client
        self.client: MumbleClient | None = None
        self.sessions = 0  # connections that reached ServerSync
        self.errors = 0
        self.last_error: str | None = None
        self._on_event = on_event
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._first: asyncio.Future[None] | None = None

    async def start(self, timeout: float = 15.0) -> None:
        """Connect; returns once the first session is synced (raises if it fails first)."""
        self._loop = asyncio.get_running_loop()
        if self.server.cert_file and self.server.key_file:
            ensure_client_certificate(
                self.server.cert_file, self.server.key_file, self.client_config.username
            )
        self._first = self._loop.create_future()
        self._task = self._loop.create_task(self._run())
        try:
            await asyncio.wait_for(asyncio.shield(self._first), timeout)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._close_writer()
        if self._first is not None and self._first.done() and not self._first.cancelled():
            self._first.exception()  # retrieved: no "never retrieved" warning
        self._first = None

    @property
    def ready(self) -> bool:
        return self.client is not None and self.client.joined

    def send_text(self, message: str) -> None:
        if self.client is not None:
            self.client.send_text(message)
            self._flush()

    def send_voice(self, opus: bytes, last: bool = False) -> bool:
        writer = self._writer
        if self.client is None or writer is None:
            return False
        if writer.transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            self.client.dropped_voice += 1
            return False
        sent = self.client.send_voice(opus, last)
        self._flush()
        return sent

    def set_comment(self, comment: str) -> None:
        if self.client is not None:
            self.client.set_comment(comment)
            self._flush()

    def create_channel(self, name: str, parent: int = 0) -> None:
        if self.client is not None:
            self.client.create_channel(name, parent)
            self._flush()

    # -- internals ----------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self.server.min_delay
        while True:
            synced_before = self.sessions
            try:
                self.last_error = None
                await self._session()
                reason = self.last_error or "closed"
            except (OSError, MumbleError, TimeoutError, ssl.SSLError) as exc:
                self.errors += 1
                reason = str(exc) if isinstance(exc, MumbleError) else type(exc).__name__
                if self._first is not None and not self._first.done():
                    self._first.set_exception(exc)
            except Exception as exc:  # a bug here must not end reconnecting silently
                self.errors += 1
                reason = f"internal error {type(exc).__name__}"
                log.error("mumble: session failed: %s", type(exc).__name__)
                if self._first is not None and not self._first.done():
                    self._first.set_exception(exc)
            finally:
                self._close_writer()
            self.last_error = reason
            log.warning("mumble: connection ended (%s); reconnecting in %.1f s", reason, delay)
            if self.sessions > synced_before:
                delay = self.server.min_delay
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.server.max_delay)

    async def _session(self) -> None:
        assert self._loop is not None
        cfg = self.server
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(cfg.host, cfg.port, ssl=_ssl_context(cfg)),
                cfg.connect_timeout,
            )
        except ssl.SSLCertVerificationError as exc:
            raise MumbleCertificateError(
                f"server {cfg.host}:{cfg.port} certificate does not verify "
                f"({exc.verify_message}): refusing to connect"
            ) from None
        self._writer = writer
        self._check_pin(writer)
        client = self.client = MumbleClient(self.client_config)
        client.connection_made(self._loop.time())
        self._flush()
        while client.state != "closed":
            data = await reader.read(65536)
            if not data:
                client.connection_lost("eof")
            else:
                client.receive_data(data, self._loop.time())
            self._dispatch()

    def _check_pin(self, writer: asyncio.StreamWriter) -> None:
        pin = self.server.fingerprint
        if pin is None:
            return
        sslobj = writer.get_extra_info("ssl_object")
        der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
        seen = hashlib.sha256(der or b"").hexdigest()
        if der is None or not hmac.compare_digest(seen, pin):
            raise MumbleCertificateError(
                f"server {self.server.host}:{self.server.port} presented certificate "
                f"sha256 {seen}, not the pinned {pin}: refusing to connect"
            )

    def _dispatch(self) -> None:
        client = self.client
        if client is None or self._loop is None:
            return
        for event in client.events_received():
            if isinstance(event, Connected):
                self.sessions += 1
                if self._first is not None and not self._first.done():
                    self._first.set_result(None)
            elif isinstance(event, Closed):
                self.last_error = event.reason
                if self._first is not None and not self._first.done():
                    self._first.set_exception(MumbleError(f"mumble: {event.reason}"))
            try:
                self._on_event(event)
            except Exception as exc:  # a consumer bug must not kill the connection
                log.error("mumble: event handler failed: %s", type(exc).__name__)
                self.errors += 1
        self._flush()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        when = client.get_timer()
        if when is not None:
            self._timer = self._loop.call_at(when, self._on_timer)
        if client.state == "closed":
            self._close_writer()

    def _on_timer(self) -> None:
        self._timer = None
        if self.client is not None and self._loop is not None:
            self.client.handle_timer(self._loop.time())
            self._dispatch()

    def _flush(self) -> None:
        if self.client is None:
            return
        data = self.client.data_to_send()
        if data and self._writer is not None and not self._writer.is_closing():
            self._writer.write(data)

    def _close_writer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
