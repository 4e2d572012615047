"""``crossband demo``: the whole system on one machine, playing a cross-border incident.

What runs, all real: three agencies (US CBP, RCMP, Guardia Nacional) create roots, issue
device credentials and sign a trilateral Shiprider agreement in turn; the relay runs as its own
process with SQLite and an audit log; six endpoints connect (two dispatch consoles, two radio
gateways, a joint vessel, and a Mexican observer console); simulated radio equipment talks real
RTP (G.711) into the gateways' RTP adapters on loopback and listens to their output.

The incident (:mod:`bridge.demo.incident`): a US radio call heard across the border, two
Canadian talkers keying up at once (floor contention), the vessel's emergency preempting a US
talker, dispatch messages, a compromised gateway removed mid-incident (it cannot hear the next
epoch), and the vessel dropping its link and catching up on missed messages once, in order.
At the end: the relay's files and memory are searched for the messages' plaintext canaries, its
audit log is verified, and a summary and every check are printed. ``--duration N`` bounds the
run; the exit code is 0 only if every check held.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bridge.demo.cast import percentile
from bridge.demo.incident import MISSED, Incident
from bridge.demo.memscan import MemoryScanError, process_memory
from bridge.relay.audit import verify_file

PUBLIC_MARKER = b"us-cbp/dispatch-blaine"  # a device id: public, so the relay must hold it


class Demo(Incident):
    """The run, the final checks and the summary."""

    plaintext_found: int | None = None  # None: the relay's memory could not be searched
    relay_drops = "unknown"

    async def run(self) -> bool:
        deadline = self.t0 + self.duration
        self.say("START", f"Crossband demo: three agencies, one incident ({self.dir})")
        await self.start_native()
        world = self.make_world()
        url = self.start_relay(world)
        try:
            for device in world.devices.values():
                await self.connect(device, world, url)
                self.say("JOIN", f"{device.id} connected and authenticated ({device.cred.alias})")
            await self.script(world)
            while time.monotonic() < deadline - 8:  # routine traffic until the time is up
                await self.radio_call("us-cbp/gw-blaine", 1.5)
                await self.pause(1.0)
                await self.message("ca-rcmp/dispatch-surrey", "Routine: all units status check")
                await self.pause(2.0)
            await self.pause(1.0)
        finally:
            await self.close()
        self.final_checks()
        return self.summary()

    def final_checks(self) -> None:
        self.check(
            "the vessel still holds every missed message exactly once, in order",
            self.missed_received() == list(MISSED),
        )
        assert self.relay is not None
        self.relay_drops = self._relay_drops()
        memory, unreadable = b"", "the relay is not running"
        if self.relay.running and self.relay.proc is not None:
            try:
                memory, unreadable = process_memory(self.relay.proc.pid), ""
            except MemoryScanError as exc:
                unreadable = str(exc)
        self.relay.stop()
        self.check(
            "the relay's process memory was searched (and holds the public device ids)",
            bool(memory) and PUBLIC_MARKER in memory,
            unreadable or f"{len(memory) // 2**20} MiB read",
        )
        blobs = [p.read_bytes() for p in sorted(self.relay.dir.iterdir()) if p.is_file()]
        found = sum(1 for c in self.canaries for b in [*blobs, memory] if c.encode() in b)
        self.plaintext_found = found if memory else None
        self.check(
            "plaintext found at the relay (database, logs, audit log, memory): 0",
            found == 0 and bool(memory) and bool(self.canaries) and len(blobs) >= 3,
            f"{len(self.canaries)} canaries searched in {len(blobs)} files"
            + (" and process memory" if memory else " (NOT in memory: unreadable)"),
        )
        result = verify_file(self.relay.audit_log)
        self.check(
            "the relay's audit log verifies (hash chain intact)",
            result.ok and result.records > 0,
            f"{result.records} records",
        )

    def _relay_drops(self) -> str:
        """What the relay dropped, by reason, from its /metrics (no content there)."""
        assert self.relay is not None
        try:
            text = self.relay.metrics()
        except OSError:
            return "unavailable"
        drops = [
            line.split('reason="')[1].replace('"}', ":")
            for line in text.splitlines()
            if line.startswith("crossband_frames_dropped_by_reason_total{")
        ]
        return ", ".join(drops) or "none"

    def summary(self) -> bool:
        lat = self.tally.latencies
        found = "unknown" if self.plaintext_found is None else str(self.plaintext_found)
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
            f"voice latency endpoint->endpoint: p50 {1000 * percentile(lat, 0.5):.1f} ms, "
            f"p95 {1000 * percentile(lat, 0.95):.1f} ms ({len(lat)} frames)",
            f"frames dropped by the relay: {self.relay_drops}",
            f"plaintext found at the relay: {found}",
            f"checks: {sum(c.ok for c in self.checks)} passed, "
            f"{sum(not c.ok for c in self.checks)} failed",
        ]
        for line in lines:
            self.line(line)
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
        if demo.relay is not None:
            demo.relay.stop()
        ok = False
    finally:  # never leave a server running, whatever ended the run (Ctrl-C too)
        demo.stop_servers()
        if demo.relay is not None:
            demo.relay.stop()
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
