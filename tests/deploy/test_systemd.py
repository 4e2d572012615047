"""deploy/systemd/: the units pass ``systemd-analyze verify``, each service under its own user
with the sandbox it needs, and the sysusers file creates exactly those users.

``systemd-analyze`` checks that ExecStart's program exists; the units name
``/opt/crossband/.venv/bin/crossband`` (the install path), so the copy verified here names the
``crossband`` of this venv instead, and nothing else changes. A missing ``systemd-analyze``
skips, except in CI, where it fails (tests/rigs/tools.py).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from tests.deploy.files import DEPLOY, ENDPOINTS, STATE, check_service, state_dir
from tests.rigs.tools import require_tool, skip_unavailable

UNITS = DEPLOY / "systemd"
INSTALLED = "/opt/crossband/.venv/bin/crossband"
HERE = str(Path(sys.executable).with_name("crossband"))


def directives(unit: Path) -> dict[str, list[str]]:
    """``[Service]`` (and the other sections') settings; repeated keys keep every value."""
    out: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, sep, value = line.partition("=")
            assert sep, f"{unit.name}: not a setting: {line!r}"
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def one(settings: dict[str, list[str]], key: str) -> str:
    (value,) = settings[key]
    return value


def verify(units: list[Path]) -> tuple[int, str]:
    """``systemd-analyze verify`` of ``units``: (exit status, every line it said about them)."""
    with skip_unavailable():
        tool = require_tool("systemd-analyze")
    proc = subprocess.run(
        [tool, "verify", *map(str, units)], capture_output=True, text=True, timeout=60
    )
    ours = [n.name for n in units] + [n.name.replace("@.", "@i.") for n in units]
    said = [ln for ln in (proc.stdout + proc.stderr).splitlines() if any(u in ln for u in ours)]
    return proc.returncode, "\n".join(said)


def runnable_copies(tmp: Path, extra: str = "") -> list[Path]:
    """The units, and one instance of the template, with ExecStart on this venv's crossband."""
    out = []
    for unit in sorted(UNITS.glob("*.service")):
        text = unit.read_text()
        assert text.count(INSTALLED) == 1, unit.name
        copy = tmp / unit.name
        copy.write_text(text.replace(INSTALLED, HERE).replace("[Install]", extra + "[Install]"))
        out.append(copy)
        if unit.name.endswith("@.service"):
            instance = tmp / unit.name.replace("@.", "@us-cbp.")
            instance.write_text(copy.read_text())
            out.append(instance)
    return out


def test_the_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    units = runnable_copies(tmp_path)
    assert [u.name for u in units] == [
        "crossband-endpoint@.service",
        "crossband-endpoint@us-cbp.service",
        "crossband-relay.service",
    ]
    code, said = verify(units)
    assert code == 0 and said == "", said


EXPOSURE = 2.0  # systemd-analyze security, 0 (locked down) to 10; the units score 1.5 and 1.6


def test_the_units_are_locked_down_by_systemd_analyze_security(tmp_path: Path) -> None:
    """The old units (User=crossband, ReadWritePaths) scored 8.5, "EXPOSED"."""
    with skip_unavailable():
        tool = require_tool("systemd-analyze")
    for unit in [u for u in runnable_copies(tmp_path) if not u.name.endswith("@.service")]:
        proc = subprocess.run(
            [tool, "security", "--offline=true", f"--threshold={EXPOSURE * 10:.0f}", str(unit)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout)
        assert found, proc.stdout[-2000:] + proc.stderr
        assert float(found[1]) <= EXPOSURE and proc.returncode == 0, (unit.name, found[1])


def test_verify_as_run_here_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a misspelt setting is only a warning, and still fails it."""
    code, said = verify(runnable_copies(tmp_path, extra="ProtectSytem=strict\n"))
    assert "Unknown key" in said and "ProtectSytem" in said


SANDBOX = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "UMask": "0077",
    "StateDirectoryMode": "0700",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "SystemCallErrorNumber": "EPERM",
}
FAMILIES = {  # the relay needs no netlink; an endpoint looks up multicast interfaces
    "crossband-relay.service": "AF_INET AF_INET6 AF_UNIX",
    "crossband-endpoint@.service": "AF_INET AF_INET6 AF_UNIX AF_NETLINK",
}


@pytest.mark.parametrize("unit", ["crossband-relay.service", "crossband-endpoint@.service"])
def test_each_unit_runs_its_own_user_in_the_sandbox_on_an_example_config(unit: str) -> None:
    s = directives(UNITS / unit)
    for key, value in SANDBOX.items():
        assert one(s, key) == value, (unit, key)
    assert one(s, "RestrictAddressFamilies") == FAMILIES[unit]
    assert s["SystemCallFilter"] == ["@system-service", "~@privileged"]
    assert "ReadWritePaths" not in s  # the state directory is the only writable place
    argv = shlex.split(one(s, "ExecStart"))
    assert argv[0] == INSTALLED
    names = ["relay"] if unit == "crossband-relay.service" else list(ENDPOINTS)
    for name in names:  # %i is each instance of the three-agency example
        _, config = check_service([a.replace("%i", name) for a in argv[1:]], name)
        user = one(s, "User").replace("%i", name)
        assert user == f"crossband-{name}" == one(s, "Group").replace("%i", name)
        state = PurePosixPath("/var/lib") / one(s, "StateDirectory").replace("%i", name)
        assert state == state_dir(config) == STATE / name


def test_sysusers_creates_a_user_for_each_service(tmp_path: Path) -> None:
    units = [
        directives(UNITS / u) for u in ("crossband-relay.service", "crossband-endpoint@.service")
    ]
    wanted = {one(units[0], "User")} | {one(units[1], "User").replace("%i", n) for n in ENDPOINTS}
    with skip_unavailable():
        tool = require_tool("systemd-sysusers")
    conf = UNITS / "crossband.sysusers.conf"
    proc = subprocess.run(  # --root: reads no user database of this machine, writes nothing
        [tool, "--dry-run", f"--root={tmp_path}", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    said = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Failed" not in said and "ignoring" not in said, said
    created = {ln.split("'")[1] for ln in said.splitlines() if ln.startswith("Creating user ")}
    assert created == wanted
