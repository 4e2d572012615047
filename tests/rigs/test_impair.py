"""The link model on a fake clock: reproducible draws, loss within binomial bounds, jitter
inside its range, order kept when asked, outage windows and the manual switch."""

from __future__ import annotations

import math

import pytest

from tests.rigs.impair import Direction, Impairment, LinkState


def binomial_bounds(n: int, p: float, sigmas: float = 4.5) -> tuple[float, float]:
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    return mean - sigmas * sd, mean + sigmas * sd


def schedule(imp: Impairment, n: int, step: float = 0.02) -> list[float | None]:
    d = Direction(imp)
    return [d.datagram(i * step) for i in range(n)]


def test_same_seed_same_schedule_other_seed_another() -> None:
    imp = Impairment(delay=0.05, jitter=0.03, loss=0.05, seed=7)
    assert schedule(imp, 500) == schedule(imp, 500)
    assert schedule(imp, 500) != schedule(Impairment(delay=0.05, jitter=0.03, loss=0.05), 500)


@pytest.mark.parametrize("loss", [0.01, 0.05, 0.2])
def test_loss_fraction_within_binomial_bounds(loss: float) -> None:
    n = 10_000
    d = Direction(Impairment(loss=loss, seed=3))
    kept = [d.datagram(i * 0.02) for i in range(n)]
    dropped = sum(at is None for at in kept)
    low, high = binomial_bounds(n, loss)
    assert low <= dropped <= high, (dropped, low, high)
    assert d.dropped == dropped and d.sent == n


def test_jitter_stays_in_range_and_spreads() -> None:
    d = Direction(Impairment(delay=0.1, jitter=0.08, seed=5))
    transit = [at - i for i in range(2000) if (at := d.datagram(float(i))) is not None]
    assert len(transit) == 2000
    assert all(0.02 - 1e-9 <= t <= 0.18 + 1e-9 for t in transit)
    assert min(transit) < 0.04 and max(transit) > 0.16  # uses the whole range
    assert abs(sum(transit) / len(transit) - 0.1) < 0.005


def test_jitter_never_negative() -> None:
    d = Direction(Impairment(delay=0.01, jitter=0.05, seed=1))
    assert all((at := d.datagram(1.0)) is not None and at >= 1.0 for _ in range(500))


def test_reorder_false_keeps_order_true_reorders() -> None:
    fifo = schedule(Impairment(delay=0.05, jitter=0.04, reorder=False), 500, step=0.005)
    free = schedule(Impairment(delay=0.05, jitter=0.04, reorder=True), 500, step=0.005)
    assert fifo == sorted(fifo)  # type: ignore[type-var]
    assert free != sorted(free)  # type: ignore[type-var]


def test_scheduled_outage_drops_inside_window_only() -> None:
    link = LinkState()
    link.schedule(10.0, 30.0)  # a 30 s outage, placed on the fake clock
    d = Direction(Impairment(delay=0.02), link)
    assert d.datagram(9.99) == pytest.approx(10.01)
    assert d.datagram(10.0) is None
    assert d.datagram(39.99) is None
    assert d.datagram(40.0) == pytest.approx(40.02)
    assert d.dropped_down == 2 and d.dropped == 0


def test_manual_switch_and_watchers() -> None:
    link = LinkState()
    seen: list[bool] = []
    link.watchers.append(seen.append)
    d = Direction(Impairment(), link)
    link.set_down()
    assert d.datagram(1.0) is None and d.chunk(1.0) is None
    assert link.up_at(1.0) is None
    link.set_up()
    assert d.datagram(2.0) == 2.0
    assert seen == [True, False] and link.outages_seen == 1


def test_stream_chunks_wait_for_window_end_in_order() -> None:
    link = LinkState()
    link.schedule(5.0, 2.0)
    link.schedule(6.5, 1.0)  # overlaps: up only at 7.5
    d = Direction(Impairment(delay=0.1, reorder=False), link)
    assert d.chunk(4.0) == pytest.approx(4.1)
    assert d.chunk(5.5) == pytest.approx(7.6)  # held, never dropped
    assert d.chunk(5.6) == pytest.approx(7.6)
    assert link.up_at(5.5) == 7.5


@pytest.mark.parametrize(
    "kwargs", [{"delay": -0.1}, {"jitter": -1.0}, {"loss": 1.5}, {"loss": -0.01}]
)
def test_impairment_refuses_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Impairment(**kwargs)  # type: ignore[arg-type]


def test_outage_must_last() -> None:
    with pytest.raises(ValueError):
        LinkState().schedule(1.0, 0.0)
