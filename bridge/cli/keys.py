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

This module is an I/O layer: it reads the clock (``time.time()``) and passes ``now`` to
:mod:`crypto`, which reads none. ``verify`` exits 0 if the statement is accepted and 1 if it is
refused, printing one line with the refusal code; operator errors exit 2 (see bridge.cli.main).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import stat
import tempfile
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bridge.cli.main import help_handler
from bridge.errors import ConfigError
from crypto.agreement import (
    AGREEMENT_DOMAIN,
    Agreement,
    RevocationList,
    verify_agreement,
    verify_revocation_list,
)
from crypto.encoding import b64d, b64e, canonical, field, parse, signing_input
from crypto.errors import KeyFileError, Refusal, VerificationError
from crypto.identity import (
    KINDS,
    ROLES,
    AgencyRoot,
    Credential,
    DeviceKeys,
    TrustBundle,
    check_agency_id,
    check_device_id,
    issue_credential,
    verify_credential,
)
from crypto.keyfile import load_root, save_device, save_relay_key, save_root
from crypto.keys import Kem, SigningKey, VerifyKey

if TYPE_CHECKING:
    from bridge.cli.main import Subparsers

log = logging.getLogger(__name__)

CLOCK_SKEW = 60  # statements start this many seconds in the past, for partners' slow clocks
MAX_ALIAS = 64  # crypto.identity keeps at most this many characters of an alias
DAY = 86400
KEMS = {"x25519": Kem.X25519, "hybrid": Kem.MLKEM768_X25519}

# --------------------------------------------------------------------------- file helpers


def passphrase_from_env(var: str | None) -> str | None:
    """The passphrase held in environment variable ``var``, or None if no variable is named."""
    if var is None:
        return None
    value = os.environ.get(var)
    if value is None:
        raise ConfigError(f"environment variable {var} is not set")
    if not value:
        raise ConfigError(f"environment variable {var} is empty")
    return value


def _passphrase_for_new_key(var: str | None, path: str) -> str | None:
    passphrase = passphrase_from_env(var)
    if passphrase is None:
        log.warning(
            "writing unencrypted private key file; use --passphrase-env VAR to seal it",
            extra={"path": path},
        )
    return passphrase


def _refuse_overwrite(path: str) -> None:
    if os.path.lexists(path):
        raise ConfigError(f"{path} exists; refusing to overwrite a private key (move it away)")


def _write_public(path: str, data: bytes) -> None:
    """Write a public statement (readable by all: it holds no secret).

    A regular file is replaced atomically through a fresh temporary file beside it; anything
    else that already exists (``/dev/stdout``, a pipe, ``/dev/null``) is written to directly,
    never replaced.
    """
    if os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode):
        with open(path, "wb") as f:
            f.write(data + b"\n")
        return
    target = os.path.realpath(path)  # through a symlink: replace the file, keep the link
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".crossband-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data + b"\n")
            f.flush()
            os.fchmod(f.fileno(), 0o644)
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _read_statement(path: str, what: str) -> dict[str, Any]:
    with open(path, "rb") as f:
        data = f.read()
    try:
        return parse(data)
    except VerificationError as exc:
        raise VerificationError(exc.code, f"{path} is not a {what} ({exc.detail})")


def _decode(path: str, what: str, decoder: Any) -> Any:
    obj = _read_statement(path, what)
    try:
        return decoder(obj)
    except VerificationError as exc:
        raise VerificationError(exc.code, f"{path}: {what}: {exc.detail}")


def _load_root(path: str, passphrase_env: str | None) -> AgencyRoot:
    try:
        root = load_root(path, passphrase_from_env(passphrase_env))
        check_agency_id(root.agency)
    except (KeyError, TypeError, ValueError, VerificationError):  # damaged but well-formed file
        raise KeyFileError(f"{path}: damaged agency root key file")
    except KeyFileError as exc:
        hint = " with --passphrase-env VAR" if passphrase_env is None else ""
        raise KeyFileError(f"{path}: {exc}{hint if 'passphrase-protected' in str(exc) else ''}")
    return root


