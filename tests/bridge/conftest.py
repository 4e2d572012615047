"""Fixtures of the bridge tests: ``cb`` runs the ``crossband`` CLI in-process."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.cli.main import main
from tests.bridge.cli_helpers import PASSPHRASE


@pytest.fixture
def cb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Run ``crossband ARGS`` in-process in tmp_path; returns (exit code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("US_CBP_PASS", PASSPHRASE)

    def call(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        return code, out, err

    return call
