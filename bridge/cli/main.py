"""Command-line entry point: ``crossband <command> …``.

The CLI is a small registry. Each module named in :data:`_COMMAND_MODULES` exposes
``register(subparsers) -> None``, which adds its subparser and sets ``func`` to a handler
``handler(args) -> int``. Modules are imported lazily, in order; a module that does not exist
yet is skipped, so the CLI works while the project grows. Any *other* import error (a missing
dependency, a bug) propagates: hiding it would hide a broken command.

This module is the I/O shell around everything else. It owns:

- **exit status**: whatever the handler returns; ``2`` for usage errors and for every
  :class:`~crypto.errors.CrossbandError` or OS error, printed as one line
  ``crossband: error: <message>`` on stderr (never a traceback, never key material — error
  messages in this project carry neither); ``130`` on Ctrl-C;
- **logging**: ``--log-level`` and one-line ``key=value`` records on stderr
  (:class:`KeyValueFormatter`), so relay and gateway logs can be grepped and shipped as is.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from types import ModuleType
from typing import TYPE_CHECKING, Any, TextIO

from crypto.errors import CrossbandError

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

PROG = "crossband"
_COMMAND_MODULES = [
    "bridge.cli.keys",
    "bridge.cli.audit",
    "bridge.cli.relay",
    "bridge.cli.endpoint",
    "bridge.cli.console",
    "bridge.demo.main",
]
LOG_LEVELS = ("debug", "info", "warning", "error")

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is logged.
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class KeyValueFormatter(logging.Formatter):
    """``ts=… level=… logger=… msg="…" k=v …`` on one line; ``extra=`` fields become pairs."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        pairs: list[tuple[str, object]] = [
            ("ts", f"{ts}.{int(record.msecs):03d}Z"),
            ("level", record.levelname.lower()),
            ("logger", record.name),
            ("msg", record.getMessage()),
        ]
        pairs += [(k, v) for k, v in vars(record).items() if k not in _STANDARD_ATTRS]
        if record.exc_info and record.exc_info[0] is not None:
            pairs.append(("exc", record.exc_info[0].__name__))
        return " ".join(f"{k}={_quote(v)}" for k, v in pairs)


def _quote(value: object) -> str:
    text = str(value)
    if text and not any(c in text for c in ' "=\\') and text.isprintable():
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at emit time (so redirection and tests work)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(level: str) -> None:
    """Send one-line key=value records at ``level`` and above to stderr (idempotent)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(KeyValueFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())


def _command_modules() -> list[ModuleType]:
    modules = []
    for name in _COMMAND_MODULES:
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:  # the module exists but something it imports does not
                raise
    return modules


def help_handler(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """A handler for a command group given no subcommand: print its help, exit status 2."""

    def handler(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    return handler


def _version() -> str:
    try:
        return version("crossband")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Crossband: end-to-end encrypted interoperable radio and messaging bridge.",
        epilog="Exit status: 0 success, 1 refused/failed check, 2 usage or operator error.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, default="warning", help="default: %(default)s"
    )
    parser.set_defaults(func=help_handler(parser))
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module in _command_modules():
        module.register(subparsers)
    return parser


def _exit_code(code: Any) -> int:
    if code is None:
        return 0
    return code if isinstance(code, int) else 2


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``) and return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors (already printed)
        return _exit_code(exc.code)
    configure_logging(args.log_level)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except CrossbandError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{PROG}: error: {where}{exc.strerror or exc}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    return 2


if (
    __name__ == "__main__"
):  # python -m bridge.cli.main: run the importable module, not a second copy
    from bridge.cli.main import main as _main

    sys.exit(_main())
