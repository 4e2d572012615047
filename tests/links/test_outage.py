"""A 30 s outage of the vessel's link (tests/links/outage.py: the WebSocket proxy resets every
connection, the UDP proxy drops everything), against the real relay process.

One run of the scenario (30 s of real time: the endpoint's own reconnection timers are what is
being tested, so no fake clock) serves the tests below:

- every message sent during the outage, by either side, arrives exactly once after it
  (counted by inner id, behind a barrier message sent after them);
- the vessel's endpoint is back on the air within 2 s of the link returning: it hears a
  dispatch transmission in progress, and its own new transmission is heard.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.links.outage import Outcome, run_outage

pytestmark = pytest.mark.slow

OUTAGE = 30.0
BACK_ON_AIR = 2.0  # seconds from the link returning (issue 8)


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    out = asyncio.run(run_outage(tmp_path_factory.mktemp("outage"), OUTAGE))
    print(
        f"\noutage {OUTAGE:.0f} s: connected {out.connected_s:.2f} s, hears dispatch "
        f"{out.hears_s:.2f} s, heard by dispatch {out.heard_s:.2f} s after the link returned; "
        f"dispatch->vessel {out.delivery(out.by_dispatch, out.at_vessel)}, "
        f"vessel->dispatch {out.delivery(out.by_vessel, out.at_dispatch)} "
        f"(delivered, extra copies, lost); {out.resets} connections reset"
    )
    return out


def test_messages_sent_during_the_outage_arrive_exactly_once(outcome: Outcome) -> None:
    # 3 from dispatch during the outage; 1 from the vessel at the cut and 3 during it
    assert len(outcome.by_dispatch) == 3
    assert outcome.vessel_failed == 0 and len(outcome.by_vessel) == 4
    assert outcome.delivery(outcome.by_dispatch, outcome.at_vessel) == (3, 0, 0)
    assert outcome.delivery(outcome.by_vessel, outcome.at_dispatch) == (4, 0, 0)
    # and nothing else arrived but the barrier message each side sent afterwards
    assert sum(outcome.at_vessel.values()) == 3 + 1
    assert sum(outcome.at_dispatch.values()) == 4 + 1
    assert outcome.resets >= 2  # the outage did cut the vessel's connection (and retries)


def test_vessel_is_back_on_the_air_within_2_s(outcome: Outcome) -> None:
    assert outcome.connected_s is not None and outcome.hears_s is not None
    assert outcome.heard_s is not None
    assert outcome.hears_s <= BACK_ON_AIR, f"vessel heard dispatch {outcome.hears_s:.2f} s late"
    assert outcome.heard_s <= BACK_ON_AIR, f"vessel heard {outcome.heard_s:.2f} s late"
