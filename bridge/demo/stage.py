"""The demo's stage: three agencies' keys, the relay process, six endpoints with their RTP
gateways and simulated radios, and the narrated event log (see :mod:`bridge.demo.main`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bridge.demo.radio import SimRadio, Speaker, open_speaker
from bridge.endpoint import events as ev
from bridge.endpoint.endpoint import Endpoint
from bridge.gateway.rtp import RtpGateway, load_gateway_config
from crypto.agreement import Agreement, verify_agreement
from crypto.identity import AgencyRoot, Credential, DeviceKeys, TrustBundle, issue_credential
from crypto.keyfile import save_device, save_root
from crypto.keys import Kem

CH = "shiprider-4471"
AGENCIES = {
    "us-cbp": "US Customs and Border Protection",
    "ca-rcmp": "Royal Canadian Mounted Police",
    "mx-gn": "Guardia Nacional (Mexico)",
}
# device name -> (agency, kind, roles, role in the channel, alias, KEM)
DEVICES: dict[str, tuple[str, str, tuple[str, ...], str, str, Kem]] = {
    "us-cbp/dispatch-blaine": (
        "us-cbp",
        "console",
        ("dispatcher", "member"),
        "dispatcher",
        "Blaine Sector dispatch",
        Kem.MLKEM768_X25519,
    ),
    "us-cbp/gw-blaine": (
        "us-cbp",
        "radio-gateway",
        ("member",),
        "member",
        "Blaine P25 RoIP gateway",
        Kem.X25519,
    ),
    "ca-rcmp/dispatch-surrey": (
        "ca-rcmp",
        "console",
        ("dispatcher", "member"),
        "dispatcher",
        "RCMP Surrey OCC",
        Kem.MLKEM768_X25519,
    ),
    "ca-rcmp/gw-pacific": (
        "ca-rcmp",
        "radio-gateway",
        ("member",),
        "member",
        "RCMP Pacific RoIP gateway",
        Kem.X25519,
    ),
    "ca-rcmp/vessel-shiprider-1": (
        "ca-rcmp",
        "vessel",
        ("member",),
        "member",
        "Shiprider vessel 1 (joint crew)",
        Kem.MLKEM768_X25519,
    ),
    "mx-gn/c4-tijuana": (
        "mx-gn",
        "console",
        ("observer",),
        "observer",
        "GN C4 Tijuana (observer)",
        Kem.X25519,
    ),
}
GATEWAYS = ("us-cbp/gw-blaine", "ca-rcmp/gw-pacific", "ca-rcmp/vessel-shiprider-1")
PITCH = {
    "us-cbp/gw-blaine": 120.0,
    "ca-rcmp/gw-pacific": 190.0,
    "ca-rcmp/vessel-shiprider-1": 150.0,
}


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Tally:
    bursts: int = 0
    seals_verified: int = 0
    seals_incomplete: int = 0
    messages_sent: int = 0
    messages_delivered: int = 0
    latencies: list[float] = field(default_factory=list)


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Stage:
    """Everything the incident runs on: keys, the relay process, endpoints, gateways, radios,
    and a narrated log of what each position notices."""

    def __init__(self, workdir: Path, duration: float, out: Any = print) -> None:
        self.dir = workdir
        self.duration = duration
        self.pace = max(0.5, min(3.0, duration / 45.0))
        self._out = out
        self.t0 = time.monotonic()
        self.checks: list[Check] = []
        self.tally = Tally()
        self.canaries: list[str] = []
        self.endpoints: dict[str, Endpoint] = {}
        self.gateways: dict[str, RtpGateway] = {}
        self.radios: dict[str, SimRadio] = {}
        self.speakers: dict[str, Speaker] = {}
        self.received: dict[str, list[ev.Event]] = {}
        self._pumps: dict[str, asyncio.Task[None]] = {}
        self._sent_at: dict[tuple[str, int], float] = {}
        self.relay: subprocess.Popen[bytes] | None = None
        self.final_stats: dict[str, dict[str, int]] = {}
        self.plaintext_found = -1
        self.relay_url = ""
        self.relay_drops = "unknown"

    # -- output ---------------------------------------------------------------------------------

    def say(self, what: str, text: str) -> None:
        self._out(f"[{time.monotonic() - self.t0:6.1f}s] {what:<6} {text}", flush=True)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, ok, detail))
        self.say("CHECK", f"{'ok  ' if ok else 'FAIL'} {name}" + (f" ({detail})" if detail else ""))
        return ok

    async def pause(self, seconds: float) -> None:
        await asyncio.sleep(seconds * self.pace)

    # -- set-up -----------------------------------------------------------------------------------

    def make_keys(self) -> tuple[TrustBundle, Agreement, dict[str, tuple[Credential, DeviceKeys]]]:
        keys_dir = self.dir / "keys"
        keys_dir.mkdir(parents=True, exist_ok=True)
        now = int(time.time())
        roots = {}
        for agency, name in AGENCIES.items():
            roots[agency] = AgencyRoot.generate(agency)
            save_root(keys_dir / f"{agency}.root.key", roots[agency], None)
            self.say(
                "KEYS",
                f"{agency}: root created ({name}), fingerprint "
                f"{roots[agency].public.fingerprint[:16]}",
            )
        trust = TrustBundle({a: r.public for a, r in roots.items()})
        (self.dir / "trust.json").write_bytes(trust.encode())
        agreement = Agreement.create(
            "shiprider-pacific",
            "Pacific Shiprider (Mexico observing)",
            {
                "us-cbp": ["dispatcher", "member"],
                "ca-rcmp": ["dispatcher", "member"],
                "mx-gn": ["observer"],
            },
            now - 60,
            now + 30 * 86400,
        )
        for agency in ("us-cbp", "ca-rcmp", "mx-gn"):
            agreement = agreement.add_signature(roots[agency])
            self.say(
                "KEYS",
                f"{agency} signed agreement '{agreement.name}' "
                f"({len(agreement.signatures)}/3 signatures)",
            )
        verify_agreement(agreement, trust, now)
        (self.dir / "agreement.json").write_bytes(agreement.encode())
        devices = {}
        for serial, (device, (agency, kind, roles, _role, alias, kem)) in enumerate(
            DEVICES.items(), start=1
        ):
            dk = DeviceKeys.generate(kem)
            cred = issue_credential(
                roots[agency],
                device.split("/", 1)[1],
                dk,
                roles=roles,
                not_before=now - 60,
                not_after=now + 86400,
                serial=serial,
                kind=kind,
                alias=alias,
            )
            save_device(keys_dir / f"{device.replace('/', '_')}.key", device, dk, None)
            (keys_dir / f"{device.replace('/', '_')}.cred").write_bytes(cred.encode())
            devices[device] = (cred, dk)
            self.say("KEYS", f"{device}: {kind}, roles {','.join(roles)}, HPKE {kem.value}")
        return trust, agreement, devices

    def start_relay(self) -> str:
        rdir = self.dir / "relay"
        rdir.mkdir(exist_ok=True)
        shutil.copy(self.dir / "trust.json", rdir / "trust.json")
        port = _free_port(socket.SOCK_STREAM)
        cfg = {
            "relay_id": "demo-relay",
            "host": "127.0.0.1",
            "port": port,
            "udp_port": _free_port(socket.SOCK_DGRAM),
            "trust_bundle": "trust.json",
            "database": "relay.db",
            "audit_log": "audit.log",
            "max_talk_time": 30,
        }
        (rdir / "relay.yaml").write_text(yaml.safe_dump(cfg))
        ready = rdir / "ready.json"
        with open(rdir / "relay.log", "wb") as log:
            self.relay = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bridge.cli.relay",
                    "--config",
                    str(rdir / "relay.yaml"),
                    "--ready-file",
                    str(ready),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while not ready.exists():
            if self.relay.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the relay did not start; see " + str(rdir / "relay.log"))
            time.sleep(0.05)
        url = str(json.loads(ready.read_text())["url"])
        self.relay_url = url
        self.say("RELAY", f"relay process {self.relay.pid} listening on {url} (SQLite, audit log)")
        return url

    async def connect(
        self, device: str, cred: Credential, keys: DeviceKeys, trust: TrustBundle, url: str
    ) -> Endpoint:
        ep = Endpoint(
            cred, keys, trust, url, str(self.dir / "state" / f"{device.replace('/', '_')}.db")
        )
        ep.voice_sent_hook = lambda ch, ctr, t, d=device: self._sent_at.__setitem__((d, ctr), t)
        await ep.start()
        await ep.wait_connected(15)
        self.endpoints[device] = ep
        self.received.setdefault(device, [])
        if device in GATEWAYS:
            speaker = self.speakers.get(device) or await open_speaker(device)
            self.speakers[device] = speaker
            rtp = {
                "rate": 16000,
                "channels": [
                    {
                        "channel": CH,
                        "input": {"port": 0, "payload": "pcmu", "hang_time": 0.4},
                        "output": {"port": speaker.port, "payload": "pcmu"},
                    }
                ],
            }
            gw = RtpGateway(ep, load_gateway_config(rtp))
            await gw.start(pump_events=False)
            self.gateways[device] = gw
            host, port = gw.input_address(CH)
            radio = SimRadio(device, host, port, PITCH[device])
            await radio.start()
            if device in self.radios:
                self.radios[device].close()
            self.radios[device] = radio
        self._pumps[device] = asyncio.create_task(self._pump(device, ep))
        return ep

    async def disconnect(self, device: str) -> None:
        task = self._pumps.pop(device, None)
        if task:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        gw = self.gateways.pop(device, None)
        if gw is not None:
            await gw.stop()
        ep = self.endpoints.pop(device, None)
        if ep is not None:
            prior = self.final_stats.get(device, {})  # keep the counters for the summary
            self.final_stats[device] = {k: prior.get(k, 0) + v for k, v in ep.stats.items()}
            await ep.stop()

    async def _pump(self, device: str, ep: Endpoint) -> None:
        while True:
            event = await ep.events.get()
            gw = self.gateways.get(device)
            if gw is not None:
                gw.handle_event(event)
            self.received[device].append(event)
            self._observe(device, event)

    def _observe(self, device: str, e: ev.Event) -> None:
        """Log what a person at each position would notice (one line per event of note)."""
        main = device == "mx-gn/c4-tijuana"  # narrate from the observer's console
        if isinstance(e, ev.Voice):
            sent = self._sent_at.get((e.sender, e.ctr))
            if sent is not None and e.received_at >= sent:
                self.tally.latencies.append(e.received_at - sent)
        elif isinstance(e, ev.TalkerChanged) and main:
            who = e.talker or "nobody"
            self.say(
                "FLOOR",
                f"{e.channel}: talking now: {who}"
                + (f" [{e.priority}]" if e.priority else "")
                + f" ({e.reason})",
            )
        elif isinstance(e, ev.Emergency) and main:
            self.say(
                "EMERG", f"{e.channel}: emergency {'DECLARED' if e.active else 'cleared'} by {e.by}"
            )
        elif isinstance(e, ev.BurstSealed):
            if e.verified:
                self.tally.seals_verified += 1
            else:
                self.tally.seals_incomplete += 1
            if main:
                self.say(
                    "SEAL",
                    f"burst by {e.sender}: {e.frames} frames sealed, "
                    f"{e.received} received, signature "
                    f"{'verified, complete' if e.verified else 'valid, frames missing'}",
                )
        elif isinstance(e, ev.Message):
            self.tally.messages_delivered += 1
            if main or device == "ca-rcmp/vessel-shiprider-1":
                self.say("MSG", f"{device} <- {e.sender}: {e.body.decode(errors='replace')!r}")
        elif (
            isinstance(e, ev.FloorEvent)
            and e.device == device
            and e.event in ("queued", "denied", "revoked")
        ):
            self.say(
                "FLOOR",
                f"{device}: floor {e.event}"
                + (f" ({e.reason})" if e.reason else "")
                + (f", position {e.position}" if e.position is not None else ""),
            )
        elif isinstance(e, ev.ChannelUpdated) and main:
            self.say("CHAN", f"{e.channel} '{e.name}' epoch {e.epoch}: {len(e.roster)} members")
        elif isinstance(e, ev.Error):
            self.say("ERROR", f"{device}: {e.code} {e.detail}")

    # -- helpers for the script ------------------------------------------------------------------

    def events(self, device: str, kind: type, since: int = 0) -> list[Any]:
        return [e for e in self.received.get(device, [])[since:] if isinstance(e, kind)]

    def mark(self, device: str) -> int:
        return len(self.received.get(device, []))

    async def radio_call(self, device: str, seconds: float) -> int:
        self.say("RADIO", f"{device}: key up ({seconds:.1f} s of voice into its RTP gateway)")
        frames = await self.radios[device].talk(seconds)
        self.tally.bursts += 1
        return frames

    async def message(self, sender: str, text: str) -> None:
        canary = f"canary-{secrets.token_hex(6)}"
        self.canaries.append(canary)
        await self.endpoints[sender].send_text(CH, f"{text} [{canary}]")
        self.tally.messages_sent += 1
        self.say("SEND", f"{sender}: {text!r} (accepted by the relay, stored durably)")

    async def wait_for(
        self, who: str, kind: type, since: int, count: int = 1, timeout: float = 10.0, **match: Any
    ) -> list[Any]:
        deadline = time.monotonic() + timeout
        while True:
            found = [
                e
                for e in self.events(who, kind, since)
                if all(getattr(e, k) == v for k, v in match.items())
            ]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.05)

    # -- the incident ----------------------------------------------------------------------------