def _utc(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _grouped(fingerprint: str) -> str:
    """A fingerprint in groups of four, for reading aloud to a partner agency."""
    return " ".join(fingerprint[i : i + 4] for i in range(0, len(fingerprint), 4))


def _window(not_before: int, not_after: int, now: float) -> str:
    state = "valid now"
    if now < not_before:
        state = "NOT YET VALID"
    elif now > not_after:
        state = "EXPIRED"
    return f"{_utc(not_before)} to {_utc(not_after)} ({state})"


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


# --------------------------------------------------------------------------- serial counter


def _reserve_serial(root_path: str, agency: str, requested: int | None) -> int:
    """Record a serial as issued in ``<root>.serials``: the next one, or ``requested``."""
    path = root_path + ".serials"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    with os.fdopen(fd, "r+", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the file is closed
        text = f.read()
        issued: set[int] = set()
        if text.strip():
            try:
                obj = json.loads(text)
                owner, issued = obj["agency"], set(obj["issued"])
                if not all(isinstance(s, int) for s in issued):
                    raise TypeError("serials")
            except (ValueError, KeyError, TypeError):
                raise ConfigError(f"{path} is damaged; it should list issued serials")
            if owner != agency:
                raise ConfigError(f"{path} belongs to agency {owner}, not {agency}")
        serial = requested if requested is not None else max(issued, default=0) + 1
        if serial in issued:
            raise ConfigError(f"serial {serial} was already issued by {agency} (see {path})")
        issued.add(serial)
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"agency": agency, "issued": sorted(issued)}) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return serial


# --------------------------------------------------------------------------- handlers


def _root_create(args: argparse.Namespace) -> int:
    _refuse_overwrite(args.out)
    passphrase = _passphrase_for_new_key(args.passphrase_env, args.out)
    root = AgencyRoot.generate(args.agency)
    save_root(args.out, root, passphrase)
    log.info("agency root created", extra={"agency": root.agency, "path": args.out})
    print(f"created agency root {root.agency} in {args.out}")
    print(f"fingerprint: {_grouped(root.public.fingerprint)}")
    return 0


def _root_public(args: argparse.Namespace) -> int:
    root = _load_root(args.root, args.passphrase_env)
    _write_public(args.out, canonical({"agency": root.agency, "key": b64e(root.public.raw)}))
    print(f"wrote public root of {root.agency} to {args.out}")
    print(f"fingerprint: {_grouped(root.public.fingerprint)}")
    return 0


def _relay_create(args: argparse.Namespace) -> int:
    _refuse_overwrite(args.out)
    key = SigningKey.generate()
    save_relay_key(args.out, args.id, key, _passphrase_for_new_key(args.passphrase_env, args.out))
    print(f"wrote relay identity key {args.id} to {args.out}")
    print(f"relay_key for endpoint configs: {b64e(key.public.raw)}")
    print(f"fingerprint: {_grouped(key.public.fingerprint)}")
    return 0


def _device_issue(args: argparse.Namespace) -> int:
    key_out = args.key_out or f"{args.name}.key"
    cred_out = args.cred_out or f"{args.name}.cred"
    alias = args.alias or args.name
    if len(alias) > MAX_ALIAS:
        raise ConfigError(f"alias is {len(alias)} characters; at most {MAX_ALIAS}")
    _refuse_overwrite(key_out)
    root = _load_root(args.root, args.passphrase_env)
    device = check_device_id(f"{root.agency}/{args.name}")
    passphrase = _passphrase_for_new_key(args.device_passphrase_env, key_out)
    now = int(time.time())
    keys = DeviceKeys.generate(KEMS[args.kem])
    serial = _reserve_serial(args.root, root.agency, args.serial)
    cred = issue_credential(
        root,
        args.name,
        keys,
        roles=args.roles,
        not_before=now - CLOCK_SKEW,
        not_after=now + args.days * DAY,
        serial=serial,
        kind=args.kind,
        alias=alias,
    )
    save_device(key_out, device, keys, passphrase)
    _write_public(cred_out, cred.encode())
    log.info("device credential issued", extra={"device": device, "serial": serial})
    print(
        f"issued {device} serial {serial}: {cred.kind}, roles {','.join(cred.roles)}, "
        f"kem {cred.hpke_key.kem.value}, valid until {_utc(cred.not_after)}"
    )
    print(f"private key: {key_out}  credential: {cred_out}  fingerprint: {cred.fingerprint}")
    return 0


def _agreement_create(args: argparse.Namespace) -> int:
    parties: dict[str, list[str] | tuple[str, ...]] = {}
    for agency, roles in args.party:
        if agency in parties:
            raise ConfigError(f"party {agency} given twice")
        parties[agency] = roles
    now = int(time.time())
    agreement = Agreement.create(
        args.id, args.name, parties, now - CLOCK_SKEW, now + args.days * DAY
    )
    _write_public(args.out, agreement.encode())
    print(f"wrote unsigned agreement {agreement.id} to {args.out}")
    print(f"each of {', '.join(sorted(agreement.parties))} now reviews and signs it in turn:")
    print(f"  crossband keys agreement show {args.out}")
    print(f"  crossband keys agreement sign --root AGENCY-ROOT-KEY {args.out}")
    return 0


