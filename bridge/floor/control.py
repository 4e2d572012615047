"""Floor control for one half-duplex channel: who may talk now, who waits, who is cut off.

This is a sans-IO protocol object in the h11/aioquic style. It reads no clock and touches
no socket: the relay feeds it API calls with the current time (``now``, seconds as a float)
and sends the events it returns to the members of the channel. The only other input is
:meth:`FloorControl.handle_timer`, which the driver calls once ``now`` reaches
:meth:`FloorControl.get_timer`.

Theory of operation
-------------------
The floor is in one of two states, ``IDLE`` (nobody talks, nobody waits) or ``TALKING``
(exactly one holder, and a queue of waiting requests, possibly empty). Independently, the
channel is or is not in *emergency*: a flag raised by any permitted EMERGENCY request and
lowered only by :meth:`~FloorControl.clear_emergency`, so every member can see it.

A request is classified by its *relation* to the current holder, and the pair
(state, relation) picks the action from ``_ON_REQUEST``:

=========  ==============  ==========  ==========================================
state      relation        action      events
=========  ==============  ==========  ==========================================
any        not-permitted   deny        FloorDenied("not-permitted")
IDLE       outranks        grant       FloorGranted
TALKING    holder          reaffirm    FloorGranted (same ``since``; may upgrade)
TALKING    outranks        preempt     FloorRevoked("preempted"), FloorGranted
TALKING    outranked       enqueue     FloorQueued(position) or FloorDenied("queue-full")
=========  ==============  ==========  ==========================================

"Outranks" means a priority strictly higher than the holder's; equal or lower priority
waits. The queue is ordered by priority, highest first, then first come first served.
When the queue is full, a request that would rank ahead of the last waiter displaces it
(that waiter gets FloorDenied("queue-full")); otherwise the new request is denied. An
EMERGENCY request therefore always finds a place unless the queue is full of emergencies.

While the channel is in emergency, the device that declared it keeps EMERGENCY rank for
every request it makes until the emergency is cleared: it preempts anyone who is not an
emergency talker and everyone else queues behind it.

When the holder leaves (``release``, ``cancel`` or the talk timer, see ``_ON_VACATE``) the
head of the queue is granted at once; with an empty queue the floor goes back to IDLE and
FloorIdle is emitted. A holder's talk time is limited to ``max_talk_time`` seconds, or to
``emergency_max_talk_time`` at EMERGENCY priority (``None``: no limit).

Every input is idempotent and safe for devices the object has never heard of: releasing a
floor you do not hold only takes you out of the queue; cancelling twice does nothing.
Clearing an emergency does not cut off its talker, and removing the declarer from the
channel does not clear it: a dispatcher does, and the caller decides who may.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Final

from bridge.floor.events import (
    EmergencyCleared,
    EmergencyStarted,
    Event,
    FloorDenied,
    FloorGranted,
    FloorIdle,
    FloorQueued,
    FloorReleased,
    FloorRevoked,
    FloorSnapshot,
    FloorState,
    Priority,
    QueuedRequest,
    _check_device,
    _check_time,
)

__all__ = ["FloorControl"]


# ---- transition tables ------------------------------------------------------------------


class _Relation(Enum):
    NOT_PERMITTED = "not-permitted"
    HOLDER = "holder"
    OUTRANKS = "outranks"
    OUTRANKED = "outranked"


class _Action(Enum):
    DENY = "deny"
    GRANT = "grant"
    REAFFIRM = "reaffirm"
    PREEMPT = "preempt"
    ENQUEUE = "enqueue"


_IDLE, _TALKING = FloorState.IDLE, FloorState.TALKING

_ON_REQUEST: Final[dict[tuple[FloorState, _Relation], _Action]] = {
    (_IDLE, _Relation.NOT_PERMITTED): _Action.DENY,
    (_IDLE, _Relation.OUTRANKS): _Action.GRANT,
    (_TALKING, _Relation.NOT_PERMITTED): _Action.DENY,
    (_TALKING, _Relation.HOLDER): _Action.REAFFIRM,
    (_TALKING, _Relation.OUTRANKS): _Action.PREEMPT,
    (_TALKING, _Relation.OUTRANKED): _Action.ENQUEUE,
}

# How the holder's departure is announced, per input. The next holder (or FloorIdle) follows.
_ON_VACATE: Final[dict[str, Callable[[str], Event]]] = {
    "release": FloorReleased,
    "cancel": lambda device: FloorRevoked(device, "removed"),
    "timer": lambda device: FloorRevoked(device, "max-talk-time"),
}


# ---- the protocol object ----------------------------------------------------------------


class FloorControl:
    """Talk arbitration for one channel. Not thread-safe: drive it from one task."""

    def __init__(
        self,
        max_talk_time: float = 60.0,
        emergency_max_talk_time: float | None = None,
        queue_limit: int = 16,
    ) -> None:
        _check_time(max_talk_time, "max_talk_time")
        if max_talk_time <= 0:
            raise ValueError("max_talk_time must be positive")
        if emergency_max_talk_time is not None:
            _check_time(emergency_max_talk_time, "emergency_max_talk_time")
            if emergency_max_talk_time <= 0:
                raise ValueError("emergency_max_talk_time must be positive or None")
        if isinstance(queue_limit, bool) or not isinstance(queue_limit, int) or queue_limit < 0:
            raise ValueError("queue_limit must be a non-negative int")
        self._max_talk_time = float(max_talk_time)
        self._emergency_max_talk_time = emergency_max_talk_time
        self._queue_limit = queue_limit
        self._holder: str | None = None
        self._holder_priority: Priority | None = None
        self._since: float | None = None
        self._queue: list[QueuedRequest] = []  # sorted: priority desc, then order asc
        self._order = 0
        self._emergency_by: str | None = None

    # -- read-only state

    @property
    def state(self) -> FloorState:
        return _IDLE if self._holder is None else _TALKING

    @property
    def holder(self) -> str | None:
        return self._holder

    @property
    def holder_priority(self) -> Priority | None:
        return self._holder_priority

    @property
    def since(self) -> float | None:
        return self._since

    @property
    def emergency(self) -> bool:
        return self._emergency_by is not None

    @property
    def emergency_by(self) -> str | None:
        return self._emergency_by

    @property
    def queue(self) -> tuple[QueuedRequest, ...]:
        """Waiting requests in the order they will be granted."""
        return tuple(self._queue)

    def position(self, device: str) -> int | None:
        """1-based place of ``device`` in the queue, or None if it is not waiting."""
        for index, waiting in enumerate(self._queue):
            if waiting.device == device:
                return index + 1
        return None

    def may_send(self, device: str) -> bool:
        """The relay's per-frame check: only the holder's voice is forwarded."""
        return self._holder is not None and device == self._holder

    def snapshot(self) -> FloorSnapshot:
        return FloorSnapshot(
            holder=self._holder,
            priority=self._holder_priority,
            since=self._since,
            emergency=self.emergency,
            emergency_by=self._emergency_by,
            queued=len(self._queue),
        )

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must next be called, or None if no deadline runs."""
        if self._holder is None or self._since is None or self._holder_priority is None:
            return None
        limit = self._limit_for(self._holder_priority)
        return None if limit is None else self._since + limit

    # -- inputs

    def request(
        self, device: str, priority: Priority, now: float, may_talk: bool = True
    ) -> list[Event]:
        """``device`` pressed push-to-talk. ``may_talk`` is False for observers."""
        _check_device(device)
        _check_time(now, "now")
        priority = Priority(priority)
        events: list[Event] = []
        if not may_talk:
            relation = _Relation.NOT_PERMITTED
        else:
            if priority is Priority.EMERGENCY and self._emergency_by is None:
                self._emergency_by = device
                events.append(EmergencyStarted(device))
            priority = self._effective(device, priority)
            if device == self._holder:
                relation = _Relation.HOLDER
            elif self._holder_priority is None or priority > self._holder_priority:
                relation = _Relation.OUTRANKS
            else:
                relation = _Relation.OUTRANKED
        action = _ON_REQUEST[(self.state, relation)]

        if action is _Action.DENY:
            events.append(FloorDenied(device, "not-permitted"))
        elif action is _Action.GRANT:
            events.append(self._grant(device, priority, now))
        elif action is _Action.REAFFIRM:
            assert self._holder_priority is not None and self._since is not None
            if priority > self._holder_priority:
                self._holder_priority = priority  # escalation keeps the original ``since``
            events.append(FloorGranted(device, self._holder_priority, self._since))
        elif action is _Action.PREEMPT:
            assert self._holder is not None
            self._remove_waiting(device)
            events.append(FloorRevoked(self._holder, "preempted"))
            events.append(self._grant(device, priority, now))
        else:
            events.extend(self._enqueue(device, priority, now))
        return events

    def release(self, device: str, now: float) -> list[Event]:
        """``device`` let go of push-to-talk, or gave up waiting."""
        return self._leave(device, now, "release")

    def cancel(self, device: str, now: float) -> list[Event]:
        """``device`` disconnected or was removed from the roster."""
        return self._leave(device, now, "cancel")

    def clear_emergency(self, device: str, now: float) -> list[Event]:
        """``device`` (the declarer or a dispatcher: the caller checks) ends the emergency."""
        _check_device(device)
        _check_time(now, "now")
        if self._emergency_by is None:
            return []
        self._emergency_by = None
        return [EmergencyCleared(device)]

    def handle_timer(self, now: float) -> list[Event]:
        """Revoke the holder whose talk time ran out and grant the next request."""
        _check_time(now, "now")
        deadline = self.get_timer()
        if deadline is None or now < deadline:
            return []
        assert self._holder is not None
        return self._vacate(now, "timer")

    # -- internals

    def _effective(self, device: str, priority: Priority) -> Priority:
        if device == self._emergency_by:
            return Priority.EMERGENCY
        return priority

    def _limit_for(self, priority: Priority) -> float | None:
        if priority is Priority.EMERGENCY:
            return self._emergency_max_talk_time
        return self._max_talk_time

    def _grant(self, device: str, priority: Priority, now: float) -> FloorGranted:
        self._holder, self._holder_priority, self._since = device, priority, float(now)
        return FloorGranted(device, priority, float(now))

    def _leave(self, device: str, now: float, why: str) -> list[Event]:
        _check_device(device)
        _check_time(now, "now")
        if device == self._holder:
            return self._vacate(now, why)
        self._remove_waiting(device)
        return []

    def _vacate(self, now: float, why: str) -> list[Event]:
        assert self._holder is not None
        events: list[Event] = [_ON_VACATE[why](self._holder)]
        self._holder = self._holder_priority = self._since = None
        if self._queue:
            head = self._queue.pop(0)
            events.append(self._grant(head.device, head.priority, now))
        else:
            events.append(FloorIdle())
        return events

    def _remove_waiting(self, device: str) -> QueuedRequest | None:
        for index, waiting in enumerate(self._queue):
            if waiting.device == device:
                return self._queue.pop(index)
        return None

    def _enqueue(self, device: str, priority: Priority, now: float) -> list[Event]:
        existing = self._remove_waiting(device)
        if existing is not None:
            # A repeated request keeps its place in line; a higher one moves up.
            entry = QueuedRequest(
                device, max(priority, existing.priority), existing.queued_at, existing.order
            )
            return [FloorQueued(device, self._insert(entry))]
        self._order += 1
        entry = QueuedRequest(device, priority, float(now), self._order)
        events: list[Event] = []
        if len(self._queue) >= self._queue_limit:
            if not self._queue or self._queue[-1].priority >= priority:
                return [FloorDenied(device, "queue-full")]
            displaced = self._queue.pop()
            events.append(FloorDenied(displaced.device, "queue-full"))
        events.append(FloorQueued(device, self._insert(entry)))
        return events

    def _insert(self, entry: QueuedRequest) -> int:
        """Put ``entry`` in its place (priority desc, then FIFO); return its 1-based position."""
        index = len(self._queue)
        for i, waiting in enumerate(self._queue):
            if (entry.priority, -entry.order) > (waiting.priority, -waiting.order):
                index = i
                break
        self._queue.insert(index, entry)
        return index + 1
