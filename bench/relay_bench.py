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
import base64
import gc
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.relay_load import (  # noqa: E402
    OP_BINARY,
    Item,
    Probe,
    Pump,
    SlimConn,
    UdpSink,
    client_frame,
    connect_all,
    drive,
    forwarder_main,
)
from bench.relay_procs import (  # noqa: E402
    GEN_CPU,
    RELAY_CPU,
    Forwarder,
    Meter,
    Relay,
    Window,
    raise_nofile,
    rss_kb,
)
from bridge.wire import control as p  # noqa: E402
from crypto.channel import CommitBundle  # noqa: E402
from tests.world import Device, World, make_world  # noqa: E402

POOL = 32  # pre-generated frames per talker (the relay checks KID and floor, not the counter)
PAYLOAD = 80  # bytes of Opus per 20 ms frame
WS_WINDOW = 64  # WebSocket frames in flight per talker (see _ws_sender)
FANOUT = 10


@dataclass(frozen=True)
class Sizes:
    udp_channels: int
    ws_channels: int
    idle: int
    floor_requests: int
    window: float  # seconds measured per round
    warmup: float
    rounds: int
    probe_channels: int  # UDP channels whose listeners are read for latency


FULL = Sizes(200, 20, 2000, 200, 5.0, 1.0, 3, 20)
QUICK = Sizes(50, 10, 500, 200, 1.5, 0.5, 2, 10)


@dataclass
class Chan:
    id: str
    transport: str  # "udp" or "ws"
    talker: Device
    listeners: list[Device]
    bundle: CommitBundle
    frames: list[bytes]  # SFrame frames from the talker
    conn: SlimConn | None = None
    sock: socket.socket | None = None  # the talker's UDP socket
    no: int = 0
    sinks: list[UdpSink] = field(default_factory=list)
    conns: list[SlimConn] = field(default_factory=list)
    ws_sent: int = 0


@dataclass
class Row:
    what: str
    value: str
    target: str = ""
    ok: bool | None = None

    def line(self) -> str:
        mark = "" if self.ok is None else ("PASS" if self.ok else "MISS")
        return f"  {self.what:50s} {self.value:>30s}  {self.target:>9s}  {mark}"


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


def foreign(ws: list[Window]) -> str:
    return "/".join(f"{w.foreign_cpu:.0%}" for w in ws)


def build_world(sizes: Sizes) -> tuple[World, list[Chan], list[Device]]:
    w = make_world(now=int(time.time()))
    chans = []
    for i in range(sizes.udp_channels + sizes.ws_channels):
        talker = w.device("us-cbp", f"talker-{i}", ("dispatcher", "member"))
        listeners = [
            w.device(("us-cbp", "ca-rcmp")[j % 2], f"listener-{i}-{j}", ("member",))
            for j in range(FANOUT)
        ]
        ch = f"bench-{i}"
        roster = [(talker, "dispatcher")] + [(d, "member") for d in listeners]
        bundle = w.commit(talker, roster, None, ch)
        member = w.member(talker)
        member.process_commit(bundle, time.time())
        frames = [member.protect(os.urandom(PAYLOAD)) for _ in range(POOL)]
        transport = "udp" if i < sizes.udp_channels else "ws"
        chans.append(Chan(ch, transport, talker, listeners, bundle, frames))
    idle = [w.device("mx-gn", f"idle-{i}", ("observer",)) for i in range(sizes.idle + 20)]
    return w, chans, idle


def _times(n: int) -> Callable[[int], int]:
    return lambda sent: sent * n


def _granted(m: dict[str, Any], t: SlimConn) -> bool:
    return bool(m["t"] == "floor" and m["event"] == "granted" and m["device"] == t.device.id)


def _ws_sender(c: Chan) -> Callable[[bytes], bool]:
    """Send on the talker's WebSocket with at most WS_WINDOW frames not yet received back.

    Without a window TCP lets megabytes of frames queue in socket buffers at saturation and
    the relay would still be working through them long after the load stopped. Listener 0 of
    the channel is the receipt counter.
    """
    conn, head = c.conn, c.conns[0]
    assert conn is not None
    c.ws_sent = head.binary

    def send(data: bytes) -> bool:
        if c.ws_sent - head.binary >= WS_WINDOW or not conn.send(data):
            return False
        c.ws_sent += 1
        return True

    return send


