"""Lint, format and type checks as tests, so a plain ``pytest`` run enforces them too; and a
check that the suite command cannot pass by running no test (see tests/conftest.py).

Each tool runs as a subprocess of this interpreter (``sys.executable -m ruff`` / ``-m mypy``)
from the repository root, so it picks up ``pyproject.toml`` (``[tool.ruff]``, ``[tool.mypy]``:
strict). A failure shows the tool's own report.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EMPTY_RUN

ROOT = Path(__file__).resolve().parents[1]
TYPED_PACKAGES = ("crypto", "bridge", "adapters")  # [tool.mypy] packages


def run_tool(*args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"`{' '.join(args)}` exited with {proc.returncode}:\n{proc.stdout}{proc.stderr}",
            pytrace=False,
        )


def test_ruff_check() -> None:
    run_tool("ruff", "check", "--no-cache", "--no-fix", "--output-format", "concise", ".")


def test_ruff_format() -> None:
    run_tool("ruff", "format", "--no-cache", "--check", ".")


@pytest.mark.slow
@pytest.mark.parametrize("package", TYPED_PACKAGES)
def test_mypy_strict(package: str) -> None:
    # One run per package so a failure names the package; `strict = true` and the
    # other options come from [tool.mypy] (a --strict flag here would override them).
    run_tool("mypy", "-p", package)


def test_the_suite_command_fails_when_no_test_runs() -> None:
    # The README's suite command with a selection that matches nothing: pytest's own exit
    # status would be 5 ("no tests collected"), which a CI step may treat as a pass.
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "no-such-test"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == pytest.ExitCode.TESTS_FAILED, out
    assert EMPTY_RUN in out
    assert " deselected" in out  # the whole suite was collected, then deselected
