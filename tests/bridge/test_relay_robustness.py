"""The real relay process under bad input, with TLS, its metrics and audit log, and endpoint
restarts (issue 3: robustness beyond the happy path)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bridge.endpoint import events as ev
from bridge.endpoint.endpoint import Endpoint
from bridge.wire import control as p
from crypto.keyfile import save_device
from tests.bridge.harness import ROOT, RelayProcess, endpoint, next_event, until
from tests.bridge.test_relay_e2e import CH, metrics, roster, talk
from tests.world import World, dispatch_and_vessel


@pytest.fixture
def world() -> World:
    return dispatch_and_vessel()


async def test_malformed_input_gets_coded_errors_and_harms_nobody(
    tmp_path: Path, world: World
) -> None:
    relay = RelayProcess(tmp_path, world)
    relay.start()
    disp = vessel = None
    try:
        disp = await endpoint(relay, world, world.devices["us-cbp/dispatch-1"], tmp_path)
        vessel = await endpoint(relay, world, world.devices["ca-rcmp/vessel-1"], tmp_path)
        await disp.commit(CH, roster(world, disp.device, vessel.device), agreement=world.agreement)
        await next_event(vessel, ev.ChannelUpdated)
        async with aiohttp.ClientSession() as http:
            codes = []
            # Before authentication, anything wrong gets its code and the connection is closed.
            for junk in [
                "not json",
                "[1,2]",
                json.dumps({"t": "ping", "v": 9}),
                json.dumps({"t": "nope", "v": 1}),
                json.dumps({"t": "ping", "v": 1}),
            ]:
                async with http.ws_connect(relay.url) as ws:
                    challenge = json.loads((await ws.receive()).data)
                    assert challenge["t"] == "challenge"
                    await ws.send_str(junk)
                    codes.append(json.loads((await ws.receive(timeout=5)).data)["code"])
                    closing = await ws.receive(timeout=5)
                    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert codes == [
                p.Codes.MALFORMED,
                p.Codes.MALFORMED,
                p.Codes.BAD_VERSION,
                p.Codes.UNKNOWN_TYPE,
                p.Codes.AUTH_REQUIRED,
            ]
            async with http.ws_connect(relay.url) as ws:
                await ws.receive()
                await ws.send_bytes(os.urandom(3000))  # binary junk before auth
                await ws.send_str(
                    json.dumps(
                        {"t": "auth", "v": 1, "credential": {"x": 1}, "sig": "AA", "nonce": "n"}
                    )
                )
                reply = json.loads((await ws.receive(timeout=5)).data)
                assert reply["code"] == p.Codes.AUTH_FAILED
                assert (await ws.receive(timeout=5)).type in (
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.CLOSED,
                )
        # Authenticated junk: coded errors, connection kept, others unaffected.
        await disp._send(json.dumps({"t": "ack", "v": 1, "seq": "x"}))
        assert (await next_event(disp, ev.Error)).code == p.Codes.MALFORMED
        await disp._send(
            json.dumps({"t": "floor-request", "v": 1, "ch": "nope", "priority": "normal"})
        )
        assert (await next_event(disp, ev.Error)).code == p.Codes.UNKNOWN_CHANNEL
        await disp._send("x" * (p.MAX_SMALL_CONTROL + 10))
        assert (await next_event(disp, ev.Error)).code == p.Codes.MALFORMED
        import socket

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(200):  # pure junk, and junk that looks like media with a bad MAC
                head = b"" if i % 2 else bytes([p.UDP_MAGIC, p.UDP_MEDIA])
                s.sendto(head + os.urandom(60), ("127.0.0.1", relay.udp_port))
        await talk(vessel, CH, [b"still works"])
        assert (await next_event(disp, ev.Voice)).payload == b"still works"
        assert relay.proc is not None and relay.proc.poll() is None
        m = metrics(relay)
        assert m["crossband_protocol_errors_total"] >= 3
        assert m['crossband_frames_dropped_by_reason_total{reason="bad-mac"}'] >= 100
        assert m['crossband_frames_dropped_by_reason_total{reason="malformed"}'] >= 1
        assert m["crossband_authenticated"] == 2 and m["crossband_channels"] == 1
        assert m["crossband_floor_grants_total"] >= 1
    finally:
        for ep in (disp, vessel):
            if ep is not None:
                await ep.stop()
        relay.stop()
    # The relay's own audit log verifies, and tampering is detected by the CLI.
    log = relay.dir / "audit.log"
    ok = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "audit", "verify", str(log)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:2] + lines[3:]))  # drop record 3
    bad = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "audit", "verify", str(log)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and f"{log}: FAILED at record 3: " in bad.stdout


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    crt, k = tmp / "relay.crt", tmp / "relay.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(k, 0o600)
    return crt, k


async def test_tls_relay(tmp_path: Path, world: World) -> None:
    crt, key = _self_signed(tmp_path)
    relay = RelayProcess(tmp_path, world, tls_cert=str(crt), tls_key=str(key))
    relay.start()
    ctx = ssl.create_default_context(cafile=str(crt))
    eps = []
    try:
        for name in ("us-cbp/dispatch-1", "ca-rcmp/vessel-1"):
            d = world.devices[name]
            ep = Endpoint(
                d.cred,
                d.keys,
                world.trust,
                f"wss://127.0.0.1:{relay.port}/ws",
                str(tmp_path / f"{d.id.replace('/', '_')}.db"),
                ssl_context=ctx,
                transport="ws",
            )
            await ep.start()
            await ep.wait_connected(15)
            eps.append(ep)
        await eps[0].commit(
            CH, roster(world, eps[0].device, eps[1].device), agreement=world.agreement
        )
        await next_event(eps[1], ev.ChannelUpdated)
        await eps[0].send_text(CH, "over tls")
        assert (await next_event(eps[1], ev.Message)).body == b"over tls"
        # A client that does not trust the certificate cannot connect.
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.ClientConnectorError):
                await http.ws_connect(f"wss://127.0.0.1:{relay.port}/ws")
    finally:
        for ep in eps:
            await ep.stop()
        relay.stop()


async def test_endpoint_restart_keeps_membership_and_never_reuses_a_counter(
    tmp_path: Path, world: World
) -> None:
    relay = RelayProcess(tmp_path, world)
    relay.start()
    disp = await endpoint(relay, world, world.devices["us-cbp/dispatch-1"], tmp_path)
    vessel = await endpoint(relay, world, world.devices["ca-rcmp/vessel-1"], tmp_path)
    try:
        # The relay's directory hands out credentials; the endpoint verifies them itself.
        found = await disp.lookup([vessel.device, "us-cbp/nobody"])
        assert list(found) == [vessel.device] and found[vessel.device] == vessel.cred
        await disp.commit(CH, roster(world, disp.device, vessel.device), agreement=world.agreement)
        await next_event(vessel, ev.ChannelUpdated)
        await talk(vessel, CH, [b"before-%d" % i for i in range(5)])
        first = [await next_event(disp, ev.Voice) for _ in range(5)]
        await vessel.stop()  # a crash would lose no more than this: state is on disk
        vessel = await endpoint(relay, world, world.devices["ca-rcmp/vessel-1"], tmp_path)
        assert CH in vessel.channels and vessel.channels[CH].epoch == 1
        await talk(vessel, CH, [b"after-%d" % i for i in range(5)])
        after = [await next_event(disp, ev.Voice) for _ in range(5)]
        # The listener's replay window would drop any reused counter; these all got through,
        # and their counters are past everything used (and reserved) before the restart.
        assert [v.payload for v in after] == [b"after-%d" % i for i in range(5)]
        assert min(v.ctr for v in after) > max(v.ctr for v in first)
    finally:
        await vessel.stop()
        await disp.stop()
        relay.stop()


async def test_endpoint_command_runs_against_relay(tmp_path: Path, world: World) -> None:
    relay = RelayProcess(tmp_path, world)
    relay.start()
    d = world.devices["ca-rcmp/vessel-1"]
    save_device(tmp_path / "vessel.key", d.id, d.keys, None)
    (tmp_path / "vessel.cred").write_bytes(d.cred.encode())
    (tmp_path / "trust.json").write_bytes(world.trust.encode())
    (tmp_path / "endpoint.yaml").write_text(
        yaml.safe_dump(
            {
                "device_key": "vessel.key",
                "credential": "vessel.cred",
                "trust_bundle": "trust.json",
                "relay": relay.url,
                "state": "vessel-state.db",
                "transport": "udp",
            }
        )
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge.cli.main",
        "--log-level",
        "info",
        "endpoint",
        "--config",
        str(tmp_path / "endpoint.yaml"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out: list[str] = []

    async def read_until(marker: str) -> None:
        assert proc.stdout is not None
        while not any(marker in line for line in out):
            line = await proc.stdout.readline()
            if not line:
                raise AssertionError(f"endpoint exited before {marker!r}: {''.join(out)}")
            out.append(line.decode(errors="replace"))

    disp = await endpoint(relay, world, world.devices["us-cbp/dispatch-1"], tmp_path)
    try:
        await until(
            lambda: metrics(relay)["crossband_authenticated"] == 2,
            timeout=30,
            what="the endpoint command connected",
        )
        await disp.commit(CH, roster(world, disp.device, d.id), agreement=world.agreement)
        await asyncio.wait_for(read_until("event=channel"), 20)
        await disp.send_text(CH, "secret words for the vessel")
        await asyncio.wait_for(read_until("event=message"), 20)
    finally:
        await disp.stop()
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        rest = (await asyncio.wait_for(proc.communicate(), 15))[0]
        out.append(rest.decode(errors="replace"))
        relay.stop()
    text = "".join(out)
    assert "event=channel" in text and "event=message" in text, text
    assert "secret words" not in text  # the log carries metadata, never content


async def test_pinned_relay_identity(tmp_path: Path, world: World) -> None:
    """Mutual authentication: a device that pins the relay's key accepts only that relay."""
    from crypto.keyfile import save_relay_key
    from crypto.keys import SigningKey

    key = SigningKey.generate()
    save_relay_key(tmp_path / "relay.key", "test-relay", key, None)
    relay = RelayProcess(tmp_path, world, relay_key=str(tmp_path / "relay.key"))
    relay.start()
    d = world.devices["ca-rcmp/vessel-1"]
    good = Endpoint(
        d.cred, d.keys, world.trust, relay.url, str(tmp_path / "good.db"), relay_key=key.public
    )
    impostor_pin = SigningKey.generate().public  # what an impostor relay would not match
    bad = Endpoint(
        d.cred, d.keys, world.trust, relay.url, str(tmp_path / "bad.db"), relay_key=impostor_pin
    )
    try:
        await good.start()
        await good.wait_connected(15)
        await good.stop()
        await bad.start()
        err = await next_event(bad, ev.Error, timeout=10)
        assert err.code == "relay-not-authentic"
        assert not bad.connected.is_set()
    finally:
        await bad.stop()
        relay.stop()
