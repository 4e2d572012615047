"""What the deploy/ tests share: where things are, and the checks every service definition
(systemd unit, compose service, Kubernetes container) must pass.

Every definition runs ``crossband … relay|endpoint --config /etc/crossband/<name>/<file>``;
``/etc/crossband/<name>`` is ``deploy/three-agency/<name>`` (mounted, copied or assembled), and
the service's state lives in ``/var/lib/crossband/<name>``, where the config puts it.
"""

from __future__ import annotations

import argparse
from pathlib import Path, PurePosixPath

from bridge.cli.endpoint import load_endpoint_config
from bridge.cli.main import build_parser
from bridge.config import load_relay_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
EXAMPLE = DEPLOY / "three-agency"
SERVICES = ("relay", "us-cbp", "ca-rcmp", "mx-gn")
ENDPOINTS = SERVICES[1:]
ETC = PurePosixPath("/etc/crossband")
STATE = PurePosixPath("/var/lib/crossband")
COMMANDS = {"relay": "bridge.cli.relay", "endpoint": "bridge.cli.endpoint"}


def crossband_args(argv: list[str]) -> argparse.Namespace:
    """``argv`` parsed by the real ``crossband`` parser; it must name ``relay`` or ``endpoint``
    (checked by the handler argparse chose, not by searching the words)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        raise AssertionError(f"crossband {' '.join(argv)}: not a valid command") from exc
    module = getattr(args.func, "__module__", "")
    assert module in COMMANDS.values(), f"crossband {' '.join(argv)} runs {module}"
    return args


def command_kind(args: argparse.Namespace) -> str:
    return next(k for k, m in COMMANDS.items() if m == args.func.__module__)


def example_file(config: str) -> Path:
    """The file in deploy/three-agency/ that ``/etc/crossband/NAME/FILE`` is."""
    path = PurePosixPath(config)
    assert path.is_relative_to(ETC), f"{config} is not under {ETC}"
    local = EXAMPLE.joinpath(*path.relative_to(ETC).parts)
    assert local.is_file(), f"{config}: no {local.relative_to(ROOT)}"
    return local


def state_dir(config: Path) -> PurePosixPath:
    """Where the service of ``config`` (a file of deploy/three-agency/) keeps its state; the
    config is loaded by the real loader, and every state file must be in that one folder."""
    if config.name == "relay.yaml":
        relay = load_relay_settings(config)
        dirs = {PurePosixPath(relay.database).parent, PurePosixPath(relay.audit_log).parent}
    else:
        dirs = {PurePosixPath(load_endpoint_config(config).settings.state).parent}
    (only,) = dirs
    assert only == STATE / config.parent.name, f"{config}: state in {only}"
    return only


def check_service(argv: list[str], name: str) -> tuple[str, Path]:
    """The checks every definition of service ``name`` passes; (command kind, config file)."""
    args = crossband_args(argv)
    kind = command_kind(args)
    assert kind == ("relay" if name == "relay" else "endpoint"), (name, kind)
    config = example_file(args.config)
    assert config.parent.name == name, f"{name} runs the config of {config.parent.name}"
    return kind, config
