"""Suite-wide settings: an empty run is a failure, never a pass.

pytest exits 5 when no test ran: nothing collected, or everything deselected (``-k nomatch``,
``-m`` with no match, a stale ``--deselect``). For this suite that means a broken command, so
the session fails (exit 1) and says why. This file is loaded for every run of the suite command
(``testpaths = ["tests"]``), whatever ``-k``/``-m`` select, because conftest files are read
before selection; tests/test_quality.py checks that it keeps doing so.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

EMPTY_RUN = "crossband: no test ran (nothing collected or everything deselected): failing"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED or (
        exitstatus == pytest.ExitCode.OK and session.testscollected == 0
    ):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        session.config.stash[_empty_key] = True


_empty_key = pytest.StashKey[bool]()


@pytest.fixture(autouse=True)
def _frozen_heap(request: pytest.FixtureRequest) -> Iterator[None]:
    """Real-time tests (marked ``slow``: voice through gateways, relays and radio peers in this
    process) run with what the session has built so far frozen (:func:`gc.freeze`), as the
    endpoint and the relay freeze what they build at start-up. Late in a full run a full
    collection walks that whole heap: 100-275 ms pauses were measured in the suite, one of
    132 ms inside the 80 ms-jitter voice test, which a radio hears as a gap. Unfrozen after."""
    if request.node.get_closest_marker("slow") is None:
        yield
        return
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if terminalreporter.config.stash.get(_empty_key, False):
        terminalreporter.write_line(EMPTY_RUN, red=True, bold=True)
