"""``crossband audit …``: check an audit log's hash chain (the log is :mod:`bridge.relay.audit`).

``crossband audit verify FILE`` prints one line and exits 0 if the chain is intact, 1 if not.
:mod:`bridge.relay.audit` is imported only when the command runs, so the rest of the CLI never
depends on it.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from bridge.cli.main import help_handler

if TYPE_CHECKING:
    from bridge.cli.main import Subparsers


def register(subparsers: Subparsers) -> None:
    audit = subparsers.add_parser("audit", help="check audit logs")
    audit.set_defaults(func=help_handler(audit))
    commands = audit.add_subparsers(title="audit commands", metavar="COMMAND")
    verify = commands.add_parser(
        "verify", help="verify an audit log's hash chain (exit 0 intact, 1 broken)"
    )
    verify.add_argument("file", metavar="FILE", help="audit log to check")
    verify.set_defaults(func=_verify)


def _verify(args: argparse.Namespace) -> int:
    from bridge.relay.audit import verify_command

    return verify_command(args.file)