def _agreement_sign(args: argparse.Namespace) -> int:
    root = _load_root(args.root, args.passphrase_env)
    agreement: Agreement = _decode(args.file, "agreement", Agreement.decode)
    signed = agreement.add_signature(root)
    _write_public(args.file, signed.encode())
    if time.time() > signed.not_after:
        log.warning("signed an expired agreement", extra={"agreement": signed.id})
    missing = sorted(set(signed.parties) - set(signed.signatures))
    log.info("agreement signed", extra={"agreement": signed.id, "agency": root.agency})
    print(f"{root.agency} signed agreement {signed.id} (digest {signed.digest})")
    print(f"missing signatures: {', '.join(missing)}" if missing else "signed by every party")
    return 0


def _agreement_show(args: argparse.Namespace) -> int:
    agreement: Agreement = _decode(args.file, "agreement", Agreement.decode)
    bundle = _load_bundle(args.bundle) if args.bundle else None
    print(f"agreement {agreement.id}: {agreement.name}")
    print(f"digest:   {agreement.digest}")
    print(f"validity: {_window(agreement.not_before, agreement.not_after, time.time())}")
    print("parties:")
    for agency, roles in sorted(agreement.parties.items()):
        print(f"  {agency:<12} {','.join(roles):<28} {_signature_state(agreement, agency, bundle)}")
    for agency in sorted(set(agreement.signatures) - set(agreement.parties)):
        print(f"  {agency:<12} {'(not a party)':<28} signature ignored")
    missing = sorted(set(agreement.parties) - set(agreement.signatures))
    have = len(agreement.parties) - len(missing)
    tail = f"; missing: {', '.join(missing)}" if missing else ""
    print(f"signatures: {have} of {len(agreement.parties)} present{tail}")
    return 0


def _signature_state(agreement: Agreement, agency: str, bundle: TrustBundle | None) -> str:
    signature = agreement.signatures.get(agency)
    if signature is None:
        return "MISSING"
    if bundle is None:
        return "signed (not checked: no --bundle)"
    try:
        bundle.root(agency).verify(signature, signing_input(AGREEMENT_DOMAIN, agreement.body()))
    except VerificationError as exc:
        return f"signed, REFUSED ({exc.code.value})"
    return "signed, verified"


def _revoke(args: argparse.Namespace) -> int:
    root = _load_root(args.root, args.passphrase_env)
    number, serials = 1, set(args.serial)
    if args.crl:
        previous: RevocationList = _decode(args.crl, "revocation list", RevocationList.decode)
        if previous.agency != root.agency:
            raise ConfigError(f"{args.crl} is the list of {previous.agency}, not {root.agency}")
        verify_revocation_list(previous, TrustBundle({root.agency: root.public}))
        number, serials = previous.number + 1, serials | previous.serials
        added = sorted(set(args.serial) - previous.serials)
    else:
        added = sorted(serials)
    rl = RevocationList.create(root, number, int(time.time()), serials)
    _write_public(args.out, rl.encode())
    log.info("revocation list issued", extra={"agency": root.agency, "number": number})
    listed = ", ".join(map(str, sorted(rl.serials))) or "none"
    print(f"{root.agency} revocation list {number} in {args.out}: revoked serials {listed}")
    if added:
        print(f"newly revoked: {', '.join(map(str, added))}")
    return 0


def _bundle(args: argparse.Namespace) -> int:
    roots: dict[str, VerifyKey] = {}
    for path in args.pub:
        obj = _read_statement(path, "public root export")
        try:
            agency = check_agency_id(field(obj, "agency", str))
            key = VerifyKey(b64d(field(obj, "key", str)))
        except VerificationError as exc:
            raise VerificationError(exc.code, f"{path}: public root export: {exc.detail}")
        if agency in roots and roots[agency] != key:
            raise ConfigError(f"{path}: {agency} given twice with different keys; refusing")
        roots[agency] = key
    bundle = TrustBundle(roots)
    _write_public(args.out, bundle.encode())
    print(f"wrote trust bundle of {len(roots)} pinned roots to {args.out}:")
    for agency, key in sorted(roots.items()):
        print(f"  {agency:<12} {_grouped(key.fingerprint)}")
    print("compare every fingerprint with its agency out of band before deploying this bundle")
    return 0


def _load_bundle(path: str) -> TrustBundle:
    bundle: TrustBundle = _decode(path, "trust bundle", lambda o: TrustBundle.decode(canonical(o)))
    return bundle


