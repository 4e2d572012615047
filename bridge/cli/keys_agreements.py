"""``crossband keys`` commands about agreements and verification: create an agreement, sign
it in turn, show its signatures, and verify a credential or an agreement against a bundle.

``verify`` exits 0 if the statement is accepted and 1 if it is refused, printing one line with
the refusal code. An I/O layer: it reads the clock and passes ``now`` to :mod:`crypto`.
"""

from __future__ import annotations

import argparse
import logging
import time

from bridge.cli.keys_files import (
    decode,
    load_bundle,
    load_root_file,
    read_statement,
    utc,
    window,
    write_public,
)
from bridge.cli.keys_issue import CLOCK_SKEW, DAY, KEMS
from bridge.errors import ConfigError
from crypto.agreement import (
    AGREEMENT_DOMAIN,
    Agreement,
    RevocationList,
    verify_agreement,
    verify_revocation_list,
)
from crypto.encoding import signing_input
from crypto.errors import Refusal, VerificationError
from crypto.identity import Credential, TrustBundle, verify_credential

log = logging.getLogger("bridge.cli.keys")


def agreement_create(args: argparse.Namespace) -> int:
    parties: dict[str, list[str] | tuple[str, ...]] = {}
    for agency, roles in args.party:
        if agency in parties:
            raise ConfigError(f"party {agency} given twice")
        parties[agency] = roles
    now = int(time.time())
    agreement = Agreement.create(
        args.id, args.name, parties, now - CLOCK_SKEW, now + args.days * DAY,
        min_kem=KEMS[args.min_kem],
    )  # fmt: skip
    write_public(args.out, agreement.encode())
    print(
        f"wrote unsigned agreement {agreement.id} to {args.out} "
        f"(members' minimum KEM: {agreement.minimum_kem.value})"
    )
    print(f"each of {', '.join(sorted(agreement.parties))} now reviews and signs it in turn:")
    print(f"  crossband keys agreement show {args.out}")
    print(f"  crossband keys agreement sign --root AGENCY-ROOT-KEY {args.out}")
    return 0


def agreement_sign(args: argparse.Namespace) -> int:
    root = load_root_file(args.root, args.passphrase_env)
    agreement: Agreement = decode(args.file, "agreement", Agreement.decode)
    signed = agreement.add_signature(root)
    write_public(args.file, signed.encode())
    if time.time() > signed.not_after:
        log.warning("signed an expired agreement", extra={"agreement": signed.id})
    missing = sorted(set(signed.parties) - set(signed.signatures))
    log.info("agreement signed", extra={"agreement": signed.id, "agency": root.agency})
    print(f"{root.agency} signed agreement {signed.id} (digest {signed.digest})")
    print(f"missing signatures: {', '.join(missing)}" if missing else "signed by every party")
    return 0


def agreement_show(args: argparse.Namespace) -> int:
    agreement: Agreement = decode(args.file, "agreement", Agreement.decode)
    bundle = load_bundle(args.bundle) if args.bundle else None
    print(f"agreement {agreement.id}: {agreement.name}")
    print(f"digest:   {agreement.digest}")
    print(f"validity: {window(agreement.not_before, agreement.not_after, time.time())}")
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


def verify_statement(args: argparse.Namespace) -> int:
    bundle = load_bundle(args.bundle)
    revocations: dict[str, RevocationList] = {}
    for path in args.crl:
        rl: RevocationList = decode(path, "revocation list", RevocationList.decode)
        try:
            verify_revocation_list(rl, bundle)
        except VerificationError as exc:
            raise VerificationError(exc.code, f"revocation list {path}: {exc.detail}")
        if rl.agency not in revocations or rl.number > revocations[rl.agency].number:
            revocations[rl.agency] = rl
    subject = args.file
    try:
        obj = read_statement(args.file, "signed statement")
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
        f"{','.join(cred.roles)}, valid until {utc(cred.not_after)}; revocation {checked}"
    )


def _verify_agreement(agreement: Agreement, bundle: TrustBundle) -> str:
    verify_agreement(agreement, bundle, time.time())
    parties = "; ".join(f"{a}={','.join(r)}" for a, r in sorted(agreement.parties.items()))
    return (
        f"OK agreement {agreement.id} signed by every party ({parties}), "
        f"valid until {utc(agreement.not_after)}"
    )
