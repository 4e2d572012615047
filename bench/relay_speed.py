"""Issue 7 speed targets, each figure printed beside its reference from the same run.

    .venv/bin/python bench/relay_speed.py [--quick] [--phases udp,ws,churn,flood,flood-dispatcher]
        [--loops asyncio,uvloop] [--patch NAMES] [--profile PHASE] [--pyspy]

Two real relay processes (``bridge.cli.relay`` started through :mod:`bench.relay_patched`,
which only chooses the event loop: ``asyncio-loop`` forces the standard loop, ``uvloop``
installs uvloop's policy) serve the same channels (200 UDP x 10 listeners + 20 WebSocket x 10)
from their own databases, both pinned to CPU 0 and idle while the other is measured; this
process (CPU 1) is the load generator and every client (:mod:`bench.relay_load`). Every
comparison is interleaved round by round (reference, relay, reference, relay, ...) and reported
as the median round with the range over rounds:

- **udp**: frames/s out at saturation, relay vs the bare asyncio UDP forwarder (same fan-out of
  10, the very datagrams a talker sends), forwarder and relay on each loop.
  Target: relay / bare asyncio forwarder >= 0.75.
- **ws**: WebSocket fan-out at saturation, then latency at half that load; reference: the bare
  forwarder's UDP latency at the same frames/s in (the machine's floor). Target: p99 <= 2 ms.
- **churn**: UDP voice latency of bystander channels at half the UDP saturation load, with
  and without another channel's floor changing hands 10x/s (:class:`bench.relay_stress.Churn`).
  Target: p99 <= 2 ms.
- **flood**: the same, with and without an authenticated device in no channel flooding the
  relay with 4 MB commits (fault 7, :class:`bench.relay_stress.Flood`), validly signed by a
  third device and naming its (new) channel and epoch; **flood-dispatcher** the same from a
  device holding the dispatcher role (which the relay cannot refuse by role alone).
  Target: p99 <= 5 ms.

``--profile PHASE`` records a ``cProfile`` of the relay (first loop of ``--loops``) during that
phase's loaded windows only (SIGUSR1/SIGUSR2, see ``bench.relay_patched``) and prints the top
functions; ``--pyspy`` runs the relay under ``py-spy record`` (from ``$PYSPY``, default
``/tmp/benchvenv/bin/py-spy``) for the whole run and prints where its samples fall.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import platform
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.relay_load import Item, UdpSink  # noqa: E402
from bench.relay_procs import GEN_CPU, Forwarder, Window, raise_nofile  # noqa: E402
from bench.relay_report import Report, Rounds  # noqa: E402
from bench.relay_rig import FANOUT, FULL, QUICK, Chan, Sizes, build_world  # noqa: E402
from bench.relay_rig import Rig as Bench  # noqa: E402
from bench.relay_stress import counter, spread  # noqa: E402
from bench.relay_stress_phase import stress_phase  # noqa: E402
from bridge.wire import control as p  # noqa: E402
from tests.world import Device, World  # noqa: E402

LOOP_PATCH = {"asyncio": "asyncio-loop", "uvloop": "uvloop"}
# The half loads at which the issue's "today" figures were measured (docs/benchmarks.md,
# "After the changes", issue 3): the relay is ~4x faster now, so its own half load is ~4x more.
ISSUE_WS_RATE = 4_057
ISSUE_UDP_RATE = 2_495


@dataclasses.dataclass
class Side:
    """One relay under test (one event loop) and its own copy of every channel's clients."""

    loop: str  # label: the loop, then any patches of this side only ("asyncio+gcfreeze-auth")
    bench: Bench
    udp: list[Chan]
    ws: list[Chan]
    udp_seq: list[Item] = dataclasses.field(default_factory=list)
    ws_seq: list[Item] = dataclasses.field(default_factory=list)
    udp_in: float = 0.0  # UDP frames/s in at saturation (median round)
    ws_in: float = 0.0

    @property
    def base(self) -> str:
        return self.loop.split("@")[0].split("+")[0]


