"""crypto.replay: RFC 3711 §3.3.2 replay window over SFrame counters."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.replay import ReplayWindow


def test_size_must_be_at_least_64() -> None:
    with pytest.raises(ValueError):
        ReplayWindow(63)
    assert ReplayWindow(64).size == 64
    assert ReplayWindow().size == 128


def test_empty_window_accepts_anything() -> None:
    w = ReplayWindow()
    assert w.highest is None
    assert w.check(0) and w.check(12345) and w.check(2**64 - 1)
    assert not w.check(-1) and not w.check(2**64)


def test_replay_is_rejected() -> None:
    w = ReplayWindow()
    for ctr in (10, 11, 9):
        assert w.check(ctr)
        w.update(ctr)
        assert not w.check(ctr)
    assert not w.check(10)


def test_too_old_is_rejected() -> None:
    w = ReplayWindow(64)
    w.update(1000)
    assert w.check(1000 - 63)  # last slot of the window
    assert not w.check(1000 - 64)  # just outside
    assert not w.check(0)


def test_reordering_inside_window_is_accepted() -> None:
    w = ReplayWindow(64)
    order = [5, 3, 4, 1, 2, 60, 40, 0, 63]
    for ctr in order:
        assert w.check(ctr), ctr
        w.update(ctr)
    assert w.highest == 63
    assert all(not w.check(c) for c in order)
    assert w.check(62) and w.check(64)


def test_check_never_moves_the_window() -> None:
    w = ReplayWindow(64)
    w.update(10)
    assert w.check(10_000)  # e.g. a forged frame with a huge counter: checked, not recorded
    assert w.highest == 10
    assert w.check(9)  # still inside the window because nothing advanced
    w.update(10_000)
    assert w.highest == 10_000
    assert not w.check(9)


def test_large_jump_clears_the_window() -> None:
    w = ReplayWindow(64)
    for ctr in range(64):
        w.update(ctr)
    w.update(1_000)
    assert all(not w.check(c) for c in range(64))
    assert w.check(999) and w.check(1000 - 63)


def test_update_of_unacceptable_counter_is_a_caller_bug() -> None:
    w = ReplayWindow(64)
    w.update(100)
    with pytest.raises(ValueError):
        w.update(100)
    with pytest.raises(ValueError):
        w.update(30)
    assert w.highest == 100


class SetModel:
    """Every accepted counter kept in a set: obviously right, unboundedly slow."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.seen: set[int] = set()

    def check(self, ctr: int) -> bool:
        if ctr in self.seen:
            return False
        return not self.seen or ctr > max(self.seen) - self.size

    def update(self, ctr: int) -> None:
        self.seen.add(ctr)


@settings(max_examples=300)
@given(
    size=st.sampled_from([64, 65, 128, 200]),
    steps=st.lists(
        st.tuples(st.integers(0, 600), st.booleans()),  # (counter, did it authenticate)
        max_size=120,
    ),
)
def test_matches_set_model(size: int, steps: list[tuple[int, bool]]) -> None:
    window, model = ReplayWindow(size), SetModel(size)
    for ctr, authentic in steps:
        accepted = window.check(ctr)
        assert accepted == model.check(ctr), (ctr, sorted(model.seen))
        if accepted and authentic:
            window.update(ctr)
            model.update(ctr)
        assert window.highest == (max(model.seen) if model.seen else None)
