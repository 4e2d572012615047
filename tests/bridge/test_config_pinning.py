"""Fault 1 end to end: ``relay_key`` and ``tls_ca`` in endpoint.yaml reach the link.

The real ``crossband endpoint`` process runs against the real relay process on loopback. With a
pinned key it refuses a relay that cannot sign and one that signs with another key (event
``relay-not-authentic`` in its log, and never ``event=connected``), and connects to the right
one. With ``tls_ca`` it trusts exactly that CA for a ``wss://`` relay. Each wait is a deadline
that fails.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bridge.cli.endpoint import load_endpoint_config, tls_context
from bridge.errors import ConfigError
from crypto.encoding import b64e
from crypto.keyfile import save_device, save_relay_key
from crypto.keys import SigningKey
from tests.bridge.harness import RelayProcess
from tests.world import World, make_world

ROOT = Path(__file__).resolve().parents[2]
CONNECTED = "event=connected"
NOT_AUTHENTIC = "code=relay-not-authentic"
CERT_FAILED = "event=connect-failed"
DEADLINE = 20.0


@pytest.fixture
def world() -> World:
    w = make_world(now=int(time.time()))
    w.device("ca-rcmp", "vessel-1", ("member",), kind="vessel")
    return w


def endpoint_files(tmp: Path, world: World, relay_url: str, **settings: Any) -> Path:
    d = world.devices["ca-rcmp/vessel-1"]
    save_device(tmp / "vessel.key", d.id, d.keys, None)
    (tmp / "vessel.cred").write_bytes(d.cred.encode())
    (tmp / "trust.json").write_bytes(world.trust.encode())
    doc = {
        "device_key": "vessel.key",
        "credential": "vessel.cred",
        "trust_bundle": "trust.json",
        "relay": relay_url,
        "state": "vessel-state.db",
        "transport": "ws",
        **settings,
    }
    path = tmp / "endpoint.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


async def first_of(
    config: Path, *markers: str, then: Callable[[], None] = lambda: None
) -> tuple[str, list[str]]:
    """Run ``crossband endpoint`` until its log shows one of ``markers``, call ``then`` while it
    still runs, and return that marker and the lines before it. Fails if none shows within the
    deadline; always stops it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge.cli.main",
        "--log-level",
        "info",
        "endpoint",
        "--config",
        str(config),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = asyncio.get_running_loop().time() + DEADLINE
    try:
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                pytest.fail(f"none of {markers} within {DEADLINE} s:\n" + "\n".join(lines))
            raw = await asyncio.wait_for(proc.stdout.readline(), left)
            if not raw:
                pytest.fail(f"the endpoint exited ({await proc.wait()}):\n" + "\n".join(lines))
            line = raw.decode(errors="replace").rstrip()
            for marker in markers:
                if marker in line:
                    then()
                    return marker, lines
            lines.append(line)
    finally:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 15)


@pytest.mark.parametrize("relay_has", ["no key", "another key", "the pinned key"])
async def test_pinned_endpoint_accepts_only_its_relay(
    tmp_path: Path, world: World, relay_has: str
) -> None:
    pinned = SigningKey.generate()
    options: dict[str, Any] = {}
    if relay_has != "no key":
        key = pinned if relay_has == "the pinned key" else SigningKey.generate()
        save_relay_key(tmp_path / "relay.key", "test-relay", key, None)
        options["relay_key"] = str(tmp_path / "relay.key")
    relay = RelayProcess(tmp_path, world, **options)
    relay.start()
    try:
        config = endpoint_files(tmp_path, world, relay.url, relay_key=b64e(pinned.public.raw))
        seen, before = await first_of(config, CONNECTED, NOT_AUTHENTIC)
    finally:
        relay.stop()
    if relay_has == "the pinned key":
        assert seen == CONNECTED
    else:
        assert seen == NOT_AUTHENTIC and not any(CONNECTED in x for x in before)