def _verify(args: argparse.Namespace) -> int:
    bundle = _load_bundle(args.bundle)
    revocations: dict[str, RevocationList] = {}
    for path in args.crl:
        rl: RevocationList = _decode(path, "revocation list", RevocationList.decode)
        try:
            verify_revocation_list(rl, bundle)
        except VerificationError as exc:
            raise VerificationError(exc.code, f"revocation list {path}: {exc.detail}")
        if rl.agency not in revocations or rl.number > revocations[rl.agency].number:
            revocations[rl.agency] = rl
    subject = args.file
    try:
        obj = _read_statement(args.file, "signed statement")
        body = obj.get("body")
        if isinstance(body, dict) and "device" in body:
            subject = f"credential {body.get('device')}"
            print(_verify_credential(Credential.decode(obj), bundle, revocations))
        elif isinstance(body, dict) and "parties" in body:
            subject = f"agreement {body.get('id')}"
            print(_verify_agreement(Agreement.decode(obj), bundle))
        else:
            raise VerificationError(Refusal.MALFORMED, "not a credential or agreement")
    except VerificationError as exc:
        detail = f" ({exc.detail})" if exc.detail else ""
        print(f"REFUSED {exc.code.value}: {subject}{detail}")
        return 1
    return 0


def _verify_credential(
    cred: Credential, bundle: TrustBundle, revocations: dict[str, RevocationList]
) -> str:
    verify_credential(cred, bundle, time.time(), revocations)
    rl = revocations.get(cred.agency)
    checked = f"checked list {rl.number}" if rl else "NOT checked (no --crl)"
    return (
        f"OK credential {cred.device} serial {cred.serial}: {cred.kind}, roles "
        f"{','.join(cred.roles)}, valid until {_utc(cred.not_after)}; revocation {checked}"
    )


def _verify_agreement(agreement: Agreement, bundle: TrustBundle) -> str:
    verify_agreement(agreement, bundle, time.time())
    parties = "; ".join(f"{a}={','.join(r)}" for a, r in sorted(agreement.parties.items()))
    return (
        f"OK agreement {agreement.id} signed by every party ({parties}), "
        f"valid until {_utc(agreement.not_after)}"
    )


# --------------------------------------------------------------------------- registration


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
    _passphrase_arg(p, "new root key's")
    p.set_defaults(func=_root_create)
    p = root_cmds.add_parser("public", help="export a root's public key for partners")
    p.add_argument("--root", required=True, help="agency root key file")
    p.add_argument("--out", required=True, help="public export to write (JSON)")
    _passphrase_arg(p, "root key's")
    p.set_defaults(func=_root_public)

    p = cmds.add_parser("relay", help="create a relay identity key (devices pin its public half)")
    p.add_argument("--id", required=True, help="the relay_id of the relay's config")
    p.add_argument("--out", required=True, help="relay key file to create (0600)")
    _passphrase_arg(p, "relay key's")
    p.set_defaults(func=_relay_create)

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
    p.add_argument("--kem", choices=sorted(KEMS), default="x25519", help="hybrid = ML-KEM-768")
    p.add_argument("--serial", type=_positive, help="default: next from ROOT.serials")
    p.add_argument("--key-out", help="device private key file (default: NAME.key)")
    p.add_argument("--cred-out", help="credential file (default: NAME.cred)")
    _passphrase_arg(p, "root key's")
    p.add_argument("--device-passphrase-env", metavar="VAR", help="seal the device key with $VAR")
    p.set_defaults(func=_device_issue)

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
    p.add_argument("--out", required=True, help="agreement file to write")
    p.set_defaults(func=_agreement_create)
    p = agr_cmds.add_parser("sign", help="add your agency's signature, in place")
    p.add_argument("--root", required=True, help="agency root key file")
    p.add_argument("file", metavar="AGREEMENT", help="agreement file")
    _passphrase_arg(p, "root key's")
    p.set_defaults(func=_agreement_sign)
    p = agr_cmds.add_parser("show", help="parties, roles, signatures present/missing")
    p.add_argument("--bundle", help="trust bundle: also check each signature")
    p.add_argument("file", metavar="AGREEMENT", help="agreement file")
    p.set_defaults(func=_agreement_show)

    p = cmds.add_parser("revoke", help="issue the next revocation list")
    p.add_argument("--root", required=True, help="agency root key file")
    p.add_argument("--serial", type=_positive, action="append", default=[], help="repeat")
    p.add_argument("--crl", help="the agency's current revocation list (kept and extended)")
    p.add_argument("--out", required=True, help="revocation list to write (may equal --crl)")
    _passphrase_arg(p, "root key's")
    p.set_defaults(func=_revoke)

    p = cmds.add_parser("bundle", help="build a trust bundle from public root exports")
    p.add_argument("--pub", required=True, action="append", help="public export (repeat)")
    p.add_argument("--out", required=True, help="trust bundle to write")
    p.set_defaults(func=_bundle)

    p = cmds.add_parser(
        "verify", help="verify a credential or agreement (exit 0 accepted, 1 refused)"
    )
    p.add_argument("--bundle", required=True, help="trust bundle")
    p.add_argument("--crl", action="append", default=[], help="revocation list (repeat)")
    p.add_argument("file", metavar="FILE", help="credential or agreement file")
    p.set_defaults(func=_verify)
