"""The relay's state and the values its core returns: sessions, channels, outcomes, metrics.

Plain data, no I/O: :mod:`bridge.relay.core` mutates these, :mod:`bridge.relay.server` reads
:class:`Outcome` values and performs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from bridge.floor.control import Event, FloorSnapshot, Priority
from bridge.relay.ratelimit import TokenBucket
from crypto.channel import Commit
from crypto.group import EPOCH_BITS
from crypto.identity import Credential
from crypto.keys import SigningKey

_EPOCH_MASK = (1 << EPOCH_BITS) - 1


class FloorArbiter(Protocol):
    """The floor of one channel (DESIGN §9). One node: :class:`bridge.floor.control.FloorControl`.
    Several relay nodes: an implementation that holds a per-channel lease (a NATS KV entry)
    so that exactly one node arbitrates each channel's floor."""

    @property
    def emergency(self) -> bool: ...

    @property
    def emergency_by(self) -> str | None: ...

    def request(
        self, device: str, priority: Priority, now: float, may_talk: bool = True
    ) -> list[Event]: ...

    def release(self, device: str, now: float) -> list[Event]: ...

    def cancel(self, device: str, now: float) -> list[Event]: ...

    def clear_emergency(self, device: str, now: float) -> list[Event]: ...

    def handle_timer(self, now: float) -> list[Event]: ...

    def get_timer(self) -> float | None: ...

    def may_send(self, device: str) -> bool: ...

    def snapshot(self) -> FloorSnapshot: ...


class RemoteFanout(Protocol):
    """Carries a checked voice frame to the channel's members connected to *other* relay nodes
    (DESIGN §9: a NATS core subject per channel); each node then delivers to its own sessions
    with :meth:`bridge.relay.core.RelayCore.from_remote`. One node needs none of it."""

    def publish(self, channel: str, sender: str, frame: bytes) -> None: ...


class NoRemoteFanout:
    """The single-node relay: every member is connected here."""

    def publish(self, channel: str, sender: str, frame: bytes) -> None:
        return None


Send = tuple[int, str]  # (session id, control message)


@dataclass
class Job:
    """A store call for the driver to run off the event loop, then hand back."""

    fn: Callable[[], Any]
    then: Callable[[Any], Outcome]


@dataclass
class Outcome:
    sends: list[Send] = field(default_factory=list)
    close: list[tuple[int, str]] = field(default_factory=list)
    job: Job | None = None

    def extend(self, other: Outcome) -> Outcome:
        self.sends += other.sends
        self.close += other.close
        if other.job is not None:
            assert self.job is None, "one job per outcome"
            self.job = other.job
        return self


@dataclass
class RelayConfig:
    relay_id: str = "relay"
    udp_port: int | None = None
    signing_key: SigningKey | None = None  # the relay's identity: signs every welcome
    max_talk_time: float = 60.0
    emergency_max_talk_time: float | None = None
    message_ttl: float = 7 * 86400.0
    control_rate: float = 50.0
    control_burst: float = 200.0
    media_rate: float = 120.0
    media_burst: float = 240.0


@dataclass(eq=False)
class Session:
    id: int
    nonce: bytes
    opened: float
    control_rate: TokenBucket
    media_rate: TokenBucket
    device: str | None = None
    cred: Credential | None = None
    token: bytes = b""
    udp_key: bytes = b""
    udp_addr: tuple[str, int] | None = None
    synced: bool = False
    delivered: int = 0


@dataclass(eq=False)
class Channel:
    id: str
    no: int
    head: Commit
    floor: FloorArbiter
    # epoch bits -> sender index -> device, for the head and the epochs still in grace
    senders: dict[int, dict[int, str]] = field(default_factory=dict)
    members: frozenset[str] = frozenset()

    def install(self, commit: Commit) -> None:
        ebits = commit.epoch & _EPOCH_MASK
        prev = self.head.epoch & _EPOCH_MASK if self.head is not commit else None
        keep = {prev: self.senders[prev]} if prev is not None and prev in self.senders else {}
        keep[ebits] = {e.index: e.device for e in commit.roster if e.index is not None}
        self.senders = keep
        self.head = commit
        self.members = frozenset(e.device for e in commit.roster)


class Metrics:
    def __init__(self) -> None:
        self.c: dict[str, int] = {
            "frames_in": 0,
            "frames_out": 0,
            "frames_dropped": 0,
            "floor_grants": 0,
            "messages_accepted": 0,
            "commits_accepted": 0,
            "auth_refused": 0,
            "protocol_errors": 0,
        }
        self.dropped: dict[str, int] = {}

    def drop(self, reason: str) -> None:
        self.c["frames_dropped"] += 1
        self.dropped[reason] = self.dropped.get(reason, 0) + 1


def render_metrics(
    metrics: Metrics, sessions: int, authenticated: int, channels: list[Channel], depth: int
) -> str:
    """The Prometheus text exposition of the relay's counters and gauges (no content)."""
    lines = [
        "# TYPE crossband_connections gauge",
        f"crossband_connections {sessions}",
        "# TYPE crossband_authenticated gauge",
        f"crossband_authenticated {authenticated}",
        "# TYPE crossband_channels gauge",
        f"crossband_channels {len(channels)}",
        "# TYPE crossband_store_queue_depth gauge",
        f"crossband_store_queue_depth {depth}",
    ]
    for name, value in metrics.c.items():
        lines += [f"# TYPE crossband_{name}_total counter", f"crossband_{name}_total {value}"]
    lines.append("# TYPE crossband_frames_dropped_by_reason_total counter")
    for reason, value in sorted(metrics.dropped.items()):
        lines.append(f'crossband_frames_dropped_by_reason_total{{reason="{reason}"}} {value}')
    lines.append("# TYPE crossband_floor_emergency gauge")
    for chan in channels:
        lines.append(
            f'crossband_floor_emergency{{channel="{chan.id}"}} {int(chan.floor.emergency)}'
        )
    return "\n".join(lines) + "\n"
