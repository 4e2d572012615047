"""``crossband relay --config relay.yaml``: run the relay (see :mod:`bridge.relay.config`).

The relay runs on uvloop when it is importable (``event_loop: auto``, the default), else on
asyncio's own loop; ``event_loop: asyncio`` or ``uvloop`` in relay.yaml forces one (uvloop is
then required). The start line names the loop in use: ``… loop=uvloop``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from bridge.config import RelaySettings, config_error
from bridge.relay.config import load_config, serve

Runner = Callable[[Coroutine[Any, Any, None]], None]


def loop_runner(cfg: RelaySettings, source: str | Path) -> tuple[Runner, str]:
    """``(run, name)``: the function that runs the relay's main coroutine, and its loop."""
    if cfg.event_loop == "asyncio":
        return asyncio.run, "asyncio"
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        if cfg.event_loop == "uvloop":
            raise config_error(source, "event_loop", "uvloop is not installed") from None
        return asyncio.run, "asyncio"
    run: Runner = uvloop.run
    return run, "uvloop"


SWITCH_INTERVAL = 0.001  # s: the longest a verifying thread keeps the loop from the GIL


def _run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    run, _ = loop_runner(cfg, args.config)
    # Commits are verified on a thread (bridge.relay.jobs.VerifyCommit); the event loop gets
    # the interpreter back within this interval (default 5 ms) when a datagram arrives.
    sys.setswitchinterval(SWITCH_INTERVAL)
    run(serve(cfg, args.config, Path(args.ready_file) if args.ready_file else None))
    return 0


def register(subparsers: Any) -> None:
    sp = subparsers.add_parser("relay", help="run the relay server")
    sp.add_argument("--config", required=True, help="relay.yaml")
    sp.add_argument("--ready-file", help="write the listening addresses here once ready")
    sp.set_defaults(func=_run)


if __name__ == "__main__":  # python -m bridge.cli.relay --config relay.yaml [--ready-file F]
    from bridge.cli.main import main

    # Through the CLI's main, so a config error is one line and exit status 2, not a traceback.
    sys.exit(main(["--log-level", "info", "relay", *sys.argv[1:]]))
