"""Relay benchmark (issue 3): forwarding ceiling, added latency, floor access, memory.

    .venv/bin/python bench/relay_bench.py [--quick]

One run prints, side by side, each figure with its target and a PASS/MISS mark:

1. **Bare forwarder ceiling**: a minimal asyncio UDP forwarder process (receive a datagram,
   ``sendto`` 10 addresses) pinned to CPU 0, fed flat out from CPU 1; datagrams/s out.
2. **Relay forwarding, UDP path**: the real ``python -m bridge.cli.relay`` process pinned
   to CPU 0, N channels x 10 listeners + 1 talker holding the floor; talkers send real SFrame
   frames (80-byte payload, their own channel's KID) flat out; frames/s in and out from the
   relay's own ``/metrics``, and the ratio to the bare forwarder. Forwarder and relay are
   measured in alternating rounds and each figure is the median round, so a burst of activity
   elsewhere on the machine does not land on one side only.
3. **Added latency** p50/p99 at half the relay's saturation load, UDP path and WebSocket path,
   timed send -> receive inside this process (:class:`bench.relay_load.Probe`); the bare
   forwarder at the same load is the reference, and the UDP path is measured once more while
   one other channel's floor changes hands 10 times a second.
4. **Floor access time**: ``floor-request`` sent -> ``granted`` received, on an idle relay.
5. **Memory per idle authenticated connection**: RSS of a fresh relay before and after N
   authenticated idle WebSocket connections.

This process is the load generator and every client (CPU 1). Clients are
:class:`bench.relay_load.SlimConn`: real devices and real authentication on raw sockets, so the
generator stays cheap. Every window also records the CPU used by foreign processes (anything
not part of the bench): a figure taken on a busy machine says so.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.relay_forwarder import forwarder_main  # noqa: E402
from bench.relay_load import (  # noqa: E402
    Item,
    SlimConn,
    UdpSink,
    connect_all,
)
from bench.relay_procs import (  # noqa: E402
    GEN_CPU,
    RELAY_CPU,
    Forwarder,
    Meter,
    Relay,
    raise_nofile,
    rss_kb,
)
from bench.relay_report import Figures, Row, _times, foreign, report  # noqa: E402
from bench.relay_rig import (  # noqa: E402
    FANOUT,
    FULL,
    QUICK,
    Chan,
    Rig,
    _granted,
    build_world,
    pct,
)
from bridge.wire import control as p  # noqa: E402
from tests.world import Device, World  # noqa: E402


class Bench(Rig, Figures):
    """The issue-3 phases on the rig."""

    def floor(self, chans: list[Chan]) -> None:
        """Request -> grant round trips, cycling over the talkers (release between)."""
        n = self.sizes.floor_requests
        self.say(f"floor: {n} request -> grant round trips on the idle relay")
        holding: set[int] = set()
        times = []
        meter = Meter(self.relay.pid)
        meter.start()
        for r in range(n):
            i = r % len(chans)
            c, t = chans[i], chans[i].conn
            assert t is not None
            if i in holding:
                t.send_control(p.control("floor-release", ch=c.id))
                t.wait_text(self.pump, lambda m: m["t"] == "floor" and m["event"] == "released")
            t.texts.clear()
            t0 = time.perf_counter()
            t.send_control(p.control("floor-request", ch=c.id, priority="normal"))
            t1, _ = t.wait_text(self.pump, lambda m, t=t: _granted(m, t))
            times.append(t1 - t0)
            holding.add(i)
        w = meter.stop()
        self.take_floors([c for i, c in enumerate(chans) if i not in holding])
        p95 = pct(times, 0.95) * 1e3
        self.add(
            4,
            Row(f"4. floor request -> grant (n={n}): p50", f"{pct(times, 0.5) * 1e3:.2f} ms"),
            Row("   floor request -> grant: p95", f"{p95:.2f} ms", "<= 10 ms", p95 <= 10),
            Row(
                "   floor request -> grant: max; foreign CPU",
                f"{max(times) * 1e3:.2f} ms; {w.foreign_cpu:.0%}",
            ),
        )

    # 1 + 2. --------------------------------------------------------------------------------

    def start_forwarder(self, frames: list[bytes]) -> None:
        self.fwd_sinks = [UdpSink() for _ in range(FANOUT)]
        self.cleanup += self.fwd_sinks
        self.fwd = Forwarder(self.fwd_sinks)
        self.cleanup.append(self.fwd)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect(("127.0.0.1", self.fwd.port))
        self.cleanup.append(sock)
        token, key = os.urandom(p.TOKEN_LEN), os.urandom(32)
        self.fwd_seq: list[Item] = []
        for f in frames:  # the very datagrams a talker sends the relay (same size)
            d = p.udp_media_up(token, key, 1, f)
            self.fwd_seq.append((sock.send, d, self.probe.slot(d)))

    def throughput(self, udp_seq: list[Item], udp_channels: int) -> float:
        """Alternating saturation rounds, forwarder then relay; returns relay frames/s in."""
        relay, fwd = self.relay, self.fwd

        def rcount() -> dict[str, float]:
            m = relay.metrics()
            return {k: m[f"crossband_frames_{k}_total"] for k in ("in", "out", "dropped")}

        f_rounds, r_rounds = [], []
        for r in range(self.sizes.rounds):
            self.say(f"saturation round {r + 1}/{self.sizes.rounds}: bare forwarder, then relay")
            f_rounds.append(self.saturate(self.fwd_seq, lambda: {"in": fwd.count()}, fwd.pid))
            r_rounds.append(self.saturate(udp_seq, rcount, relay.pid))
        f_out = [d["in"] * FANOUT for d, _, _ in f_rounds]
        r_in = [d["in"] for d, _, _ in r_rounds]
        r_out = [d["out"] for d, _, _ in r_rounds]
        dropped = sum(d["dropped"] * w.seconds for d, _, w in r_rounds)
        ratios = [ro / fo for ro, fo in zip(r_out, f_out)]
        med = statistics.median
        self.add(
            1,
            Row("1. bare forwarder: datagrams/s out (median)", f"{med(f_out):,.0f}"),
            Row("   per round", " / ".join(f"{x:,.0f}" for x in f_out)),
            Row(
                "   datagrams/s offered; forwarder CPU",
                f"{med(o for _, o, _ in f_rounds):,.0f}; "
                + "/".join(f"{w.target_cpu:.0%}" for _, _, w in f_rounds),
            ),
            Row("   foreign CPU per round", foreign([w for _, _, w in f_rounds])),
        )
        self.add(
            2,
            Row(f"2. relay UDP ({udp_channels} ch x {FANOUT}): frames/s out", f"{med(r_out):,.0f}"),
            Row(
                "   frames/s in (median); per round",
                f"{med(r_in):,.0f}; " + " / ".join(f"{x:,.0f}" for x in r_in),
            ),
            Row(
                "   fan-out (out/in); frames dropped by relay",
                f"{sum(r_out) / sum(r_in):.2f}; {dropped:.0f}",
            ),
            Row(
                "   frames/s offered; relay CPU",
                f"{med(o for _, o, _ in r_rounds):,.0f}; "
                + "/".join(f"{w.target_cpu:.0%}" for _, _, w in r_rounds),
            ),
            Row("   foreign CPU per round", foreign([w for _, _, w in r_rounds])),
            Row(
                "   relay out / bare forwarder out (median pair)",
                f"{med(ratios):.2f}",
                ">= 0.5",
                med(ratios) >= 0.5,
            ),
        )
        return med(r_in)

    # 3. ------------------------------------------------------------------------------------

    def udp_latency(self, chans: list[Chan], udp_seq: list[Item], rate: float) -> None:
        probes = chans[: self.sizes.probe_channels]
        n, k = len(chans), len(probes)

        def share(sent: int) -> int:  # drive() starts at seq[0]; seq[i] is channel i % n
            return (sent // n * k + min(sent % n, k)) * FANOUT

        for s in (s for c in probes for s in c.sinks):
            s.drain()
            s.probe = self.probe
            self.pump.add(s)
        for s in self.fwd_sinks:
            s.drain()
            s.probe = self.probe
            self.pump.add(s)
        relay_rounds, fwd_rounds = [], []
        for r in range(self.sizes.rounds):
            self.say(
                f"latency round {r + 1}/{self.sizes.rounds} at {rate:,.0f}/s: relay UDP, forwarder"
            )
            relay_rounds.append(self.latency(udp_seq, rate, self.relay.pid))
            fwd_rounds.append(self.latency(self.fwd_seq, rate, self.fwd.pid))
        self.lat_rows(3, f"3. relay UDP latency @ {rate:,.0f} frames/s", relay_rounds, share, True)
        self.lat_rows(
            3, "   bare forwarder (reference), same rate", fwd_rounds, _times(FANOUT), False
        )
        for s in self.fwd_sinks:
            self.pump.remove(s)
        self.udp_probe_sinks = [s for c in probes for s in c.sinks]
        self.udp_share = share

    def churn_latency(self, churner: Chan, udp_seq: list[Item], rate: float) -> None:
        """UDP latency again while one other channel's floor changes hands 10 times a second."""
        conn = churner.conn
        assert conn is not None
        state = {"next": 0.0, "hold": True}

        def churn(now: float) -> None:
            if now >= state["next"]:
                state["next"] = now + 0.05
                what = "floor-release" if state["hold"] else "floor-request"
                conn.send_control(p.control(what, ch=churner.id, priority="normal"))
                state["hold"] = not state["hold"]

        self.say("latency with one floor changing hands 10x/s: relay UDP")
        rounds = [self.latency(udp_seq, rate, self.relay.pid, churn)]
        self.lat_rows(3, "   relay UDP, another floor churning 10/s", rounds, self.udp_share, False)
        conn.texts.clear()
        if not state["hold"]:
            self.take_floors([churner])
        for s in self.udp_probe_sinks:
            self.pump.remove(s)
            s.probe = None

    def websocket(self, chans: list[Chan], ws_seq: list[Item]) -> None:
        relay = self.relay

        def rcount() -> dict[str, float]:
            m = relay.metrics()
            return {k: m[f"crossband_frames_{k}_total"] for k in ("in", "out")}

        for x in (x for c in chans for x in c.conns):
            x.probe = self.probe
        sat = []
        for r in range(self.sizes.rounds):
            self.say(f"WebSocket saturation round {r + 1}/{self.sizes.rounds}")
            sat.append(self.saturate(ws_seq, rcount, relay.pid))
            self._flush(chans)
        w_in = statistics.median(d["in"] for d, _, _ in sat)
        w_out = statistics.median(d["out"] for d, _, _ in sat)
        self.add(
            2,
            Row(f"   relay WebSocket ({len(chans)} ch x {FANOUT}): frames/s out", f"{w_out:,.0f}"),
            Row(
                "   WebSocket frames/s in; relay CPU; load-gen CPU",
                f"{w_in:,.0f}; "
                + "/".join(f"{w.target_cpu:.0%}" for _, _, w in sat)
                + "; "
                + "/".join(f"{w.own_cpu:.0%}" for _, _, w in sat),
            ),
            Row("   foreign CPU per round", foreign([w for _, _, w in sat])),
        )
        rounds = []
        for r in range(self.sizes.rounds):
            self.say(f"WebSocket latency round {r + 1}/{self.sizes.rounds} at {w_in / 2:,.0f}/s")
            rounds.append(self.latency(ws_seq, w_in / 2, relay.pid))
            self._flush(chans)
        self.lat_rows(
            3,
            f"3. relay WebSocket latency @ {w_in / 2:,.0f} frames/s",
            rounds,
            _times(FANOUT),
            True,
        )

    def memory(self, world: World, idle: list[Device]) -> None:
        relay = Relay(self.tmp, world.trust, "relay-idle", self.patch)
        self.cleanup.append(relay)
        relay.start()
        warm, rest = [SlimConn(d) for d in idle[:20]], [SlimConn(d) for d in idle[20:]]
        self.cleanup += warm + rest
        connect_all(warm, relay.port, self.pump)
        self._quiet(relay, len(warm))
        before = rss_kb(relay.pid)
        self.say(f"memory: {len(rest)} idle authenticated connections to a fresh relay")
        t0 = time.perf_counter()
        connect_all(rest, relay.port, self.pump)
        took = time.perf_counter() - t0
        self._quiet(relay, len(warm) + len(rest))
        after = rss_kb(relay.pid)
        per = (after - before) / len(rest)
        self.add(
            5,
            Row(
                f"5. relay RSS before / after {len(rest):,} idle conns",
                f"{before / 1024:.1f} / {after / 1024:.1f} MB",
            ),
            Row("   RSS per idle authenticated connection", f"{per:.1f} KB", "<= 50 KB", per <= 50),
            Row("   authentications/s (100 in flight)", f"{len(rest) / took:,.0f}"),
        )
        relay.stop()

    def stop_media(self, chans: list[Chan]) -> None:
        self.relay.stop()
        for line in self.relay.log_lines("gc gen"):
            self.add(2, Row(f"   relay (media run) {line.split(':')[0]}", line.split(": ", 1)[1]))
        for line in self.relay.log_lines("gc pause"):
            print(f"  relay {line}")
        for line in self.relay.log_lines("loop stall"):
            print(f"  relay {line}")
        for x in (x for c in chans for x in (c.conn, *c.conns) if x is not None):
            self.pump.remove(x)
            x.close()

    # 5. ------------------------------------------------------------------------------------