class Bench:
    def __init__(
        self,
        sizes: Sizes,
        tmp: Path,
        patch: str | None = None,
        name: str = "relay-media",
        wrap: list[str] | None = None,
        tree: Path | None = None,
    ) -> None:
        self.sizes, self.tmp, self.patch = sizes, tmp, patch
        self.name, self.wrap = name, wrap  # the relay's directory; a command to run it under
        self.tree = tree  # the source tree the relay runs from (None: RELAY_TREE)
        self.rows: dict[int, list[Row]] = {n: [] for n in range(1, 6)}
        self.pump = Pump()
        self.cleanup: list[Any] = []
        self.probe = Probe()

    def say(self, text: str) -> None:
        now = time.time()
        print(
            f"[{time.strftime('%H:%M:%S', time.localtime(now))}.{int(now % 1 * 1000):03d}] {text}",
            flush=True,
        )

    def add(self, figure: int, *rows: Row) -> None:
        self.rows[figure] += rows

    # -- driving -----------------------------------------------------------------------------

    def saturate(
        self, seq: list[Item], counter: Callable[[], dict[str, float]], pid: int
    ) -> tuple[dict[str, float], float, Window]:
        """Drive flat out: (counter deltas per second, frames offered per second, window)."""
        drive(seq, self.probe, None, self.sizes.warmup, self.pump)
        meter = Meter(pid)
        c0 = counter()
        meter.start()
        offered = drive(seq, self.probe, None, self.sizes.window, self.pump)
        c1 = counter()
        w = meter.stop()
        return {k: (c1[k] - c0[k]) / w.seconds for k in c0}, offered / w.seconds, w

    def latency(
        self, seq: list[Item], rate: float, pid: int, tick: Any = None
    ) -> tuple[list[float], int, Window]:
        """Drive at ``rate``: (latencies over the window, frames sent, window)."""
        probe = self.probe
        drive(seq, probe, rate, self.sizes.warmup, self.pump)
        probe.lat.clear()
        probe.recording = True
        meter = Meter(pid)
        meter.start()
        sent = drive(seq, probe, rate, self.sizes.window, self.pump, tick)
        w = meter.stop()
        self.pump.settle(0.05)
        probe.recording = False
        return list(probe.lat), sent, w

    def lat_rows(
        self,
        figure: int,
        name: str,
        rounds: list[tuple[list[float], int, Window]],
        expect: Callable[[int], int],
        target: bool,
    ) -> None:
        """The median round (by p99) as the figure; every round's p99 and foreign CPU after it.

        ``expect(sent)`` is how many receipts ``sent`` frames should produce at the probes.
        """
        stats = []
        for lat, sent, w in rounds:
            if lat:
                stats.append((pct(lat, 0.99), pct(lat, 0.5), len(lat), expect(sent), w))
        if not stats:
            self.add(figure, Row(f"{name}: nothing received", "-", "", False if target else None))
            return
        stats.sort(key=lambda s: s[0])
        p99, p50, got, expected, _ = stats[len(stats) // 2]
        lost = 1 - sum(s[2] for s in stats) / max(1, sum(s[3] for s in stats))
        every = " / ".join(f"{s[0] * 1e3:.2f}" for s in stats)
        self.add(
            figure,
            Row(f"{name}: p50", f"{p50 * 1e3:.3f} ms"),
            Row(
                f"{name}: p99",
                f"{p99 * 1e3:.3f} ms",
                "<= 2 ms" if target else "",
                (p99 <= 2e-3) if target else None,
            ),
            Row("   p99 per round (ms); lost", f"{every}; {lost:.2%}"),
            Row("   foreign CPU per round", foreign([s[4] for s in stats])),
        )

    # -- relay set-up ------------------------------------------------------------------------

    def setup_relay(self, chans: list[Chan], world: World) -> Relay:
        relay = self.relay = Relay(
            self.tmp, world.trust, self.name, self.patch, self.wrap, self.tree
        )
        self.cleanup.append(relay)
        relay.start()
        t0 = time.perf_counter()
        for c in chans:
            c.conn = SlimConn(c.talker, keep_text=True)
            c.conns = [SlimConn(d) for d in c.listeners]
            self.cleanup += [c.conn, *c.conns]
        connect_all([c.conn for c in chans if c.conn], relay.port, self.pump)
        for c in chans:
            assert c.conn is not None
            bundle = base64.b64encode(c.bundle.encode()).decode()
            hints = {"ch": c.bundle.commit.channel, "epoch": c.bundle.commit.epoch}
            c.conn.send_control(p.control("commit", bundle=bundle, **hints))
        for c in chans:
            assert c.conn is not None
            _, msg = c.conn.wait_text(
                self.pump, lambda m, c=c: m["t"] == "channel" and m["ch"] == c.id
            )
            c.no = msg["no"]
            c.conn.wait_text(self.pump, lambda m, c=c: m["t"] == "commit-ok" and m["ch"] == c.id)
        connect_all([x for c in chans for x in c.conns], relay.port, self.pump)
        for c in chans:
            assert all(x.channels.get(c.id) == c.no for x in c.conns)
            if c.transport == "udp":
                c.sinks = [UdpSink() for _ in c.conns]
                c.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                c.sock.connect(("127.0.0.1", relay.udp_port))
                self.cleanup += [*c.sinks, c.sock]
        n = sum(1 + len(c.conns) for c in chans)
        self.say(f"relay: {len(chans)} channels, {n} sessions ({time.perf_counter() - t0:.1f} s)")
        self._register(chans)
        return relay

    def _register(self, chans: list[Chan]) -> None:
        todo = [(s, x) for c in chans for s, x in zip(c.sinks, c.conns)]
        for i in range(0, len(todo), 100):
            for s, x in todo[i : i + 100]:
                s.sock.sendto(
                    p.udp_register(x.token, x.udp_key), ("127.0.0.1", self.relay.udp_port)
                )
            self.pump.settle(0.005)

    def take_floors(self, chans: list[Chan]) -> None:
        for c in chans:
            assert c.conn is not None
            c.conn.send_control(p.control("floor-request", ch=c.id, priority="normal"))
        for c in chans:
            assert c.conn is not None
            c.conn.wait_text(self.pump, lambda m, t=c.conn: _granted(m, t))

    def verify_udp(self, chans: list[Chan]) -> None:
        """One frame per UDP talker must reach every listener's socket; re-register if not."""
        for _ in range(4):
            for s in (s for c in chans for s in c.sinks):
                s.drain()
                s.count = 0
            for c in chans:
                assert c.sock is not None and c.conn is not None
                c.sock.send(p.udp_media_up(c.conn.token, c.conn.udp_key, c.no, c.frames[0]))
                self.pump.poll(0)
            self.pump.settle(0.3)
            for s in (s for c in chans for s in c.sinks):
                s.drain()
            missing = [c for c in chans if any(s.count == 0 for s in c.sinks)]
            if not missing:
                return
            self._register(missing)
            self.pump.settle(0.2)
        raise RuntimeError(f"{len(missing)} UDP channels do not reach all their listeners")

    # 4. ------------------------------------------------------------------------------------

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

    def media_items(self, chans: list[Chan]) -> tuple[list[Item], list[Item]]:
        """Round-robin send sequences (UDP, WebSocket) of pre-built frames, with probe slots."""
        udp, ws = [], []
        for c in chans:
            assert c.conn is not None
            if c.transport == "udp":
                assert c.sock is not None
                udp.append(
                    [
                        (
                            c.sock.send,
                            p.udp_media_up(c.conn.token, c.conn.udp_key, c.no, f),
                            self.probe.slot(p.udp_media_down(c.no, f)),
                        )
                        for f in c.frames
                    ]
                )
            else:
                send = _ws_sender(c)
                ws.append(
                    [
                        (
                            send,
                            client_frame(OP_BINARY, p.ws_media(p.WS_MEDIA_UP, c.no, f)),
                            self.probe.slot(p.ws_media(p.WS_MEDIA_DOWN, c.no, f)),
                        )
                        for f in c.frames
                    ]
                )
        return ([x[j] for j in range(POOL) for x in udp], [x[j] for j in range(POOL) for x in ws])

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

    def _flush(self, chans: list[Chan]) -> None:
        conns = [c.conn for c in chans if c.conn is not None]
        deadline = time.perf_counter() + 30
        while any(c.out for c in conns) and time.perf_counter() < deadline:
            for c in conns:
                if c.out:
                    c.flush()
            self.pump.poll(0.001)
        self.pump.settle(0.5)

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

    def _quiet(self, relay: Relay, n: int) -> None:
        """Poll until the relay has ``n`` authenticated sessions and an idle store, then 1 s."""
        deadline = time.perf_counter() + 120
        while time.perf_counter() < deadline:
            m = relay.metrics()
            if m["crossband_authenticated"] >= n and m["crossband_store_queue_depth"] == 0:
                break
            self.pump.settle(0.2)
        self.pump.settle(1.0)

    def close(self) -> None:
        for obj in reversed(self.cleanup):
            try:
                obj.stop() if hasattr(obj, "stop") else obj.close()
            except Exception as exc:  # keep cleaning up the rest
                print(f"cleanup: {type(obj).__name__}: {exc}", file=sys.stderr)
        self.pump.close()


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


def report(bench: Bench, quick: bool, started: float) -> None:
    patch = f", relay patches: {bench.patch}" if bench.patch else ""
    print(
        f"\nRelay benchmark — {'quick' if quick else 'full'} run{patch}, "
        f"{time.perf_counter() - started:.0f} s, {time.strftime('%Y-%m-%d %H:%M')}"
    )
    print(f"  {'figure':50s} {'measured':>30s}  {'target':>9s}")
    for n in sorted(bench.rows):
        for row in bench.rows[n]:
            print(row.line())


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
