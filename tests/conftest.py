"""Suite-wide settings: an empty run is a failure, never a pass.

pytest exits 5 when no test ran: nothing collected, or everything deselected (``-k nomatch``,
``-m`` with no match, a stale ``--deselect``). For this suite that means a broken command, so
the session fails (exit 1) and says why. This file is loaded for every run of the suite command
(``testpaths = ["tests"]``), whatever ``-k``/``-m`` select, because conftest files are read
before selection; tests/test_quality.py checks that it keeps doing so.
"""

from __future__ import annotations

import pytest

EMPTY_RUN = "crossband: no test ran (nothing collected or everything deselected): failing"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED or (
        exitstatus == pytest.ExitCode.OK and session.testscollected == 0
    ):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        session.config.stash[_empty_key] = True


_empty_key = pytest.StashKey[bool]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if terminalreporter.config.stash.get(_empty_key, False):
        terminalreporter.write_line(EMPTY_RUN, red=True, bold=True)
