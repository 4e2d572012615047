"""``crossband console --config console.yaml``: a console endpoint serving the dispatch console.

``console.yaml`` is an ``endpoint.yaml`` (see :mod:`bridge.cli.endpoint`: device key,
credential, trust bundle, relay, state, ...) plus a ``console`` section
(:mod:`bridge.console.config`)::

    console:
      listen: 127.0.0.1:8480
      users:
        - name: dispatcher-1
          password_hash: scrypt$15$8$1$...

``crossband console hash-password`` prints the ``password_hash`` of a password read from the
terminal (twice) or, with ``--stdin``, from the first line of standard input; the password is
never echoed, logged or put on the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import signal
import sys
import time
from typing import Any

from bridge.cli.endpoint import build_endpoint, endpoint_config, native_gateway
from bridge.config import config_error, read_yaml
from bridge.console.auth import Sessions, hash_password
from bridge.console.config import ConsoleSettings, parse_console
from bridge.console.incident import IncidentDesk
from bridge.console.service import ConsoleService
from bridge.console.web import ConsoleWeb
from bridge.endpoint.endpoint import Endpoint
from crypto.agreement import Agreement
from crypto.errors import CrossbandError
from crypto.identity import Credential

log = logging.getLogger("crossband.console")


def load_console_config(path: str) -> tuple[Any, ConsoleSettings]:
    rest, console = parse_console(read_yaml(path), path)
    return endpoint_config(rest, path), console


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def incident_desk(endpoint: Endpoint, settings: ConsoleSettings, path: str) -> IncidentDesk:
    """The agreements and directory of the ``console`` section, read and verified."""
    agreements, creds = [], []
    for i, p in enumerate(settings.agreements):
        try:
            agreements.append(Agreement.decode(p.read_bytes()))
        except (OSError, CrossbandError, ValueError) as exc:
            raise config_error(path, f"console.agreements[{i}]", f"{p}: {_why(exc)}") from None
    for i, p in enumerate(settings.directory):
        try:
            creds.append(Credential.decode(p.read_bytes()))
        except (OSError, CrossbandError, ValueError) as exc:
            raise config_error(path, f"console.directory[{i}]", f"{p}: {_why(exc)}") from None
    try:
        return IncidentDesk(endpoint, agreements, creds)
    except CrossbandError as exc:
        raise config_error(path, "console", f"refused: {_why(exc)}") from None


async def run_console(path: str) -> None:
    cfg, settings = load_console_config(path)
    loop = asyncio.get_running_loop()
    endpoint = build_endpoint(cfg, time.time())
    gateway = native_gateway(endpoint, cfg) if cfg.native else None
    forward = gateway.handle_event if gateway is not None else None
    desk = incident_desk(endpoint, settings, path)
    service = ConsoleService(endpoint, forward=forward, desk=desk)
    sessions = Sessions(ttl=settings.session_ttl, idle=settings.session_idle)
    web = ConsoleWeb(service, settings.password_hashes(), sessions)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await endpoint.start()
    try:
        if gateway is not None:
            await gateway.start(pump_events=False)
        await service.start()
        try:
            host, port = await web.start(settings.host, settings.port)
        except OSError as exc:
            problem = f"cannot listen on {settings.listen}: {exc.strerror or exc}"
            raise config_error(path, "console.listen", problem) from None
        shown = f"[{host}]" if ":" in host else host
        print(f"crossband console {endpoint.device} at http://{shown}:{port}/", flush=True)
        await stop.wait()
    finally:
        await web.stop()
        await service.stop()
        if gateway is not None:
            await gateway.stop()
        await endpoint.stop()


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise SystemExit("crossband console hash-password: the two passwords differ")
    return first


def _run(args: argparse.Namespace) -> int:
    if args.action == "hash-password":
        try:
            print(hash_password(_read_password(args.stdin)))
        except ValueError as exc:
            print(f"crossband console hash-password: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.config is None:
        print("crossband console: --config console.yaml is required", file=sys.stderr)
        return 2
    asyncio.run(run_console(args.config))
    return 0


def register(subparsers: Any) -> None:
    sp = subparsers.add_parser(
        "console", help="serve the dispatch console (or: console hash-password)"
    )
    sp.add_argument("action", nargs="?", choices=["hash-password"], help="print a password hash")
    sp.add_argument("--config", help="console.yaml (an endpoint.yaml with a console section)")
    sp.add_argument("--stdin", action="store_true", help="hash-password: read it from stdin")
    sp.set_defaults(func=_run)


def main(argv: list[str] | None = None) -> int:
    """``python -m bridge.cli.console ...``: this command alone (``crossband console`` is the
    same once :mod:`bridge.cli.main` lists this module)."""
    parser = argparse.ArgumentParser(prog="crossband")
    register(parser.add_subparsers(required=True))
    args = parser.parse_args(["console", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args))
    except CrossbandError as exc:
        print(f"crossband console: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
