"""``crossband relay --config relay.yaml``: run the relay (see :mod:`bridge.relay.config`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path
from typing import Any

from bridge.relay.config import load_config, serve


def _run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    asyncio.run(serve(cfg, Path(args.ready_file) if args.ready_file else None))
    return 0


def register(subparsers: Any) -> None:
    sp = subparsers.add_parser("relay", help="run the relay server")
    sp.add_argument("--config", required=True, help="relay.yaml")
    sp.add_argument("--ready-file", help="write the listening addresses here once ready")
    sp.set_defaults(func=_run)


if __name__ == "__main__":  # python -m bridge.cli.relay --config relay.yaml
    import sys

    _parser = argparse.ArgumentParser(prog="crossband relay")
    register(_parser.add_subparsers())
    _args = _parser.parse_args(["relay", *sys.argv[1:]])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sys.exit(_args.func(_args))
