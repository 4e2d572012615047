"""``crossband demo``: the whole system on one machine, playing a cross-border incident.

What runs, all real: three agencies (US CBP, RCMP, Guardia Nacional) create roots, issue
device credentials and sign a trilateral Shiprider agreement in turn; the relay runs as its own
process with SQLite and an audit log; six endpoints connect (two dispatch consoles, two radio
gateways, a joint vessel, and a Mexican observer console); simulated radio equipment talks real
RTP (G.711) into the gateways' RTP adapters on loopback and listens to their output.

The incident: a US radio call heard across the border, two Canadian talkers keying up at once
(floor contention), the vessel's emergency preempting a US talker, dispatch messages, a
compromised gateway removed mid-incident (it cannot hear the next epoch), and the vessel
dropping its link and catching up on missed messages once, in order. At the end: a summary and
every check. ``--duration N`` bounds the run; the exit code is 0 only if every check held.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bridge.audio.talk import TalkSender
from bridge.demo.memscan import process_memory
from bridge.demo.radio import RATE, voice_like
from bridge.demo.stage import CH, DEVICES, Stage, _percentile
from bridge.endpoint import events as ev
from bridge.relay.audit import verify_file
from crypto.agreement import Agreement
from crypto.identity import Credential, DeviceKeys


class Demo(Stage):
    """The incident script, the final checks and the summary."""

    async def run(self) -> bool:
        deadline = self.t0 + self.duration
        self.say("START", f"Crossband demo: three agencies, one incident ({self.dir})")
        trust, agreement, devices = self.make_keys()
        url = self.start_relay()
        try:
            for device, (cred, keys) in devices.items():
                await self.connect(device, cred, keys, trust, url)
                self.say("JOIN", f"{device} connected and authenticated ({cred.alias})")
            await self.script(devices, agreement)
            while time.monotonic() < deadline - 8:  # routine traffic until the time is up
                await self.radio_call("us-cbp/gw-blaine", 1.5)
                await self.pause(1.0)
                await self.message("ca-rcmp/dispatch-surrey", "Routine: all units status check")
                await self.pause(2.0)
            await asyncio.sleep(1.0)
        finally:
            for device in list(self.endpoints):
                await self.disconnect(device)
            for radio in self.radios.values():
                radio.close()
        self.final_checks()
        return self.summary()

    async def script(
        self, devices: dict[str, tuple[Credential, DeviceKeys]], agreement: Agreement
    ) -> None:
        disp_us = self.endpoints["us-cbp/dispatch-blaine"]
        members = [(devices[d][0], spec[3]) for d, spec in DEVICES.items()]
        self.say(
            "CHAN",
            f"us-cbp/dispatch-blaine opens incident channel {CH} under "
            f"'{agreement.name}' with {len(members)} members",
        )
        await disp_us.commit(
            CH,
            members,
            agreement=agreement,
            name="Shiprider incident 4471",
            expires=int(time.time()) + 6 * 3600,
        )
        for d in self.endpoints:
            await self.wait_for(d, ev.ChannelUpdated, 0, timeout=10)
        self.check(
            "every member verified epoch 1 itself",
            all(self.events(d, ev.ChannelUpdated) for d in self.endpoints),
        )
        await self.pause(1.0)

        # 1. A US radio call heard on the Canadian side, by the vessel and by Mexico's observer.
        marks = {d: self.mark(d) for d in self.endpoints}
        before = {d: s.voiced for d, s in self.speakers.items()}
        await self.radio_call("us-cbp/gw-blaine", 3.0)
        await asyncio.sleep(1.0)
        heard = {d: s.voiced - before[d] for d, s in self.speakers.items()}
        self.check(
            "US radio call reached the Canadian gateway and the vessel as audio",
            heard["ca-rcmp/gw-pacific"] > 100 and heard["ca-rcmp/vessel-shiprider-1"] > 100,
            f"voiced RTP packets out: {heard}",
        )
        seals = await self.wait_for(
            "mx-gn/c4-tijuana", ev.BurstSealed, marks["mx-gn/c4-tijuana"], sender="us-cbp/gw-blaine"
        )
        self.check(
            "Mexican observer heard it with a verified burst seal",
            bool(seals) and seals[0].verified,
            f"{seals[0].received} of {seals[0].frames} sealed frames" if seals else "no seal",
        )
        await self.pause(1.0)

        # 2. Contention: the Canadian gateway and the vessel key up at the same moment.
        marks = {d: self.mark(d) for d in self.endpoints}
        await asyncio.gather(
            self.radio_call("ca-rcmp/gw-pacific", 2.0),
            self.radio_call("ca-rcmp/vessel-shiprider-1", 2.0),
        )
        await asyncio.sleep(1.0)
        grants = self.events("mx-gn/c4-tijuana", ev.FloorEvent, marks["mx-gn/c4-tijuana"])
        granted = [e.device for e in grants if e.event == "granted"]
        waited = [
            e
            for d in ("ca-rcmp/gw-pacific", "ca-rcmp/vessel-shiprider-1")
            for e in self.events(d, ev.FloorEvent, marks[d])
            if e.device == d and e.event in ("queued", "denied")
        ]
        self.check(
            "simultaneous key-up: exactly one talker at a time, the other waited",
            len(waited) >= 1 and len(granted) >= 1,
            f"granted {granted}",
        )
        await self.pause(1.0)

        # 3. Emergency: the vessel's crew hits the emergency button while the US talks.
        marks = {d: self.mark(d) for d in self.endpoints}
        vessel = self.endpoints["ca-rcmp/vessel-shiprider-1"]
        us_call = asyncio.create_task(self.radio_call("us-cbp/gw-blaine", 4.0))
        await asyncio.sleep(1.0)
        self.say("EMERG", "ca-rcmp/vessel-shiprider-1: crew presses EMERGENCY on the console")
        sender = TalkSender(vessel, CH, RATE)
        sender.start("emergency")
        pcm = voice_like(2.0, 150.0, seed=7)
        for i in range(0, len(pcm) - 160 + 1, 160):
            sender.send(pcm[i : i + 160].tobytes())
            await asyncio.sleep(0.02)
        await sender.aclose()
        self.tally.bursts += 1
        await us_call
        revoked = await self.wait_for(
            "us-cbp/gw-blaine",
            ev.FloorEvent,
            marks["us-cbp/gw-blaine"],
            event="revoked",
            device="us-cbp/gw-blaine",
        )
        self.check(
            "the emergency preempted the US talker",
            bool(revoked) and revoked[0].reason == "preempted",
        )
        emerg = {d: bool(self.events(d, ev.Emergency, marks[d])) for d in self.endpoints}
        self.check(
            "every position saw the channel's emergency state", all(emerg.values()), str(emerg)
        )
        await self.endpoints["ca-rcmp/dispatch-surrey"].clear_emergency(CH)
        self.say("EMERG", "ca-rcmp/dispatch-surrey clears the emergency")
        await self.pause(1.0)

        # 4. Dispatch messages across the border, seen by the observer.
        marks = {d: self.mark(d) for d in self.endpoints}
        await self.message(
            "us-cbp/dispatch-blaine",
            "Suspect vessel northbound, 2 nm west of Point Roberts; Shiprider 1 intercept",
        )
        await self.message("ca-rcmp/dispatch-surrey", "Copy. RCMP air unit en route")
        got = await self.wait_for("mx-gn/c4-tijuana", ev.Message, marks["mx-gn/c4-tijuana"], 2)
        self.check(
            "both dispatch messages reached the observer, signatures verified", len(got) == 2
        )
        await self.pause(1.0)

        # 5. The Pacific gateway is reported compromised: removed by a new commit.
        marks = {d: self.mark(d) for d in self.endpoints}
        keep = [
            (devices[d][0], spec[3]) for d, spec in DEVICES.items() if d != "ca-rcmp/gw-pacific"
        ]
        self.say("CHAN", "us-cbp/dispatch-blaine removes ca-rcmp/gw-pacific (reported stolen)")
        await disp_us.commit(CH, keep)
        removed = await self.wait_for(
            "ca-rcmp/gw-pacific", ev.ChannelUpdated, marks["ca-rcmp/gw-pacific"], epoch=2
        )
        self.check("the removed gateway learned it is out", bool(removed) and removed[0].removed)
        for d in ("ca-rcmp/vessel-shiprider-1", "mx-gn/c4-tijuana"):
            await self.wait_for(d, ev.ChannelUpdated, marks[d], epoch=2)
        gw = self.endpoints["ca-rcmp/gw-pacific"]
        undecryptable = gw.stats["voice_undecryptable"]
        pacific_voiced = self.speakers["ca-rcmp/gw-pacific"].voiced
        mark_obs = self.mark("mx-gn/c4-tijuana")
        await self.radio_call("us-cbp/gw-blaine", 2.0)
        await asyncio.sleep(1.0)
        heard_obs = self.events("mx-gn/c4-tijuana", ev.Voice, mark_obs)
        self.check(
            "after removal the others still hear, the removed gateway hears nothing",
            len(heard_obs) > 50
            and not self.events("ca-rcmp/gw-pacific", ev.Voice, marks["ca-rcmp/gw-pacific"])
            and self.speakers["ca-rcmp/gw-pacific"].voiced == pacific_voiced,
            f"observer frames {len(heard_obs)}, removed gateway: undecryptable "
            f"{gw.stats['voice_undecryptable'] - undecryptable}",
        )
        await self.pause(1.0)

        # 6. The vessel loses its link; messages wait at the relay; it catches up once, in order.
        vessel_cred, vessel_keys = devices["ca-rcmp/vessel-shiprider-1"]
        self.say("LINK", "ca-rcmp/vessel-shiprider-1 loses its satellite link")
        await self.disconnect("ca-rcmp/vessel-shiprider-1")
        missed = [
            "Vessel 1: suspect craft stopped at Boundary Bay",
            "Vessel 1: hold for CBP boarding team",
            "Vessel 1: RCMP air unit overhead",
        ]
        for text in missed:
            await self.message(
                "ca-rcmp/dispatch-surrey" if "RCMP" in text else "us-cbp/dispatch-blaine", text
            )
        await self.pause(1.5)
        self.say("LINK", "ca-rcmp/vessel-shiprider-1 link restored; reconnecting")
        self.received["ca-rcmp/vessel-shiprider-1"] = []
        await self.connect(
            "ca-rcmp/vessel-shiprider-1",
            vessel_cred,
            vessel_keys,
            self.endpoints["us-cbp/dispatch-blaine"].trust,
            self.endpoints["us-cbp/dispatch-blaine"].relay_url,
        )
        got = await self.wait_for(
            "ca-rcmp/vessel-shiprider-1", ev.Message, 0, len(missed), timeout=15
        )
        texts = [m.body.decode().rsplit(" [", 1)[0] for m in got]
        self.check(
            "the vessel got every missed message once, in order",
            texts == missed,
            f"{len(texts)} of {len(missed)}",
        )
        await self.pause(1.0)

    # -- the end ---------------------------------------------------------------------------------

    def _relay_memory(self) -> bytes:
        if self.relay is None or self.relay.poll() is not None:
            return b""
        return process_memory(self.relay.pid)

    def _relay_drops(self) -> str:
        """What the relay dropped, by reason, from its /metrics (no content there)."""
        import urllib.request

        url = self.relay_url.replace("ws://", "http://").replace("/ws", "/metrics")
        try:
            text = urllib.request.urlopen(url, timeout=5).read().decode()  # noqa: S310
        except OSError:
            return "unavailable"
        drops = [
            line.split('reason="')[1].replace('"}', ":")
            for line in text.splitlines()
            if line.startswith("crossband_frames_dropped_by_reason_total{")
        ]
        return ", ".join(drops) or "none"

    def final_checks(self) -> None:
        self.relay_drops = self._relay_drops()
        memory = self._relay_memory()
        if self.relay is not None and self.relay.poll() is None:
            self.relay.send_signal(signal.SIGTERM)
            try:
                self.relay.wait(10)
            except subprocess.TimeoutExpired:
                self.relay.kill()
        rdir = self.dir / "relay"
        blobs = [p.read_bytes() for p in rdir.iterdir() if p.is_file()]
        found = sum(1 for c in self.canaries for b in [*blobs, memory] if c.encode() in b)
        self.plaintext_found = found
        self.check(
            "plaintext found at the relay (database, logs, audit log, memory): 0",
            found == 0 and bool(self.canaries),
            f"{len(self.canaries)} canaries searched in {len(blobs)} files"
            + (" and process memory" if memory else ""),
        )
        result = verify_file(rdir / "audit.log")
        self.check(
            "the relay's audit log verifies (hash chain intact)",
            result.ok,
            f"{result.records} records",
        )

    def summary(self) -> bool:
        lat = self.tally.latencies
        lines = [
            "",
            "==== Crossband demo summary ====",
            f"talk bursts:               {self.tally.bursts}",
            f"voice frames sent:         {self._stat('voice_sent')}",
            f"voice frames received:     {self._stat('voice_received')}",
            f"voice frames decrypted:    {self._stat('voice_decrypted')}",
            f"burst seals verified:      {self.tally.seals_verified} "
            f"(incomplete: {self.tally.seals_incomplete})",
            f"messages sent / delivered: {self.tally.messages_sent} / "
            f"{self.tally.messages_delivered}",
            f"voice latency endpoint->endpoint: p50 {1000 * _percentile(lat, 0.5):.1f} ms, "
            f"p95 {1000 * _percentile(lat, 0.95):.1f} ms ({len(lat)} frames)",
            f"frames dropped by the relay: {self.relay_drops}",
            f"plaintext found at the relay: {self.plaintext_found}",
            f"checks: {sum(c.ok for c in self.checks)} passed, "
            f"{sum(not c.ok for c in self.checks)} failed",
        ]
        for line in lines:
            self._out(line, flush=True)
        return all(c.ok for c in self.checks) and bool(self.checks)

    def _stat(self, key: str) -> int:
        return sum(s.get(key, 0) for s in self.final_stats.values())


async def _main(args: argparse.Namespace) -> int:
    workdir = (
        Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="crossband-demo-"))
    )
    workdir.mkdir(parents=True, exist_ok=True)
    demo = Demo(workdir, float(args.duration))
    try:
        ok = await demo.run()
    except Exception as exc:  # the demo must end with a verdict, not a traceback
        demo.check("demo ran to the end", False, f"{type(exc).__name__}: {exc}")
        if demo.relay is not None and demo.relay.poll() is None:
            demo.relay.kill()
        ok = False
    print(
        f"\nresult: {'ALL CHECKS PASSED' if ok else 'SOME CHECKS FAILED'} "
        f"(state kept in {workdir})",
        flush=True,
    )
    return 0 if ok else 1


def _run(args: argparse.Namespace) -> int:
    if args.duration < 30:
        print("crossband: error: --duration must be at least 30 seconds", file=sys.stderr)
        return 2
    return asyncio.run(_main(args))


def register(subparsers: Any) -> None:
    sp = subparsers.add_parser("demo", help="run the three-agency incident demo on this machine")
    sp.add_argument(
        "--duration",
        type=float,
        default=45.0,
        help="seconds the demo may run (at least 30; default 45)",
    )
    sp.add_argument("--workdir", help="keep keys, relay database and logs here")
    sp.set_defaults(func=_run)
