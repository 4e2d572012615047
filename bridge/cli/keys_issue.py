"""``crossband keys`` commands that create keys and issue statements: agency roots and their
public exports, relay identity keys, device credentials, revocation lists, trust bundles.

An I/O layer: it reads the clock (``time.time()``) and passes ``now`` to :mod:`crypto`.
"""

from __future__ import annotations

import argparse
import logging
import time

from bridge.cli.keys_files import (
    decode,
    grouped,
    load_root_file,
    passphrase_for_new_key,
    read_statement,
    refuse_overwrite,
    reserve_serial,
    utc,
    write_public,
)
from bridge.errors import ConfigError
from crypto.agreement import RevocationList, verify_revocation_list
from crypto.composite import AnyVerifyKey, kind_of, verify_key_from_bytes
from crypto.encoding import b64d, b64e, canonical, field
from crypto.errors import VerificationError
from crypto.identity import (
    AgencyRoot,
    DeviceKeys,
    TrustBundle,
    check_agency_id,
    check_device_id,
    issue_credential,
)
from crypto.keyfile import save_device, save_relay_key, save_root
from crypto.keys import Kem, SigningKey

log = logging.getLogger("bridge.cli.keys")

CLOCK_SKEW = 60  # statements start this many seconds in the past, for partners' slow clocks
MAX_ALIAS = 64  # crypto.identity keeps at most this many characters of an alias
DAY = 86400
KEMS = {"x25519": Kem.X25519, "hybrid": Kem.MLKEM768_X25519}


def root_create(args: argparse.Namespace) -> int:
    refuse_overwrite(args.out)
    passphrase = passphrase_for_new_key(args.passphrase_env, args.out)
    root = AgencyRoot.generate(args.agency, composite=args.composite)
    save_root(args.out, root, passphrase)
    log.info("agency root created", extra={"agency": root.agency, "path": args.out})
    print(f"created {kind_of(root.key)} agency root {root.agency} in {args.out}")
    print(f"fingerprint: {grouped(root.public.fingerprint)}")
    return 0


def root_public(args: argparse.Namespace) -> int:
    root = load_root_file(args.root, args.passphrase_env)
    write_public(args.out, canonical({"agency": root.agency, "key": b64e(root.public.raw)}))
    print(f"wrote public {kind_of(root.key)} root of {root.agency} to {args.out}")
    print(f"fingerprint: {grouped(root.public.fingerprint)}")
    return 0


def relay_create(args: argparse.Namespace) -> int:
    refuse_overwrite(args.out)
    key = SigningKey.generate()
    save_relay_key(args.out, args.id, key, passphrase_for_new_key(args.passphrase_env, args.out))
    print(f"wrote relay identity key {args.id} to {args.out}")
    print(f"relay_key for endpoint configs: {b64e(key.public.raw)}")
    print(f"fingerprint: {grouped(key.public.fingerprint)}")
    return 0


def device_issue(args: argparse.Namespace) -> int:
    key_out = args.key_out or f"{args.name}.key"
    cred_out = args.cred_out or f"{args.name}.cred"
    alias = args.alias or args.name
    if len(alias) > MAX_ALIAS:
        raise ConfigError(f"alias is {len(alias)} characters; at most {MAX_ALIAS}")
    refuse_overwrite(key_out)
    root = load_root_file(args.root, args.passphrase_env)
    device = check_device_id(f"{root.agency}/{args.name}")
    passphrase = passphrase_for_new_key(args.device_passphrase_env, key_out)
    now = int(time.time())
    keys = DeviceKeys.generate(KEMS[args.kem], composite=args.composite)
    serial = reserve_serial(args.root, root.agency, args.serial)
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
    write_public(cred_out, cred.encode())
    log.info("device credential issued", extra={"device": device, "serial": serial})
    print(
        f"issued {device} serial {serial}: {cred.kind}, roles {','.join(cred.roles)}, "
        f"kem {cred.hpke_key.kem.value}, valid until {utc(cred.not_after)}"
    )
    if cred.statement_key is not None:
        print("commits it issues are signed composite (ML-DSA-65 + Ed25519)")
    print(f"private key: {key_out}  credential: {cred_out}  fingerprint: {cred.fingerprint}")
    return 0


def revoke(args: argparse.Namespace) -> int:
    root = load_root_file(args.root, args.passphrase_env)
    number, serials = 1, set(args.serial)
    if args.crl:
        previous: RevocationList = decode(args.crl, "revocation list", RevocationList.decode)
        if previous.agency != root.agency:
            raise ConfigError(f"{args.crl} is the list of {previous.agency}, not {root.agency}")
        verify_revocation_list(previous, TrustBundle({root.agency: root.public}))
        number, serials = previous.number + 1, serials | previous.serials
        added = sorted(set(args.serial) - previous.serials)
    else:
        added = sorted(serials)
    rl = RevocationList.create(root, number, int(time.time()), serials)
    write_public(args.out, rl.encode())
    log.info("revocation list issued", extra={"agency": root.agency, "number": number})
    listed = ", ".join(map(str, sorted(rl.serials))) or "none"
    print(f"{root.agency} revocation list {number} in {args.out}: revoked serials {listed}")
    if added:
        print(f"newly revoked: {', '.join(map(str, added))}")
    return 0


def build_bundle(args: argparse.Namespace) -> int:
    roots: dict[str, AnyVerifyKey] = {}
    for path in args.pub:
        obj = read_statement(path, "public root export")
        try:
            agency = check_agency_id(field(obj, "agency", str))
            key = verify_key_from_bytes(b64d(field(obj, "key", str)))
        except VerificationError as exc:
            raise VerificationError(exc.code, f"{path}: public root export: {exc.detail}")
        if agency in roots and roots[agency] != key:
            raise ConfigError(f"{path}: {agency} given twice with different keys; refusing")
        roots[agency] = key
    try:
        bundle = TrustBundle(roots, min_signature=args.min_signature)
    except VerificationError as exc:
        raise ConfigError(f"--min-signature {args.min_signature}: {exc.detail}") from None
    write_public(args.out, bundle.encode())
    print(
        f"wrote trust bundle of {len(roots)} pinned roots to {args.out} "
        f"(min signature {args.min_signature}):"
    )
    for agency, key in sorted(roots.items()):
        print(f"  {agency:<12} {grouped(key.fingerprint)}  ({kind_of(key)})")
    print("compare every fingerprint with its agency out of band before deploying this bundle")
    return 0
