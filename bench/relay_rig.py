"""The relay-under-load rig of the relay benchmarks: channels, devices, real relay processes,
the slim clients that drive them, and the drive/measure primitives (``bench/relay_bench.py``,
issue 3, and ``bench/relay_speed.py``, issue 7, build their phases on it)."""

from __future__ import annotations

import base64
import itertools
import os
import socket
import sys
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
)
from bench.relay_procs import (  # noqa: E402
    Meter,
    Relay,
    Window,
)
from bridge.wire import control as p  # noqa: E402
from crypto.channel import CommitBundle  # noqa: E402
from tests.world import Device, World, make_world  # noqa: E402

POOL = 32  # pre-generated frames per talker (the relay checks KID and floor, not the counter)
PAYLOAD = 80  # bytes of Opus per 20 ms frame
WS_WINDOW = 64  # WebSocket frames in flight per talker (see _ws_sender)
FANOUT = 10
_REGISTER_SEQ = itertools.count(1)  # one counter for every session: each sees it grow


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


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


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


class Rig:
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
        self.rows: dict[int, list[Any]] = {n: [] for n in range(1, 6)}  # issue-3 figures
        self.pump = Pump()
        self.cleanup: list[Any] = []
        self.probe = Probe()

    def say(self, text: str) -> None:
        now = time.time()
        print(
            f"[{time.strftime('%H:%M:%S', time.localtime(now))}.{int(now % 1 * 1000):03d}] {text}",
            flush=True,
        )

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
                    p.udp_register(x.token, x.udp_key, next(_REGISTER_SEQ)),
                    ("127.0.0.1", self.relay.udp_port),
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
                            self.probe.slot(p.udp_media_down(c.no, f)[: -p.MAC_LEN]),
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

    def _flush(self, chans: list[Chan]) -> None:
        conns = [c.conn for c in chans if c.conn is not None]
        deadline = time.perf_counter() + 30
        while any(c.out for c in conns) and time.perf_counter() < deadline:
            for c in conns:
                if c.out:
                    c.flush()
            self.pump.poll(0.001)
        self.pump.settle(0.5)

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
