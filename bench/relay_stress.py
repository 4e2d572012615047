"""Stress loads for ``bench/relay_speed.py``: floor churn between two devices, the 4 MB-commit
flood of issue 7 (fault 7), and the small statistics the speed report prints.

Both loads are *ticks*: :func:`bench.relay_load.drive` calls them on every pass of its send
loop, so they run interleaved with the voice frames whose latency is being measured.
"""

from __future__ import annotations

import base64
import statistics
import time
from dataclasses import dataclass, field

from bench.relay_load import OP_TEXT, Pump, SlimConn, client_frame
from bridge.wire import control as p
from crypto.keys import Kem
from tests.world import World

FLOOD_MEMBERS = 820  # hybrid-KEM members: a commit message just under MAX_CONTROL (4 MiB)


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


def spread(values: list[float], scale: float = 1.0, fmt: str = "{:.2f}") -> str:
    """``median (min–max)`` of per-round values."""
    if not values:
        return "-"
    v = [x * scale for x in values]
    med = statistics.median(v)
    if len(v) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(v))}–{fmt.format(max(v))})"


def counter(metrics: dict[str, float], name: str) -> float:
    """A counter from the relay's ``/metrics``, summed over its labels if it has any."""
    return sum(v for k, v in metrics.items() if k == name or k.startswith(name + "{"))


class Churn:
    """The floor of one channel changes hands 10 times a second between two of its members.

    Every 100 ms the device not holding the floor requests it (it is queued) and the holder
    releases it (so the other is granted): a queue, a release and a grant per change.
    """

    def __init__(self, channel: str, a: SlimConn, b: SlimConn, per_second: float = 10.0) -> None:
        self.channel, self.holder, self.other = channel, a, b
        self.period = 1.0 / per_second
        self.next = 0.0
        self.changes = 0

    def __call__(self, now: float) -> None:
        if now < self.next:
            return
        self.next = now + self.period
        new, old = self.other, self.holder
        new.send_control(p.control("floor-request", ch=self.channel, priority="normal"))
        old.send_control(p.control("floor-release", ch=self.channel))
        self.holder, self.other = new, old
        self.changes += 1

    def restore(self, talker: SlimConn, pump: Pump) -> None:
        """Leave ``talker`` holding the floor again (the media phases need it)."""
        pump.settle(0.2)
        talker.texts.clear()
        if self.holder is not talker:
            talker.send_control(p.control("floor-request", ch=self.channel, priority="normal"))
            self.holder.send_control(p.control("floor-release", ch=self.channel))
            self.holder, self.other = talker, self.holder
            talker.wait_text(
                pump,
                lambda m: (
                    m["t"] == "floor"
                    and m["event"] == "granted"
                    and m["device"] == talker.device.id
                ),
            )
        talker.texts.clear()


def flood_commit(world: World, members: int = FLOOD_MEMBERS) -> bytes:
    """A real, validly signed ~4 MB commit message (hybrid-KEM roster) for a channel that
    the flooding device neither issued nor belongs to; returns the client WebSocket frame."""
    issuer = world.device("us-cbp", "flood-issuer", ("dispatcher", "member"), Kem.MLKEM768_X25519)
    roster = [(issuer, "dispatcher")] + [
        (world.device("ca-rcmp", f"flood-m{i}", ("member",), Kem.MLKEM768_X25519), "member")
        for i in range(members)
    ]
    while True:
        bundle = world.commit(issuer, roster, None, "flood-target")
        b64 = base64.b64encode(bundle.encode()).decode()
        text = p.control("commit", bundle=b64, ch="flood-target", epoch=1)
        if len(text) <= p.MAX_CONTROL - 1024:
            return client_frame(OP_TEXT, text.encode())
        roster = roster[: len(roster) - 20]


@dataclass
class Flood:
    """An authenticated device in no channel sends the 4 MB commit as fast as the relay reads.

    A new commit is queued as soon as the previous one has left this process (TCP
    backpressure paces it); the relay's answers are counted by code."""

    conn: SlimConn
    frame: bytes
    sent: int = 0
    answers: dict[str, int] = field(default_factory=dict)
    closed_at: float | None = None

    def __call__(self, now: float) -> None:
        c = self.conn
        if c.closed:
            if self.closed_at is None:
                self.closed_at = now
            return
        if c.out:
            c.flush()
        elif c.send(self.frame):
            self.sent += 1
        for _t, msg in c.texts:
            key = str(msg.get("code") or msg.get("t"))
            self.answers[key] = self.answers.get(key, 0) + 1
        c.texts.clear()

    def summary(self, seconds: float) -> str:
        answered = sum(self.answers.values())
        codes = ", ".join(f"{k} {v}" for k, v in sorted(self.answers.items())) or "none"
        closed = "; connection closed by relay" if self.closed_at is not None else ""
        rates = f"{self.sent / seconds:.1f} sent/s, {answered / seconds:.1f} answered/s"
        return f"{rates} ({codes}){closed}"


def stamp() -> str:
    now = time.time()
    return time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"
