"""The relay's state and the values its core returns: config, sessions, channels, outcomes.

Plain data, no I/O: :mod:`bridge.relay.core` mutates these, :mod:`bridge.relay.server` reads
:class:`Outcome` values and performs them (sends, closes, and store :class:`~bridge.relay.jobs.Job`
descriptions run on the store thread).

Two clocks reach the core. ``now`` is monotonic (the driver's ``loop.time()``): floor timers,
rate limits, the authentication deadline, every timer the driver arms. ``wall`` is the wall
clock, used only where a statement's validity is checked (credentials, commits, channel
expiry) and for the store's expiry times, which must survive a restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from bridge.floor.events import Event, FloorSnapshot, Priority
from bridge.relay.ratelimit import TokenBucket
from crypto.agreement import Agreement
from crypto.channel import Commit
from crypto.group import EPOCH_BITS
from crypto.identity import Credential
from crypto.keys import SigningKey

if TYPE_CHECKING:
    from bridge.relay.jobs import Job

_EPOCH_MASK = (1 << EPOCH_BITS) - 1

MIB = 1024 * 1024


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


class AuditSink(Protocol):
    """Where audit records go (:class:`bridge.relay.audit.BackgroundAuditLog` in production).
    ``append`` must not block; it raises :class:`~bridge.errors.AuditLogError` if it knows at
    once that the record cannot be written. ``failing`` is true while the log cannot be
    written, ``failures`` counts the records it could not write."""

    @property
    def failing(self) -> bool: ...

    @property
    def failures(self) -> int: ...

    def append(self, event: str, now: float, **fields: Any) -> object: ...

    def close(self) -> None: ...


Send = tuple[int, str]  # (session id, control message)


@dataclass
class Outcome:
    """What the driver must do after one input: send, close, then run the store jobs in order
    (each job's result comes back through :meth:`RelayCore.complete`)."""

    sends: list[Send] = field(default_factory=list)
    close: list[tuple[int, str]] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)

    def extend(self, other: Outcome) -> Outcome:
        self.sends += other.sends
        self.close += other.close
        self.jobs += other.jobs
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
    # Fault 4: refuse audited requests (Code.AUDIT_FAILED) while the audit log cannot be written.
    audit_fail_closed: bool = False
    # Fault 6: bytes queued to one connection before it is dropped (Code.SLOW_READER).
    send_queue_limit: int = MIB
    # Fault 7: connection caps and the authentication deadline (seconds).
    max_connections: int = 1000
    max_unauthenticated: int = 100
    auth_timeout: float = 10.0


@dataclass(eq=False)
class Session:
    id: int
    nonce: bytes
    opened: float  # monotonic
    control_rate: TokenBucket
    media_rate: TokenBucket
    device: str | None = None
    cred: Credential | None = None
    token: bytes = b""
    udp_key: bytes = b""
    udp_addr: tuple[str, int] | None = None
    synced: bool = False  # the backlog has been sent: live deliveries may follow
    delivered: int = 0
    backlog_retry: float | None = None  # monotonic time to retry a backlog the store refused


@dataclass(eq=False)
class Channel:
    id: str
    no: int
    head: Commit
    floor: FloorArbiter
    agreement: Agreement | None = None
    # epoch bits -> sender index -> device, for the head and the epochs still in grace
    senders: dict[int, dict[int, str]] = field(default_factory=dict)
    members: frozenset[str] = frozenset()

    def install(self, commit: Commit, agreement: Agreement | None = None) -> None:
        ebits = commit.epoch & _EPOCH_MASK
        prev = self.head.epoch & _EPOCH_MASK if self.head is not commit else None
        keep = {prev: self.senders[prev]} if prev is not None and prev in self.senders else {}
        keep[ebits] = {e.index: e.device for e in commit.roster if e.index is not None}
        self.senders = keep
        self.head = commit
        self.members = frozenset(e.device for e in commit.roster)
        if agreement is not None:
            self.agreement = agreement