def test_garbage_relay_key_refused_at_start(tmp_path: Path, world: World) -> None:
    """With every other file in place, a garbage pin stops ``crossband endpoint`` at once with
    one line and status 2 (the code as it was accepted it and ran unpinned until killed)."""
    config = endpoint_files(tmp_path, world, "ws://127.0.0.1:9/ws", relay_key="not-a-key")
    proc = subprocess.run(
        [sys.executable, "-m", "bridge.cli.main", "endpoint", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"crossband: error: {config}: relay_key: must be the relay")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA (``ca.pem``) and a server certificate for 127.0.0.1 signed by it."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def builder(subject: str, issuer: str, public: ec.EllipticCurvePublicKey) -> Any:
        return (
            x509.CertificateBuilder()
            .subject_name(_name(subject))
            .issuer_name(_name(issuer))
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    ca = (
        builder(directory.name + " CA", directory.name + " CA", ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    cert = (
        builder("127.0.0.1", directory.name + " CA", key.public_key())
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def test_tls_ca_builds_a_context_that_trusts_that_ca_only(tmp_path: Path, world: World) -> None:
    make_ca(tmp_path / "tls")
    config = endpoint_files(tmp_path, world, "wss://127.0.0.1:1/ws", tls_ca="tls/ca.pem")
    ctx = tls_context(load_endpoint_config(config))  # the path is relative to endpoint.yaml
    assert ctx is not None and ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    (only,) = ctx.get_ca_certs()  # that CA and nothing else (no system CAs)
    assert only["subject"] == ((("commonName", "tls CA"),),)


def test_tls_ca_that_is_not_a_certificate_is_refused(tmp_path: Path, world: World) -> None:
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    config = endpoint_files(tmp_path, world, "wss://127.0.0.1:1/ws", tls_ca="ca.pem")
    with pytest.raises(ConfigError, match=rf"^{config}: tls_ca: no CA certificate in "):
        tls_context(load_endpoint_config(config))


@pytest.mark.parametrize("trusts", ["the relay's CA", "another CA"])
async def test_tls_ca_reaches_the_link(tmp_path: Path, world: World, trusts: str) -> None:
    _, cert, key = make_ca(tmp_path / "relay-ca")
    other, _, _ = make_ca(tmp_path / "other-ca")
    relay = RelayProcess(tmp_path, world, tls_cert=str(cert), tls_key=str(key))
    relay.start()
    try:
        url = f"wss://127.0.0.1:{relay.port}/ws"
        ca = "relay-ca/ca.pem" if trusts == "the relay's CA" else str(other)
        seen, _ = await first_of(
            endpoint_files(tmp_path, world, url, tls_ca=ca), CONNECTED, CERT_FAILED
        )
    finally:
        relay.stop()
    assert seen == (CONNECTED if trusts == "the relay's CA" else CERT_FAILED)


async def test_endpoint_command_starts_its_rtp_gateway(tmp_path: Path, world: World) -> None:
    """The ``rtp`` section becomes a running gateway: its RTP input port is bound once the
    endpoint says it runs."""
    key = SigningKey.generate()
    save_relay_key(tmp_path / "relay.key", "test-relay", key, None)
    relay = RelayProcess(tmp_path, world, relay_key=str(tmp_path / "relay.key"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        rtp_port = s.getsockname()[1]
    channel = {"channel": "shiprider-7", "input": {"port": rtp_port, "payload": "pcmu"}}
    config = endpoint_files(
        tmp_path,
        world,
        relay.url,
        relay_key=b64e(key.public.raw),
        rtp={"rate": 16000, "channels": [channel]},
    )
    bound: list[bool] = []

    def input_is_bound() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", rtp_port))
            except OSError:
                bound.append(True)

    relay.start()
    try:
        started = "crossband endpoint ca-rcmp/vessel-1 -> "  # printed once the gateway runs
        await first_of(config, started, then=input_is_bound)
    finally:
        relay.stop()
    assert bound == [True]
