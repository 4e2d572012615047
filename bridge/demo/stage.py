"""The demo's stage: the three agencies' keys, the relay process, six endpoints with their RTP
gateways and simulated radios (see :mod:`bridge.demo.main` for the incident played on it).

The keys come from the builder the tests use (:mod:`bridge.demo.world`) and are saved as the
files an operator would hold. Each endpoint's events are pumped into a per-position list (and
into its gateway, which plays voice out as RTP); :meth:`Stage.wait_for` waits for events with a
deadline, woken by each arrival rather than by polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from adapters.rtp.adapter import RtpAdapter
from adapters.rtp.mapping import load_gateway_config
from bridge.demo.cast import CH, DEVICES, GATEWAYS, NATIVE, PITCH, Position
from bridge.demo.narrator import Narrator
from bridge.demo.radio import SimRadio, Speaker, open_speaker
from bridge.demo.relay_process import RelayProcess
from bridge.demo.world import AGENCIES, AGENCY_NAMES, Device, World, make_world
from bridge.endpoint import events as ev
from bridge.endpoint.endpoint import Endpoint
from bridge.gateway import Binding, ChannelAudio, Gateway
from crypto.agreement import verify_agreement


class Stage(Narrator):
    """Everything the incident runs on: keys, the relay process, endpoints, gateways, radios."""

    def __init__(self, workdir: Path, duration: float, out: Any = print) -> None:
        super().__init__(out)
        self.dir = workdir
        self.duration = duration
        self.pace = max(0.5, min(3.0, duration / 45.0))
        self.canaries: list[str] = []
        self.cast: dict[str, Position] = dict(DEVICES)  # and the native bridges that are up
        self.endpoints: dict[str, Endpoint] = {}
        self.gateways: dict[str, Gateway] = {}
        self.radios: dict[str, SimRadio] = {}
        self.speakers: dict[str, Speaker] = {}
        self.received: dict[str, list[ev.Event]] = {}
        self._pumps: dict[str, asyncio.Task[None]] = {}
        self._arrival = asyncio.Condition()
        self.relay: RelayProcess | None = None
        self.final_stats: dict[str, dict[str, int]] = {}

    async def pause(self, seconds: float) -> None:
        """A beat of the story (scaled to the run's duration); nothing is checked after it."""
        await asyncio.sleep(seconds * self.pace)

    # -- set-up -----------------------------------------------------------------------------------

    def make_world(self) -> World:
        """Roots, the trilateral agreement signed by each agency in turn, the cast's devices."""
        now = int(time.time())
        world = make_world(
            now=now,
            agreement_id="shiprider-pacific",
            agreement_name="Pacific Shiprider (Mexico observing)",
            days=30,
        )
        for agency in AGENCIES:
            fingerprint = world.roots[agency].public.fingerprint[:16]
            name = AGENCY_NAMES[agency]
            self.say("KEYS", f"{agency}: root created ({name}), fingerprint {fingerprint}")
        for signed, agency in enumerate(AGENCIES, start=1):
            self.say(
                "KEYS",
                f"{agency} signed agreement '{world.agreement.name}' "
                f"({signed}/{len(AGENCIES)} signatures)",
            )
        verify_agreement(world.agreement, world.trust, now)
        for device, pos in self.cast.items():
            agency, name = device.split("/", 1)
            world.device(agency, name, pos.roles, pos.kem, kind=pos.kind, alias=pos.alias, days=1)
            roles = ",".join(pos.roles)
            self.say("KEYS", f"{device}: {pos.kind}, roles {roles}, HPKE {pos.kem.value}")
        world.save(self.dir)
        return world

    def start_relay(self, world: World) -> str:
        self.relay = RelayProcess(self.dir / "relay", world.trust, "demo-relay", max_talk_time=30)
        self.relay.start()
        assert self.relay.proc is not None
        self.say(
            "RELAY",
            f"relay process {self.relay.proc.pid} listening on {self.relay.url} "
            "(SQLite, audit log)",
        )
        return self.relay.url

    async def connect(self, device: Device, world: World, url: str) -> Endpoint:
        name = device.id
        state = self.dir / "state" / f"{name.replace('/', '_')}.db"
        ep = Endpoint(device.cred, device.keys, world.trust, url, str(state))
        ep.voice_sent_hook = lambda ch, ctr, t, d=name: self.sent_at.__setitem__((d, ctr), t)
        await ep.start()
        await ep.wait_connected(15)
        self.endpoints[name] = ep
        self.received.setdefault(name, [])
        if name in GATEWAYS or name in NATIVE:
            await self._attach_gateway(name, ep)
        self._pumps[name] = asyncio.create_task(self._pump(name, ep))
        return ep

    async def _attach_gateway(self, name: str, ep: Endpoint) -> None:
        speaker = self.speakers.get(name) or await open_speaker(name)
        self.speakers[name] = speaker
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
        (mapping,) = load_gateway_config(rtp)
        adapter = RtpAdapter(mapping)
        audio = ChannelAudio(
            mapping.codec, mapping.bitrate, mapping.jitter_min_ms, mapping.jitter_max_ms
        )
        gw = Gateway(ep, [Binding(CH, adapter, audio)])
        await gw.start(pump_events=False)
        self.gateways[name] = gw
        host, port = adapter.input_address
        radio = SimRadio(name, host, port, PITCH[name])
        await radio.start()
        if name in self.radios:
            self.radios[name].close()
        self.radios[name] = radio

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

    async def close(self) -> None:
        for device in list(self.endpoints):
            await self.disconnect(device)
        for radio in self.radios.values():
            radio.close()
        for speaker in self.speakers.values():
            speaker.close()

    async def _pump(self, device: str, ep: Endpoint) -> None:
        while True:
            event = await ep.events.get()
            gw = self.gateways.get(device)
            if gw is not None:
                gw.handle_event(event)
            self.received[device].append(event)
            self.observe(device, event)
            async with self._arrival:
                self._arrival.notify_all()

    # -- helpers for the script ------------------------------------------------------------------

    def events(self, device: str, kind: type, since: int = 0) -> list[Any]:
        return [e for e in self.received.get(device, [])[since:] if isinstance(e, kind)]

    def mark(self, device: str) -> int:
        return len(self.received.get(device, []))

    async def radio_call(self, device: str, seconds: float, voice: np.ndarray | None = None) -> int:
        self.say("RADIO", f"{device}: key up ({seconds:.1f} s of voice into its RTP gateway)")
        frames = await self.radios[device].talk(seconds, voice=voice)
        self.tally.bursts += 1
        return frames

    def canary(self) -> str:
        """A fresh marker for a message's plaintext, searched for at the relay at the end."""
        canary = f"canary-{secrets.token_hex(6)}"
        self.canaries.append(canary)
        return canary

    async def message(self, sender: str, text: str) -> None:
        canary = self.canary()
        await self.endpoints[sender].send_text(CH, f"{text} [{canary}]")
        self.tally.messages_sent += 1
        self.say("SEND", f"{sender}: {text!r} (accepted by the relay, stored durably)")

    async def wait_for(
        self, who: str, kind: type, since: int, count: int = 1, timeout: float = 10.0, **match: Any
    ) -> list[Any]:
        """The events of ``kind`` (fields equal to ``match``) that ``who`` received since
        ``since``, once there are ``count`` of them or ``timeout`` passed: the caller checks."""

        def found() -> list[Any]:
            return [
                e
                for e in self.events(who, kind, since)
                if all(getattr(e, k) == v for k, v in match.items())
            ]

        async with self._arrival:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._arrival.wait_for(lambda: len(found()) >= count), timeout
                )
        return found()

    async def until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Whether ``condition`` came true within ``timeout`` (for counters that datagrams
        update, such as a speaker's); the caller checks the answer."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True