class Speed:
    def __init__(
        self, args: argparse.Namespace, tmp: Path, world: World, flooder: Device, disp: Device
    ) -> None:
        self.args, self.tmp = args, tmp
        # the flooders, in no channel: an observer, and a device with the dispatcher role
        self.world, self.flooder, self.dispatcher = world, flooder, disp
        self.sizes: Sizes = QUICK if args.quick else FULL
        if args.rounds:
            self.sizes = dataclasses.replace(self.sizes, rounds=args.rounds)
        self.ref = Bench(self.sizes, tmp, name="reference")  # pump, probe and drive loops
        self.pump = self.ref.pump
        self.sides: list[Side] = []
        self.fwd: dict[str, tuple[Forwarder, list[Item], list[UdpSink]]] = {}
        self.out = Report()

    def say(self, text: str) -> None:
        self.ref.say(text)

    # -- set-up ----------------------------------------------------------------------------

    def start(self, world: World, chans: list[Chan]) -> None:
        wrap = None
        if self.args.profile:  # stallstack samples the profiled phase only
            os.environ["CROSSBAND_BENCH_ARMED"] = "0"
        for i, loop in enumerate(self.args.loops):
            spec, _, tree = loop.partition("@")
            base, *own = spec.split("+")
            patches = [LOOP_PATCH[base], *own, *filter(None, (self.args.patch or "").split(","))]
            if self.args.profile and i == 0:
                patches.append("cprofile")
            if self.args.pyspy and i == 0:
                out = self.tmp / f"relay-{i}" / "pyspy.txt"
                wrap = [os.environ.get("PYSPY", "/tmp/benchvenv/bin/py-spy"), "record"]
                wrap += ["-r", "250", "-f", "raw", "-o", str(out), "--"]
            b = Bench(
                self.sizes,
                self.tmp,
                ",".join(patches),
                f"relay-{i}",
                wrap,
                Path(tree) if tree else None,
            )
            wrap = None
            b.pump.close()
            b.pump = self.pump  # one selector: the idle relay's clients still answer pings
            mine = [
                dataclasses.replace(c, conn=None, sock=None, sinks=[], conns=[], no=0)
                for c in chans
            ]
            b.setup_relay(mine, world)
            self.ref.cleanup.append(b)
            udp = [c for c in mine if c.transport == "udp"]
            ws = [c for c in mine if c.transport == "ws"]
            b.take_floors(mine)
            b.verify_udp(udp)
            side = Side(loop, b, udp, ws)
            side.udp_seq, side.ws_seq = b.media_items(mine)
            self.sides.append(side)
            self.say(f"relay {loop}: {b.relay.loop_name()} (pid {b.relay.pid})")
        for loop in ("asyncio", "uvloop"):
            sinks = [UdpSink() for _ in range(FANOUT)]
            fwd = Forwarder(sinks, loop)
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.connect(("127.0.0.1", fwd.port))
            self.ref.cleanup += [*sinks, fwd, sock]
            token, key = os.urandom(p.TOKEN_LEN), os.urandom(32)
            seq: list[Item] = [
                (sock.send, d, self.ref.probe.slot(d))
                for d in (p.udp_media_up(token, key, 1, f) for f in chans[0].frames)
            ]
            self.fwd[loop] = (fwd, seq, sinks)

    # -- measuring -------------------------------------------------------------------------

    def profiled(self, side: Side, phase: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` with the relay's cProfile recording if this is the phase to profile."""
        on = self.args.profile == phase and side is self.sides[0]
        if on:
            side.bench.relay.signal(signal.SIGUSR1)
        try:
            return fn()
        finally:
            if on:
                side.bench.relay.signal(signal.SIGUSR2)

    def relay_latency(self, side: Side, rate: float, phase: str, tick: Any = None) -> Any:
        b, k = side.bench, self.sizes.probe_channels
        sinks = [s for c in side.udp[:k] for s in c.sinks]
        for s in sinks:
            s.drain()
            s.probe = b.probe
            self.pump.add(s)
        try:
            return self.profiled(
                side, phase, lambda: b.latency(side.udp_seq, rate, b.relay.pid, tick)
            )
        finally:
            for s in sinks:
                self.pump.remove(s)
                s.probe = None

    def fwd_latency(self, loop: str, rate: float) -> tuple[list[float], int, Window]:
        fwd, seq, sinks = self.fwd[loop]
        for s in sinks:
            s.drain()
            s.probe = self.ref.probe
            self.pump.add(s)
        try:
            return self.ref.latency(seq, rate, fwd.pid)
        finally:
            for s in sinks:
                self.pump.remove(s)
                s.probe = None

    def udp(self) -> None:
        n = self.sizes.rounds
        # per side: the asyncio forwarder's rounds and (uvloop sides) the uvloop forwarder's
        fa: dict[str, list[float]] = {s.loop: [] for s in self.sides}
        fu: dict[str, list[float]] = {s.loop: [] for s in self.sides}
        rel_out: dict[str, list[float]] = {s.loop: [] for s in self.sides}
        rel_in: dict[str, list[float]] = {s.loop: [] for s in self.sides}
        foreign: dict[str, list[float]] = {s.loop: [] for s in self.sides}
        for r in range(n):
            for side in self.sides:
                self.say(f"UDP saturation {r + 1}/{n}: forwarder(s), relay ({side.loop})")
                for base, into in (("asyncio", fa), ("uvloop", fu)):
                    if base == "asyncio" or side.base == base:
                        fwd, seq, _ = self.fwd[base]
                        d, _, _ = self.ref.saturate(seq, lambda: {"in": fwd.count()}, fwd.pid)
                        into[side.loop].append(d["in"] * FANOUT)
                b = side.bench

                def rc(b: Bench = b) -> dict[str, float]:
                    m = b.relay.metrics()
                    return {k: counter(m, f"crossband_frames_{k}_total") for k in ("in", "out")}

                d, _, w = self.profiled(
                    side, "udp", lambda: b.saturate(side.udp_seq, rc, b.relay.pid)
                )
                rel_out[side.loop].append(d["out"])
                rel_in[side.loop].append(d["in"])
                foreign[side.loop].append(w.foreign_cpu)
        fmt = "{:,.0f}"
        for side in self.sides:
            out, a, u = rel_out[side.loop], fa[side.loop], fu[side.loop]
            side.udp_in = sorted(rel_in[side.loop])[len(out) // 2]
            self.out.row(
                "UDP: bare asyncio forwarder, datagrams/s out", spread(a, fmt=fmt), side.loop
            )
            if u:
                self.out.row(
                    "UDP: bare uvloop forwarder, datagrams/s out", spread(u, fmt=fmt), side.loop
                )
            self.out.row("UDP: relay frames/s out", spread(out, fmt=fmt), side.loop)
            ratio = [o / f for o, f in zip(out, a) if f]
            self.out.row(
                "UDP: relay / bare asyncio forwarder",
                spread(ratio),
                side.loop,
                ">= 0.75",
                ok=sorted(ratio)[len(ratio) // 2] >= 0.75,
            )
            if u:
                own = [o / f for o, f in zip(out, u) if f]
                self.out.row("UDP: relay / bare uvloop forwarder", spread(own), side.loop)
            fc = "/".join(f"{x:.0%}" for x in foreign[side.loop])
            self.out.row("   foreign CPU per round (relay windows)", fc, side.loop)

    def ws(self) -> None:
        n = self.sizes.rounds
        for side in self.sides:
            for x in (x for c in side.ws for x in c.conns):
                x.probe = side.bench.probe
        sat: dict[str, list[float]] = {s.loop: [] for s in self.sides}
        for r in range(n):
            for side in self.sides:
                b = side.bench
                self.say(f"WebSocket saturation {r + 1}/{n}: relay ({side.loop})")

                def rc(b: Bench = b) -> dict[str, float]:
                    m = b.relay.metrics()
                    return {k: counter(m, f"crossband_frames_{k}_total") for k in ("in", "out")}

                d, _, _ = b.saturate(side.ws_seq, rc, b.relay.pid)
                sat[side.loop].append(d["in"])
                b._flush(side.ws)
        for side in self.sides:
            side.ws_in = sorted(sat[side.loop])[n // 2]
            self.out.row(
                "WS: relay frames/s out at saturation",
                spread([x * FANOUT for x in sat[side.loop]], fmt="{:,.0f}"),
                side.loop,
            )
        lat: dict[str, Rounds] = {s.loop: [] for s in self.sides}
        ref: dict[str, Rounds] = {s.loop: [] for s in self.sides}
        for r in range(n):
            for side in self.sides:
                rate = self.args.ws_rate or side.ws_in / 2
                b = side.bench
                self.say(f"WS latency {r + 1}/{n} at {rate:,.0f}/s: forwarder, relay ({side.loop})")
                ref[side.loop].append(self.fwd_latency("asyncio", rate))
                lat[side.loop].append(
                    self.profiled(side, "ws", lambda: b.latency(side.ws_seq, rate, b.relay.pid))
                )
                b._flush(side.ws)
        for side in self.sides:
            rate = self.args.ws_rate or side.ws_in / 2
            self.out.lat(
                f"WS @ {rate:,.0f} in/s ({'fixed' if self.args.ws_rate else 'half load'})",
                side.loop,
                ref[side.loop],
                lat[side.loop],
                2e-3,
                "bare asyncio fwd, same rate",
            )

    def stress(self, phase: str) -> None:
        stress_phase(self, phase)

    def report(self, started: float) -> None:
        kind = "quick" if self.args.quick else "full"
        self.out.table(f"Relay speed (issue 7) — {kind} run, {time.perf_counter() - started:.0f} s")
        for side in self.sides:
            self.out.relay_log(side.loop, side.bench.relay.log_lines)
        if self.sides:
            d, loop = self.sides[0].bench.relay.dir, self.sides[0].loop
            if self.args.profile:
                self.out.cprofile(d / "relay.prof", f"{loop}, phase {self.args.profile}")
            if self.args.pyspy:
                self.out.pyspy(d / "pyspy.txt", loop)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--phases", default="udp,ws,churn,flood,flood-dispatcher")
    ap.add_argument(
        "--loops",
        default="asyncio,uvloop",
        help="relays to compare: LOOP[+PATCH...][@TREE] each, e.g. "
        "asyncio,asyncio+gcfreeze-auth or uvloop@/tmp/old,uvloop (TREE: the source "
        "tree that relay runs from; default $CROSSBAND_BENCH_RELAY_TREE or this checkout)",
    )
    ap.add_argument("--rounds", type=int, help="rounds per comparison (default 3, quick 2)")
    ap.add_argument("--patch", help="extra bench.relay_patched patches for both relays")
    ap.add_argument("--profile", choices=["udp", "ws", "churn", "flood", "flood-dispatcher"])
    ap.add_argument("--pyspy", action="store_true")
    ap.add_argument(
        "--at",
        help="latency at fixed rates instead of half of each relay's saturation: 'issue' "
        f"(the rates the issue's figures were taken at: WS {ISSUE_WS_RATE:,} and UDP "
        f"{ISSUE_UDP_RATE:,} frames/s in) or 'ws=N,udp=M'",
    )
    args = ap.parse_args()
    rates = {"ws": ISSUE_WS_RATE, "udp": ISSUE_UDP_RATE} if args.at == "issue" else {}
    if args.at and args.at != "issue":
        rates = {k: float(v) for k, v in (kv.split("=") for kv in args.at.split(","))}
    args.ws_rate, args.udp_rate = rates.get("ws"), rates.get("udp")
    args.loops = args.loops.split(",")
    phases = args.phases.split(",")
    raise_nofile()
    os.sched_setaffinity(0, {GEN_CPU})
    started = time.perf_counter()
    print(
        f"relay speed: Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"loops {args.loops}, phases {phases}"
    )
    sizes = QUICK if args.quick else FULL
    world, chans, idle = build_world(dataclasses.replace(sizes, idle=0))
    with tempfile.TemporaryDirectory(prefix="relay-speed-", dir="/tmp") as tmp:
        dispatcher = world.device("mx-gn", "flooder-dispatcher", ("dispatcher",))
        speed = Speed(args, Path(tmp), world, idle[0], dispatcher)
        gc.collect()
        gc.freeze()
        try:
            speed.start(world, chans)
            for phase in phases:
                if phase == "udp":
                    speed.udp()
                elif phase == "ws":
                    speed.ws()
                else:
                    if not all(s.udp_in for s in speed.sides):
                        speed.udp()
                    speed.stress(phase)
        finally:
            speed.ref.close()
            speed.report(started)


if __name__ == "__main__":
    main()
