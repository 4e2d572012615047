"""The relay's counters, and their Prometheus exposition through ``prometheus-client``.

The hot path only increments plain ints in :class:`Metrics` (a dict lookup and an add, no
lock, no label lookup per datagram); :class:`RelayCollector` turns them into metric families
when ``/metrics`` is scraped, from a :class:`~prometheus_client.CollectorRegistry` of the
server's own (one per :class:`~bridge.relay.server.RelayServer`, never the global one).
Nothing here carries content: names, counts and channel ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["COUNTERS", "Gauges", "Metrics", "RelayCollector", "render_metrics"]

# name -> help; each becomes ``crossband_<name>_total``
COUNTERS: dict[str, str] = {
    "frames_in": "voice frames received",
    "frames_out": "voice frames forwarded (one per listener)",
    "frames_dropped": "voice frames dropped, all reasons",
    "floor_grants": "floor grants",
    "messages_accepted": "data messages accepted and stored",
    "commits_accepted": "commits accepted",
    "auth_refused": "authentications refused",
    "protocol_errors": "control messages answered with a coded error",
    "internal_errors": "control messages that raised an unexpected exception",
    "store_failures": "store jobs that failed",
    "audit_refused": "requests refused because the audit log cannot be written",
    "slow_readers": "connections dropped because their send queue overflowed",
    "connections_refused": "connections refused over a cap",
    "auth_timeouts": "connections closed for not authenticating in time",
    "read_pauses": "times a connection over its control budget was left unread for a while",
    "gc_freezes": "times the relay moved its live objects out of the collector's reach",
}


class Metrics:
    def __init__(self) -> None:
        self.c: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.dropped: dict[str, int] = {}

    def drop(self, reason: str) -> None:
        self.c["frames_dropped"] += 1
        self.dropped[reason] = self.dropped.get(reason, 0) + 1


@dataclass(frozen=True, slots=True)
class Gauges:
    """The relay's state at scrape time."""

    connections: int
    authenticated: int
    channels: int
    store_queue_depth: int
    store_failing: bool
    audit_failing: bool
    audit_failures: int
    audit_dropped: int
    emergency: tuple[tuple[str, bool], ...]  # (channel id, emergency) per channel


class RelayCollector(Collector):
    """Reads :class:`Metrics` and the gauges on every scrape."""

    def __init__(self, metrics: Metrics, gauges: Callable[[], Gauges]) -> None:
        self._metrics = metrics
        self._gauges = gauges

    def collect(self) -> Iterable[Metric]:
        return list(self._families())

    def _families(self) -> Iterator[Metric]:
        g = self._gauges()
        for name, value, doc in (
            ("connections", g.connections, "open WebSocket connections"),
            ("authenticated", g.authenticated, "authenticated sessions"),
            ("channels", g.channels, "channels with a verified head"),
            ("store_queue_depth", g.store_queue_depth, "undelivered stored items"),
            ("store_failing", int(g.store_failing), "1 while the store refuses writes"),
            ("audit_failing", int(g.audit_failing), "1 while the audit log cannot be written"),
        ):
            yield GaugeMetricFamily(f"crossband_{name}", doc, value=value)
        for name, doc in COUNTERS.items():
            yield CounterMetricFamily(f"crossband_{name}", doc, value=self._metrics.c[name])
        yield CounterMetricFamily(
            "crossband_audit_failures", "audit writes that failed", g.audit_failures
        )
        yield CounterMetricFamily(
            "crossband_audit_dropped", "audit records given up (queue full)", g.audit_dropped
        )
        by_reason = CounterMetricFamily(
            "crossband_frames_dropped_by_reason", "voice frames dropped", labels=["reason"]
        )
        for reason, count in sorted(self._metrics.dropped.items()):
            by_reason.add_metric([reason], count)
        yield by_reason
        emergency = GaugeMetricFamily(
            "crossband_floor_emergency", "1 while a channel is in emergency", labels=["channel"]
        )
        for channel, active in g.emergency:
            emergency.add_metric([channel], int(active))
        yield emergency


def new_registry(metrics: Metrics, gauges: Callable[[], Gauges]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RelayCollector(metrics, gauges))
    return registry


def render_metrics(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition (format 0.0.4) of one relay's registry."""
    return generate_latest(registry)
