"""The churn and flood phases of ``bench/relay_speed.py``: bystander UDP voice latency on each
relay, quiet and loaded, beside the bare asyncio forwarder at the same rate."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.relay_load import SlimConn, connect_all
from bench.relay_report import Rounds
from bench.relay_stress import Churn, Flood, flood_commit, pct, spread

if TYPE_CHECKING:
    from bench.relay_speed import Speed


def stress_phase(self: Speed, phase: str) -> None:
    """Bystander latency without and with the phase's load (churn, or a 4 MB flood)."""
    n = self.sizes.rounds
    plain: dict[str, Rounds] = {s.loop: [] for s in self.sides}
    loaded: dict[str, Rounds] = {s.loop: [] for s in self.sides}
    info: dict[str, list[str]] = {s.loop: [] for s in self.sides}
    fwd: dict[str, Rounds] = {s.loop: [] for s in self.sides}
    flood_frame = flood_commit(self.world) if phase.startswith("flood") else b""
    for side in self.sides:
        b = side.bench
        rate = self.args.udp_rate or side.udp_in / 2
        if phase == "churn":
            c = side.ws[0]
            assert c.conn is not None
            tick: Any = Churn(c.id, c.conn, c.conns[0])
        else:
            who = self.flooder if phase == "flood" else self.dispatcher
            conn = SlimConn(who, keep_text=True)
            b.cleanup.append(conn)
            connect_all([conn], b.relay.port, self.pump)
            tick = Flood(conn, flood_frame)
        for r in range(n):
            self.say(
                f"{phase} {r + 1}/{n} at {rate:,.0f}/s: relay ({side.loop}) quiet, then loaded"
            )
            fwd[side.loop].append(self.fwd_latency("asyncio", rate))
            plain[side.loop].append(self.relay_latency(side, rate, phase + "-quiet"))
            loaded[side.loop].append(self.relay_latency(side, rate, phase, tick))
            took = loaded[side.loop][-1][2].seconds  # the measured window only
            if isinstance(tick, Churn):
                info[side.loop].append(f"{tick.changes / took:.1f} changes/s")
                tick.changes = 0
            else:
                info[side.loop].append(tick.summary(took))
                tick.sent, tick.answers = 0, {}
        if isinstance(tick, Churn):
            assert side.ws[0].conn is not None
            tick.restore(side.ws[0].conn, self.pump)
        else:
            self.pump.remove(tick.conn)
            tick.conn.close()
            self.pump.settle(1.0)
    what = {
        "churn": "floor churn 10/s on another channel",
        "flood": "4 MB commit flood (observer)",
        "flood-dispatcher": "4 MB commit flood (dispatcher)",
    }[phase]
    target = 2e-3 if phase == "churn" else 5e-3
    for side in self.sides:
        rate = self.args.udp_rate or side.udp_in / 2
        self.out.lat(
            f"UDP bystanders @ {rate:,.0f}/s, {what}",
            side.loop,
            plain[side.loop],
            loaded[side.loop],
            target,
            "same relay, no " + phase,
        )
        f50 = [pct(lat, 0.5) for lat, _, _ in fwd[side.loop] if lat]
        f99 = [pct(lat, 0.99) for lat, _, _ in fwd[side.loop] if lat]
        self.out.row(
            "   bare asyncio forwarder, same rate: p50 / p99 ms",
            f"{spread(f50, 1e3)} / {spread(f99, 1e3)}",
            side.loop,
        )
        for i, text in enumerate(info[side.loop]):
            self.out.notes.append(f"{phase} round {i + 1} ({side.loop}): {text}")
