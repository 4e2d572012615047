"""``crossband keys …``: stand up agencies from nothing (DESIGN §3).

Everything an operator needs, as files:

=====================  ===========================================  =====================
command                reads                                         writes
=====================  ===========================================  =====================
``root create``        —                                             root key (0600)
``root public``        root key                                      public export (JSON)
``device issue``       root key, ``<root>.serials``                  device key (0600),
                                                                     credential (JSON)
``agreement create``   —                                             agreement (JSON)
``agreement sign``     root key, agreement                           agreement, in place
``agreement show``     agreement [, trust bundle]                    —
``revoke``             root key [, previous revocation list]         revocation list (JSON)
``bundle``             public exports                                trust bundle (JSON)
``verify``             trust bundle [, revocation lists], statement  —
=====================  ===========================================  =====================

Private key files are written by :mod:`crypto.keyfile` (mode 0600, refused if group/others can
read them). A passphrase is only ever read from the environment variable named by
``--passphrase-env`` — never from argv, where ``ps`` and shell history would show it. Without
one, key files are written unencrypted and a warning is logged. Existing private key files
are never overwritten.

``<root>.serials`` beside each root key records the serials that root has issued, so serials
are unique per agency: revocation is by serial, and a reused serial would revoke two devices.

This module builds the command tree; the commands are in :mod:`bridge.cli.keys_issue` (roots,
relay keys, credentials, revocation lists, bundles) and :mod:`bridge.cli.keys_agreements`
(agreements, ``verify``), the files and formats they share in :mod:`bridge.cli.keys_files`.

These modules are an I/O layer: it reads the clock (``time.time()``) and passes ``now`` to
:mod:`crypto`, which reads none. ``verify`` exits 0 if the statement is accepted and 1 if it is
refused, printing one line with the refusal code; operator errors exit 2 (see bridge.cli.main).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from bridge.cli.keys_agreements import (
    agreement_create,
    agreement_show,
    agreement_sign,
    verify_statement,
)
from bridge.cli.keys_files import passphrase_from_env
from bridge.cli.keys_issue import (
    KEMS,
    MAX_ALIAS,
    build_bundle,
    device_issue,
    relay_create,
    revoke,
    root_create,
    root_public,
)
from bridge.cli.main import help_handler
from crypto.identity import KINDS, ROLES

if TYPE_CHECKING:
    from bridge.cli.main import Subparsers

__all__ = ["passphrase_from_env", "register"]


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _roles(text: str) -> tuple[str, ...]:
    roles = tuple(r.strip() for r in text.split(",") if r.strip())
    bad = [r for r in roles if r not in ROLES]
    if not roles or bad or len(set(roles)) != len(roles):
        raise argparse.ArgumentTypeError(f"roles are a comma list of {', '.join(ROLES)}")
    return roles


def _party(text: str) -> tuple[str, tuple[str, ...]]:
    agency, sep, roles = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError("a party is AGENCY=ROLE[,ROLE…], e.g. us-cbp=member")
    return agency.strip(), _roles(roles)


def _passphrase_arg(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--passphrase-env",
        metavar="VAR",
        help=f"read the {what} passphrase from environment variable VAR (never from argv)",
    )


def register(subparsers: Subparsers) -> None:
    keys = subparsers.add_parser("keys", help="agency roots, device credentials, agreements")
    keys.set_defaults(func=help_handler(keys))
    cmds = keys.add_subparsers(title="keys commands", metavar="COMMAND")

    root = cmds.add_parser("root", help="agency root keys")
    root.set_defaults(func=help_handler(root))
    root_cmds = root.add_subparsers(title="root commands", metavar="COMMAND")
    p = root_cmds.add_parser("create", help="generate an agency root key (0600)")
    p.add_argument("--agency", required=True, help="agency id, e.g. us-cbp")
    p.add_argument("--out", required=True, help="root key file to create")
    p.add_argument(
        "--composite",
        action="store_true",
        help="a composite ML-DSA-65 + Ed25519 root (post-quantum); partners re-pin it",
    )
    _passphrase_arg(p, "new root key's")
    p.set_defaults(func=root_create)
    p = root_cmds.add_parser("public", help="export a root's public key for partners")
    p.add_argument("--root", required=True, help="agency root key file")
    p.add_argument("--out", required=True, help="public export to write (JSON)")
    _passphrase_arg(p, "root key's")
    p.set_defaults(func=root_public)

    p = cmds.add_parser("relay", help="create a relay identity key (devices pin its public half)")
    p.add_argument("--id", required=True, help="the relay_id of the relay's config")
    p.add_argument("--out", required=True, help="relay key file to create (0600)")
    _passphrase_arg(p, "relay key's")
    p.set_defaults(func=relay_create)

    device = cmds.add_parser("device", help="device credentials")
    device.set_defaults(func=help_handler(device))
    device_cmds = device.add_subparsers(title="device commands", metavar="COMMAND")
    p = device_cmds.add_parser("issue", help="generate device keys and issue a credential")
    p.add_argument("--root", required=True, help="agency root key file")
    p.add_argument("--name", required=True, help="device name; its id is AGENCY/NAME")
    p.add_argument("--roles", required=True, type=_roles, help="e.g. member or dispatcher,member")
    p.add_argument("--kind", choices=KINDS, default="console", help="default: %(default)s")
    p.add_argument("--alias", default="", help=f"display name (≤{MAX_ALIAS} chars)")
    p.add_argument("--days", type=_positive, default=365, help="validity (default: %(default)s)")
    p.add_argument(
        "--kem",
        choices=sorted(KEMS),
        default="hybrid",
        help="hybrid = ML-KEM-768 + X25519 (default: %(default)s)",
    )
    p.add_argument(
        "--composite",
        action="store_true",
        help="also a composite ML-DSA-65 + Ed25519 key that signs the commits it issues "
        "(dispatchers, under a bundle with --min-signature composite)",
    )
    p.add_argument("--serial", type=_positive, help="default: next from ROOT.serials")
    p.add_argument("--key-out", help="device private key file (default: NAME.key)")
    p.add_argument("--cred-out", help="credential file (default: NAME.cred)")
    _passphrase_arg(p, "root key's")
    p.add_argument("--device-passphrase-env", metavar="VAR", help="seal the device key with $VAR")
    p.set_defaults(func=device_issue)

    agreement = cmds.add_parser("agreement", help="interoperability agreements")
    agreement.set_defaults(func=help_handler(agreement))
    agr_cmds = agreement.add_subparsers(title="agreement commands", metavar="COMMAND")
    p = agr_cmds.add_parser("create", help="write an unsigned agreement")
    p.add_argument("--id", required=True, help="agreement id, e.g. shiprider-gl")
    p.add_argument("--name", required=True, help="human name")
    p.add_argument(
        "--party",
        required=True,
        action="append",
        type=_party,
        metavar="AGENCY=ROLES",
        help="a participating agency and the roles its devices may hold (repeat)",
    )
    p.add_argument("--days", type=_positive, default=30, help="validity (default: %(default)s)")
    p.add_argument(
        "--min-kem",
        choices=sorted(KEMS),
        default="hybrid",
        help="weakest HPKE KEM a member may have (default: %(default)s)",
    )
    p.add_argument("--out", required=True, help="agreement file to write")
    p.set_defaults(func=agreement_create)
    p = agr_cmds.add_parser("sign", help="add your agency's signature, in place")
    p.add_argument("--root", required=True, help="agency root key file")
    p.add_argument("file", metavar="AGREEMENT", help="agreement file")
    _passphrase_arg(p, "root key's")
    p.set_defaults(func=agreement_sign)
    p = agr_cmds.add_parser("show", help="parties, roles, signatures present/missing")
    p.add_argument("--bundle", help="trust bundle: also check each signature")
    p.add_argument("file", metavar="AGREEMENT", help="agreement file")
    p.set_defaults(func=agreement_show)

    p = cmds.add_parser("revoke", help="issue the next revocation list")
    p.add_argument("--root", required=True, help="agency root key file")
    p.add_argument("--serial", type=_positive, action="append", default=[], help="repeat")
    p.add_argument("--crl", help="the agency's current revocation list (kept and extended)")
    p.add_argument("--out", required=True, help="revocation list to write (may equal --crl)")
    _passphrase_arg(p, "root key's")
    p.set_defaults(func=revoke)

    p = cmds.add_parser("bundle", help="build a trust bundle from public root exports")
    p.add_argument("--pub", required=True, action="append", help="public export (repeat)")
    p.add_argument("--out", required=True, help="trust bundle to write")
    p.add_argument(
        "--min-signature",
        choices=("ed25519", "composite"),
        default="ed25519",
        help="composite: refuse Ed25519-only roots and statements (default: %(default)s)",
    )
    p.set_defaults(func=build_bundle)

    p = cmds.add_parser(
        "verify", help="verify a credential or agreement (exit 0 accepted, 1 refused)"
    )
    p.add_argument("--bundle", required=True, help="trust bundle")
    p.add_argument("--crl", action="append", default=[], help="revocation list (repeat)")
    p.add_argument("file", metavar="FILE", help="credential or agreement file")
    p.set_defaults(func=verify_statement)