def run(bench: Bench, world: World, chans: list[Chan], idle: list[Device]) -> None:
    udp = [c for c in chans if c.transport == "udp"]
    ws = [c for c in chans if c.transport == "ws"]
    bench.setup_relay(chans, world)
    bench.floor(udp)  # leaves every UDP talker holding its floor
    bench.take_floors(ws)
    bench.verify_udp(udp)
    udp_seq, ws_seq = bench.media_items(chans)
    bench.start_forwarder(udp[0].frames)
    rate_in = bench.throughput(udp_seq, len(udp))
    bench.udp_latency(udp, udp_seq, rate_in / 2)
    bench.churn_latency(ws[0], udp_seq, rate_in / 2)
    bench.websocket(ws, ws_seq)
    bench.stop_media(chans)
    bench.memory(world, idle)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Relay benchmark (issue 3)")
    ap.add_argument("--quick", action="store_true", help="smaller counts, under 2 minutes")
    ap.add_argument(
        "--patch",
        help="run the relay through bench.relay_patched with these "
        "comma-separated patches (see that module), to measure a proposed change",
    )
    ap.add_argument("--forwarder", help=argparse.SUPPRESS)  # internal: be the bare forwarder
    args = ap.parse_args(argv)
    if args.forwarder:
        forwarder_main(args.forwarder)
        return
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("needs 2 CPUs: one for the relay, one for the load generator")
    raise_nofile()
    os.sched_setaffinity(0, {GEN_CPU})
    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()
    print(
        f"relay bench ({'quick' if args.quick else 'full'}): Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; relay/forwarder on CPU {RELAY_CPU}, "
        f"load generator on CPU {GEN_CPU}"
    )
    world, chans, idle = build_world(sizes)
    gc.collect()
    gc.freeze()  # the world is long-lived: keep it out of this process's collections
    print(
        f"  world: {len(world.devices)} devices, {len(chans)} channels, "
        f"{len(chans[0].frames[0])}-byte SFrame frames ({time.perf_counter() - started:.1f} s)"
    )
    with tempfile.TemporaryDirectory(prefix="relay-bench-", dir="/tmp") as tmp:
        bench = Bench(sizes, Path(tmp), args.patch)
        try:
            run(bench, world, chans, idle)
        finally:
            bench.close()
            report(bench, args.quick, started)


if __name__ == "__main__":
    main()
