"""Floor control: the sans-IO core driven with a fake clock, plus a stateful property test."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from bridge.floor.control import FloorControl
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
    Priority,
)

N, H, E = Priority.NORMAL, Priority.HIGH, Priority.EMERGENCY


def queued(fc: FloorControl) -> list[str]:
    return [w.device for w in fc.queue]


def test_idle_request_is_granted() -> None:
    fc = FloorControl()
    assert fc.request("a", N, now=10.0) == [FloorGranted("a", N, 10.0)]
    assert fc.holder == "a" and fc.holder_priority is N
    assert fc.may_send("a") and not fc.may_send("b")


def test_contention_equal_priority_queues_and_release_grants_next() -> None:
    fc = FloorControl()
    fc.request("a", N, 0.0)
    assert fc.request("b", N, 1.0) == [FloorQueued("b", 1)]
    assert fc.request("c", N, 2.0) == [FloorQueued("c", 2)]
    assert fc.release("a", 3.0) == [FloorReleased("a"), FloorGranted("b", N, 3.0)]
    assert fc.release("b", 4.0) == [FloorReleased("b"), FloorGranted("c", N, 4.0)]
    assert fc.release("c", 5.0) == [FloorReleased("c"), FloorIdle()]
    assert fc.holder is None and fc.get_timer() is None


def test_higher_priority_preempts_lower_does_not() -> None:
    fc = FloorControl()
    fc.request("a", N, 0.0)
    assert fc.request("b", H, 1.0) == [FloorRevoked("a", "preempted"), FloorGranted("b", H, 1.0)]
    assert not fc.may_send("a") and fc.may_send("b")
    # the preempted talker is not silently re-queued
    assert queued(fc) == []
    assert fc.request("a", N, 2.0) == [FloorQueued("a", 1)]
    assert fc.request("c", H, 3.0) == [FloorQueued("c", 1)]  # equal priority waits, ahead of a


def test_queue_order_priority_then_fifo() -> None:
    fc = FloorControl()
    fc.request("holder", E, 0.0)
    fc.request("n1", N, 1.0)
    fc.request("h1", H, 2.0)
    fc.request("n2", N, 3.0)
    fc.request("h2", H, 4.0)
    fc.request("e1", E, 5.0)
    assert queued(fc) == ["e1", "h1", "h2", "n1", "n2"]
    order = []
    now = 10.0
    while fc.holder is not None:
        order.append(fc.holder)
        fc.release(fc.holder, now)
        now += 1
    assert order == ["holder", "e1", "h1", "h2", "n1", "n2"]


def test_repeated_request_keeps_place_and_higher_moves_up() -> None:
    fc = FloorControl()
    fc.request("a", N, 0.0)
    fc.request("b", N, 1.0)
    fc.request("c", N, 2.0)
    assert fc.request("c", N, 3.0) == [FloorQueued("c", 2)]
    assert fc.request("b", N, 4.0) == [FloorQueued("b", 1)]
    fc.request("d", H, 5.0)  # H outranks the NORMAL holder: preempts a
    assert fc.holder == "d"
    assert fc.request("c", H, 6.0) == [FloorQueued("c", 1)]
    assert queued(fc) == ["c", "b"]


def test_holder_rerequest_is_idempotent() -> None:
    fc = FloorControl()
    fc.request("a", N, 0.0)
    assert fc.request("a", N, 5.0) == [FloorGranted("a", N, 0.0)]
    assert fc.request("a", N, 6.0) == [FloorGranted("a", N, 0.0)]
    assert fc.get_timer() == 60.0  # the talk timer did not restart


def test_observers_are_denied_even_when_idle() -> None:
    fc = FloorControl()
    assert fc.request("obs", E, 0.0, may_talk=False) == [FloorDenied("obs", "not-permitted")]
    assert fc.holder is None and not fc.emergency
    fc.request("a", N, 1.0)
    assert fc.request("obs", N, 2.0, may_talk=False) == [FloorDenied("obs", "not-permitted")]
    assert queued(fc) == []


def test_queue_full_denies_and_emergency_displaces_last() -> None:
    fc = FloorControl(queue_limit=2)
    fc.request("a", N, 0.0)
    fc.request("b", N, 1.0)
    fc.request("c", N, 2.0)
    assert fc.request("d", N, 3.0) == [FloorDenied("d", "queue-full")]
    fc.request("e", E, 4.0)  # preempts a
    assert fc.holder == "e"
    assert fc.request("f", E, 5.0) == [FloorDenied("c", "queue-full"), FloorQueued("f", 1)]
    assert queued(fc) == ["f", "b"]


def test_emergency_preempts_and_stays_visible_until_cleared() -> None:
    fc = FloorControl()
    fc.request("a", H, 0.0)
    events = fc.request("boat", E, 1.0)
    assert events == [
        EmergencyStarted("boat"),
        FloorRevoked("a", "preempted"),
        FloorGranted("boat", E, 1.0),
    ]
    assert fc.emergency and fc.emergency_by == "boat"
    assert fc.request("a", H, 2.0) == [FloorQueued("a", 1)]
    fc.release("boat", 3.0)
    assert fc.holder == "a"
    assert fc.emergency  # still in emergency with nobody in distress talking
    # the declarer keeps emergency rank while the emergency lasts, even on a normal request
    assert fc.request("boat", N, 4.0) == [
        FloorRevoked("a", "preempted"),
        FloorGranted("boat", E, 4.0),
    ]
    # a second emergency does not restart the state
    assert fc.request("c", E, 5.0) == [FloorQueued("c", 1)]
    assert fc.emergency_by == "boat"
    assert fc.clear_emergency("dispatch", 6.0) == [EmergencyCleared("dispatch")]
    assert not fc.emergency and fc.emergency_by is None
    assert fc.holder == "boat"  # clearing does not cut the talker off
    assert fc.clear_emergency("dispatch", 7.0) == []


def test_holder_escalates_to_emergency_without_losing_floor() -> None:
    fc = FloorControl(max_talk_time=30.0)
    fc.request("a", N, 0.0)
    assert fc.request("a", E, 1.0) == [EmergencyStarted("a"), FloorGranted("a", E, 0.0)]
    assert fc.holder_priority is E and fc.get_timer() is None


def test_max_talk_time_revokes_and_grants_next() -> None:
    fc = FloorControl(max_talk_time=30.0)
    now = 100.0
    fc.request("a", N, now)
    fc.request("b", N, now + 1)
    assert fc.get_timer() == 130.0
    while now < 129.5:
        now += 0.5
        assert fc.handle_timer(now) == []
    now = fc.get_timer() or 0.0
    assert fc.handle_timer(now) == [
        FloorRevoked("a", "max-talk-time"),
        FloorGranted("b", N, 130.0),
    ]
    assert fc.get_timer() == 160.0
    assert fc.handle_timer(170.0) == [FloorRevoked("b", "max-talk-time"), FloorIdle()]
    assert fc.get_timer() is None and fc.handle_timer(500.0) == []


def test_emergency_talk_time() -> None:
    unlimited = FloorControl(max_talk_time=10.0)
    unlimited.request("a", E, 0.0)
    assert unlimited.get_timer() is None and unlimited.handle_timer(1e9) == []
    limited = FloorControl(max_talk_time=10.0, emergency_max_talk_time=120.0)
    limited.request("a", E, 0.0)
    assert limited.get_timer() == 120.0
    assert limited.handle_timer(120.0)[0] == FloorRevoked("a", "max-talk-time")


def test_cancel_holder_is_removed_and_unknown_devices_are_harmless() -> None:
    fc = FloorControl()
    assert fc.release("ghost", 0.0) == [] and fc.cancel("ghost", 0.0) == []
    fc.request("a", N, 0.0)
    fc.request("b", N, 1.0)
    fc.request("c", N, 2.0)
    assert fc.release("c", 3.0) == []  # a waiter giving up just leaves the queue
    assert queued(fc) == ["b"]
    assert fc.cancel("a", 4.0) == [FloorRevoked("a", "removed"), FloorGranted("b", N, 4.0)]
    assert fc.cancel("a", 5.0) == []
    assert fc.release("ghost", 6.0) == []
    assert fc.holder == "b"


def test_removing_the_declarer_keeps_the_emergency() -> None:
    fc = FloorControl()
    fc.request("boat", E, 0.0)
    assert fc.cancel("boat", 1.0) == [FloorRevoked("boat", "removed"), FloorIdle()]
    assert fc.emergency and fc.emergency_by == "boat"


def test_late_entry_snapshot() -> None:
    fc = FloorControl()
    s = fc.snapshot()
    assert (s.holder, s.priority, s.since, s.emergency, s.queued) == (None, None, None, False, 0)
    fc.request("a", N, 1.0)
    fc.request("boat", E, 2.5)
    fc.request("a", N, 3.0)
    s = fc.snapshot()
    assert (s.holder, s.priority, s.since) == ("boat", E, 2.5)
    assert (s.emergency, s.emergency_by, s.queued) == (True, "boat", 1)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        FloorControl(max_talk_time=0)
    with pytest.raises(ValueError):
        FloorControl(queue_limit=-1)
    fc = FloorControl()
    with pytest.raises(ValueError):
        fc.request("", N, 0.0)
    with pytest.raises(ValueError):
        fc.request("a", N, float("nan"))
    with pytest.raises(ValueError):
        FloorRevoked("a", "bored")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        FloorQueued("a", 0)


# ---- stateful property test --------------------------------------------------------------

DEVICES = st.sampled_from(["a", "b", "c", "d", "e"])
PRIORITIES = st.sampled_from(list(Priority))


class FloorMachine(RuleBasedStateMachine):
    """Random inputs; the event stream and the object's state must always agree."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = FloorControl(max_talk_time=5.0, emergency_max_talk_time=20.0, queue_limit=3)
        self.now = 0.0
        self.model_holder: str | None = None  # rebuilt from events only
        self.model_emergency = False

    def apply(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, FloorGranted):
                assert self.model_holder in (None, event.device), "grant while held"
                self.model_holder = event.device
            elif isinstance(event, FloorReleased | FloorRevoked):
                assert self.model_holder == event.device
                self.model_holder = None
            elif isinstance(event, FloorIdle):
                assert self.model_holder is None
            elif isinstance(event, EmergencyStarted):
                assert not self.model_emergency
                self.model_emergency = True
            elif isinstance(event, EmergencyCleared):
                assert self.model_emergency
                self.model_emergency = False

    @rule(device=DEVICES, priority=PRIORITIES, may_talk=st.booleans())
    def request(self, device: str, priority: Priority, may_talk: bool) -> None:
        events = self.fc.request(device, priority, self.now, may_talk)
        self.apply(events)
        if not may_talk:
            assert events == [FloorDenied(device, "not-permitted")]

    @rule(device=DEVICES)
    def release(self, device: str) -> None:
        self.apply(self.fc.release(device, self.now))

    @rule(device=DEVICES)
    def cancel(self, device: str) -> None:
        self.apply(self.fc.cancel(device, self.now))
        assert self.fc.holder != device and device not in queued(self.fc)

    @rule(device=DEVICES)
    def clear(self, device: str) -> None:
        self.apply(self.fc.clear_emergency(device, self.now))
        assert not self.fc.emergency

    @rule(dt=st.floats(min_value=0.0, max_value=8.0))
    def tick(self, dt: float) -> None:
        self.now += dt
        deadline = self.fc.get_timer()
        events = self.fc.handle_timer(self.now)
        self.apply(events)
        if deadline is not None and self.now >= deadline:
            assert isinstance(events[0], FloorRevoked) and events[0].reason == "max-talk-time"
        else:
            assert events == []

    @invariant()
    def one_holder_matching_events(self) -> None:
        assert self.fc.holder == self.model_holder
        assert self.fc.emergency == self.model_emergency

    @invariant()
    def queue_is_sane(self) -> None:
        devices = queued(self.fc)
        assert len(devices) == len(set(devices)) <= 3
        assert self.fc.holder not in devices
        if self.fc.holder is None:
            assert devices == []
        ranks = [(-w.priority, w.order) for w in self.fc.queue]
        assert ranks == sorted(ranks)

    @invariant()
    def only_holder_may_send(self) -> None:
        for device in ["a", "b", "c", "d", "e"]:
            assert self.fc.may_send(device) == (device == self.fc.holder)

    @invariant()
    def timer_consistent(self) -> None:
        timer = self.fc.get_timer()
        if self.fc.holder is None:
            assert timer is None
            return
        since = self.fc.since
        assert since is not None and since <= self.now
        limit = 20.0 if self.fc.holder_priority is Priority.EMERGENCY else 5.0
        assert timer == since + limit


FloorMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)
TestFloorMachine = FloorMachine.TestCase
