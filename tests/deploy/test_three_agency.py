"""deploy/three-agency/ runs as its README says (issue 11, "Deploy").

In a copy of the folder: the README's ``sh`` blocks make every key, credential, the trust
bundle, the agreement (signed by all three agencies) and the revocation lists with the real
``crossband keys``; a throw-away CA stands in for the operators' (TLS on loopback). Then the
relay runs from ``relay/relay.yaml`` as ``crossband relay``, RCMP's gateway from its config as
``crossband endpoint`` (its own process, as on its own host), the Guardia Nacional's endpoint
from its config through the same builder ``crossband endpoint`` uses, and US CBP's dispatcher
opens the channel with ``open_channel.py`` from its config. Every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bridge.cli.endpoint import build_endpoint, load_endpoint_config
from bridge.demo.relay_process import ROOT
from bridge.endpoint import events as ev
from bridge.endpoint.endpoint import Endpoint
from bridge.errors import RelayError
from bridge.wire.codes import Code
from crypto.epoch import NotPermittedError
from crypto.identity import Credential
from tests.adapters.gateway_rig import (
    RtpCollector,
    align,
    decode_packets,
    pcm_array,
    run_sender,
    speech_like,
    wait_process,
)
from tests.bridge.harness import next_event, until
from tests.deploy.processes import DEADLINE, ConfiguredRelay, Process
from tests.deploy.walkthrough import (
    Loopback,
    Walkthrough,
    add_tls,
    copy_example,
    for_loopback,
    run_walkthrough,
)

CH = "shiprider-4471"
US = "us-cbp/dispatch-blaine"
CA = "ca-rcmp/gw-pacific"


@pytest.fixture(scope="module")
def walked(tmp_path_factory: pytest.TempPathFactory) -> Walkthrough:
    tmp = tmp_path_factory.mktemp("deploy")
    done = run_walkthrough(copy_example(tmp))
    add_tls(done.folder)
    return done


@pytest.fixture(scope="module")
def loopback(walked: Walkthrough, tmp_path_factory: pytest.TempPathFactory) -> Loopback:
    return for_loopback(walked, tmp_path_factory.mktemp("state"))


@pytest.fixture
def relay(loopback: Loopback) -> Iterator[ConfiguredRelay]:
    r = ConfiguredRelay(loopback.relay_config, loopback.port, loopback.udp_port)
    r.start(timeout=DEADLINE)
    yield r
    r.stop()
    assert r.proc is not None and r.proc.returncode == 0, r.log.read_text()[-2000:]


def chunk_correlations(ref: np.ndarray, out: np.ndarray, size: int) -> list[float]:
    """For each ``size``-sample piece of ``ref``: its normalised correlation with ``out`` at
    the best alignment (tests.adapters.gateway_rig.align), rounded to 3 places."""
    pieces = [ref[i : i + size] for i in range(0, len(ref) - size + 1, size)]
    return [round(align(p, out, max_lag=len(out))[1], 3) for p in pieces]


async def radio_call_reaches_us_and_mx(folder: Path, loopback: Loopback, mx: Endpoint) -> None:
    """README step 8's end: US CBP's endpoint service started after the channel was opened
    is in it; a radio call into RCMP's gateway (RTP, G.711) comes out of the US console's
    RTP output as the same audio, and the observer hears it with a verified burst seal."""
    loop = asyncio.get_running_loop()
    us_out = ("127.0.0.1", loopback.rtp_ports["us-cbp"]["output"])
    _, heard = await loop.create_datagram_endpoint(RtpCollector, local_addr=us_out)
    config = str(loopback.endpoint_configs["us-cbp"])
    us = Process(folder / "us-cbp.log", "endpoint", "--config", config)
    try:
        await us.wait_for(f"crossband endpoint {US} -> {loopback.relay_url} (pinned)")
        await us.wait_for("event=connected")
        pcm = speech_like(8000, 1.5, seed=11)
        (folder / "call.s16").write_bytes(pcm)
        ca_in = loopback.rtp_ports["ca-rcmp"]["input"]
        await wait_process(run_sender(ca_in, "pcmu", folder / "call.s16", rate=8000), DEADLINE)
        seal = await next_event(mx, ev.BurstSealed, timeout=DEADLINE, sender=CA)
        assert seal.verified and seal.frames > 50
        frames = len(pcm) // 320  # 20 ms of 8 kHz G.711 per packet
        what = f"{frames - 5} RTP packets out of the US console's output"
        await until(lambda: len(heard.packets) >= frames - 5, DEADLINE, what)
        await heard.wait_quiet(timeout=DEADLINE)  # and then the end of the burst
        got = pcm_array(b"".join(decode_packets([p for _, p in heard.packets], "pcmu")))
        # Each 0.3 s of the call found in the output (a loaded machine may shift what follows
        # a late packet; the whole-call alignment would then blame the audio, not the timing).
        corr = chunk_correlations(pcm_array(pcm), got, 2400)
        print(f"US console output: correlation per 0.3 s {corr}, seal {seal.frames} frames")
        assert sorted(corr)[len(corr) // 2] >= 0.8, f"US console output: correlations {corr}"
    finally:
        heard.close()
        code = us.stop()
    assert code == 0, us.log.read_text()[-2000:]


def open_channel(
    folder: Path, loopback: Loopback, mx_role: str
) -> subprocess.CompletedProcess[str]:
    """deploy/three-agency/open_channel.py as the README's step 8 runs it (US CBP's config)."""
    return subprocess.run(
        [
            sys.executable,
            str(folder / "open_channel.py"),
            *("--config", str(loopback.endpoint_configs["us-cbp"])),
            *("--channel", CH, "--agreement", "public/agr.json"),
            *("--name", "Shiprider incident 4471", "--hours", "6"),
            *("--member", "public/us-cbp_dispatch-blaine.cred=dispatcher"),
            *("--member", "public/ca-rcmp_gw-pacific.cred=member"),
            *("--member", f"public/mx-gn_liaison-1.cred={mx_role}"),
            *("--say", "CBP Blaine: suspect vessel northbound"),
        ],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_walkthrough_writes_every_key_0600_and_the_statements_verify(
    walked: Walkthrough,
) -> None:
    folder = walked.folder
    keys = sorted(folder.glob("offline/*.key")) + sorted(folder.glob("*/keys/*.key"))
    assert [k.relative_to(folder).as_posix() for k in keys] == [
        "offline/ca-rcmp.root.key",
        "offline/mx-gn.root.key",
        "offline/us-cbp.root.key",
        "ca-rcmp/keys/device.key",
        "mx-gn/keys/device.key",
        "relay/keys/relay.key",
        "us-cbp/keys/device.key",
    ]
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
        assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700, key.parent
    modes = walked.output_of("stat -c").split()
    assert modes[::2] == ["600"] * 7
    for root in folder.glob("offline/*.root.key"):  # sealed with each agency's passphrase
        assert json.loads(root.read_text())["sealed"]["kdf"] == "argon2id"
    assert walked.output_of("crossband keys verify --bundle public/trust.json public/agr.json")
    agreement = walked.output_of("crossband keys verify --bundle public/trust.json public/agr")
    assert agreement.startswith("OK agreement shiprider-pacific signed by every party")
    assert "mx-gn=observer" in agreement
    bundle = walked.output_of("crossband keys bundle ")
    for agency in ("us-cbp", "ca-rcmp", "mx-gn"):  # the fingerprint read back out of band
        created = walked.output_of(f"crossband keys root create --agency {agency} ")
        fingerprint = created.split("fingerprint: ")[1].strip()
        assert f"{agency:<12} {fingerprint}" in bundle
    mx = Credential.decode((folder / "mx-gn" / "device.cred").read_bytes())
    assert (mx.device, mx.roles) == ("mx-gn/liaison-1", ("observer",))


async def test_the_example_runs_us_text_reaches_ca_and_mx_and_mx_cannot_send(
    loopback: Loopback, relay: ConfiguredRelay, walked: Walkthrough
) -> None:
    ctx = ssl.create_default_context(cafile=str(walked.folder / "ca" / "ca.pem"))
    health = f"https://127.0.0.1:{loopback.port}/healthz"
    with urllib.request.urlopen(health, timeout=5, context=ctx) as answer:  # noqa: S310
        assert answer.status == 200
        assert json.loads(answer.read()) == {
            "ok": True,
            "store": "ok",
            "audit": "ok",
            "channels": 0,
        }
    folder = walked.folder
    ca = Process(
        folder / "ca-rcmp.log", "endpoint", "--config", str(loopback.endpoint_configs["ca-rcmp"])
    )
    mx = build_endpoint(load_endpoint_config(loopback.endpoint_configs["mx-gn"]), time.time())
    await mx.start()
    try:
        await ca.wait_for(f"crossband endpoint ca-rcmp/gw-pacific -> {loopback.relay_url} (pinned)")
        await mx.wait_connected(DEADLINE)
        # The observer's ceiling is in its credential and the agreement, not in what a
        # dispatcher asks for: making it a member is refused, and nothing is opened.
        upgraded = await asyncio.to_thread(open_channel, folder, loopback, "member")
        assert upgraded.returncode == 2 and "role-not-allowed" in upgraded.stderr, upgraded
        assert "opened" not in upgraded.stdout
        opened = await asyncio.to_thread(open_channel, folder, loopback, "observer")
        assert opened.returncode == 0, opened.stderr
        assert f"opened {CH} epoch 1 with 3 members" in opened.stdout
        msg_id = opened.stdout.split("sent message ")[1].split()[0]
        assert "suspect vessel" not in opened.stdout + opened.stderr  # ids, never content

        got = await next_event(mx, ev.Message, timeout=DEADLINE, channel=CH, sender=US)
        assert got.body == b"CBP Blaine: suspect vessel northbound" and got.id == msg_id
        await ca.wait_for(f"event=channel channel={CH} epoch=1 members=3")
        line = await ca.wait_for(f"event=message channel={CH} id={msg_id}")
        assert f"sender={US} kind=text size={len(got.body)}" in line
        assert "suspect" not in ca.log.read_text()

        # The observer hears but may not speak: refused locally, by the relay, and the floor.
        with pytest.raises(NotPermittedError):
            await mx.send_text(CH, "GN: may I?")
        with pytest.raises(RelayError) as refused:
            await mx._post(CH, "gn-forged-1", b"\x00" * 64, wait=True, timeout=DEADLINE)
        assert refused.value.code == Code.NOT_PERMITTED
        assert await mx.request_floor(CH) == "denied"

        await radio_call_reaches_us_and_mx(folder, loopback, mx)
    finally:
        await mx.stop()
        code = ca.stop()
    assert code == 0, ca.log.read_text()[-2000:]  # SIGTERM: a clean stop
