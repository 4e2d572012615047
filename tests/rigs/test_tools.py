"""A rig skips only for a missing tool or permission, and says which (with the Debian
package); any other failure of ``ip``/``nft`` is an error."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.rigs import netns
from tests.rigs.tools import RigUnavailable, require_tool, skip_unavailable


def test_missing_tool_names_its_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RigUnavailable, match=r"`nft` is not installed \(Debian package nftables\)"):
        require_tool("nft")
    with pytest.raises(RigUnavailable, match="iproute2"):
        netns.check_available()


def test_not_root_is_a_missing_permission(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/sbin/{name}")
    with pytest.raises(RigUnavailable, match="needs root"):
        netns.check_available()


def fake_run(stderr: str) -> object:
    def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 2, "", stderr)

    return run


def test_refused_command_is_unavailable_other_errors_fail(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(subprocess, "run", fake_run("mount --make-shared: Operation not permitted"))
    with pytest.raises(RigUnavailable, match="Operation not permitted"):
        netns._run(["ip", "netns", "add", "x"])
    monkeypatch.setattr(subprocess, "run", fake_run("Error: syntax error"))
    with pytest.raises(netns.NetnsError, match="syntax error"):
        netns._run(["ip", "netns", "add", "x"])


def test_skip_unavailable_turns_only_unavailable_into_a_skip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no ffmpeg"):
        with skip_unavailable():
            raise RigUnavailable("no ffmpeg")
    with pytest.raises(RuntimeError):
        with skip_unavailable():
            raise RuntimeError("a real failure")


def test_in_ci_a_missing_tool_fails_instead_of_skipping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no ffmpeg; CI runs"):
        with skip_unavailable():
            raise RigUnavailable("no ffmpeg")
