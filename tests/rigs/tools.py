"""What a rig needs from the machine, and the one way a missing piece becomes a skip.

Only an absent tool or an absent permission is a reason to skip; anything else a rig meets
(a command that fails for another reason, a wrong result) is raised as an error and fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

# Debian package of each external tool a rig runs (for .ci/run and deploy/setup.sh --test).
PACKAGES = {
    "ip": "iproute2",
    "nft": "nftables",
    "ffmpeg": "ffmpeg",
    "espeak-ng": "espeak-ng",
    "sox": "sox",
    "murmurd": "mumble-server",
    "prosody": "prosody",
    "prosodyctl": "prosody",
    "sipp": "sip-tester",
    "baresip": "baresip",
    "chromium": "chromium",
    "systemd-analyze": "systemd",
    "systemd-sysusers": "systemd",
}


class RigUnavailable(Exception):
    """This machine lacks a tool or a permission the rig needs (the message says which)."""


def require_tool(name: str) -> str:
    """The path of ``name`` on PATH, or :class:`RigUnavailable` naming its Debian package."""
    path = shutil.which(name)
    if path is None:
        package = PACKAGES.get(name, name)
        raise RigUnavailable(f"`{name}` is not installed (Debian package {package})")
    return path


def require_root(what: str) -> None:
    """:class:`RigUnavailable` unless this process runs as root (``what`` needs CAP_NET_ADMIN)."""
    if os.geteuid() != 0:
        raise RigUnavailable(f"{what} needs root (CAP_NET_ADMIN); running as uid {os.geteuid()}")


PERMISSION_MARKERS = ("Operation not permitted", "Permission denied")


def is_permission_error(stderr: str) -> bool:
    """Whether a tool's error output says it lacked a permission (rather than failed)."""
    return any(marker in stderr for marker in PERMISSION_MARKERS)


@contextmanager
def skip_unavailable() -> Iterator[None]:
    """Turn :class:`RigUnavailable` raised inside the block into ``pytest.skip(reason)``, except
    in CI (``CI`` set), where ``deploy/setup.sh --test`` installed every tool: there a missing
    tool fails the test rather than letting it pass unseen."""
    try:
        yield
    except RigUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc}; CI runs ./deploy/setup.sh --test, which installs it")
        pytest.skip(str(exc))
