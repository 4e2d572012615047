"""Composite signatures (issue 10): a 500-member hybrid rekey signed Ed25519-only and signed
composite (ML-DSA-65 + Ed25519), side by side in one run; and what ML-DSA-65 would cost per
voice checkpoint.

    .venv/bin/python bench/composite_sign.py [--roster 500] [--repeat 5]

For each signature mode the same things are built: composite (or Ed25519) roots, a trust
bundle (``min_signature: composite`` for the composite run), a hybrid-minimum agreement signed
by both parties, a dispatcher (with a composite statement key in the composite run) and
``roster - 1`` hybrid ML-KEM-768 + X25519 members. Measured (best and median of ``repeat``):

- **create**: ``create_commit`` (sign the commit, seal the epoch secret to every member);
- **verify (one member)**: what a member does with the wire bytes: ``CommitBundle.decode``,
  ``verify_commit`` (the issuer's and every member's credential signature, the agreement's
  two signatures, the commit's) and opening its own sealed secret, on freshly decoded bytes;
  *cold*: none of the credentials verified before (a member joining); *warm*: the trust
  bundle has verified these credentials' signatures before (a rekey of a channel it holds:
  window and revocation are still checked, the signature not again); and *verify_commit
  only*, warm, on a bundle decoded outside the timing (the rest is decoding the bundle);
- the bundle's size on the wire.

Budgets (issue 10): create <= 150 ms and verify by one member <= 150 ms, composite.

Per checkpoint (a talker signs one every 200 ms, DESIGN §4a): Ed25519 and ML-DSA-65
sign/verify time and signature bytes per second of speech, against 50 voice frames of 98 bytes.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa  # noqa: E402

from crypto.agreement import Agreement  # noqa: E402
from crypto.channel import CommitBundle, create_commit, seal_info, verify_commit  # noqa: E402
from crypto.identity import AgencyRoot, DeviceKeys, TrustBundle, issue_credential  # noqa: E402
from crypto.keys import Kem  # noqa: E402

NOW = 1_800_000_000
DAY = 86400
BUDGET_MS = 150.0
PARTIES = {"us-cbp": ["dispatcher", "member"], "ca-rcmp": ["dispatcher", "member"]}


def _timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    runs = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return min(runs) * 1e3, statistics.median(runs) * 1e3


def bench_rekey(composite: bool, size: int, repeat: int) -> dict[str, float]:
    roots = {a: AgencyRoot.generate(a, composite=composite) for a in PARTIES}
    policy = "composite" if composite else "ed25519"
    trust = TrustBundle({a: r.public for a, r in roots.items()}, min_signature=policy)
    agreement = Agreement.create(
        "bench", "Bench", dict(PARTIES), NOW - 60, NOW + 90 * DAY, min_kem=Kem.MLKEM768_X25519
    )
    for r in roots.values():
        agreement = agreement.add_signature(r)
    devices = []
    for i in range(size):
        agency = ("us-cbp", "ca-rcmp")[i % 2]
        roles = ("dispatcher", "member") if i == 0 else ("member",)
        keys = DeviceKeys.generate(Kem.MLKEM768_X25519, composite=composite and i == 0)
        cred = issue_credential(
            roots[agency], f"m{i}", keys, roles=roles, not_before=NOW - 60,
            not_after=NOW + 30 * DAY, serial=i + 1,
        )  # fmt: skip
        devices.append((cred, keys))
    issuer = devices[0]
    members = [(c, "dispatcher" if i == 0 else "member") for i, (c, _) in enumerate(devices)]

    def create() -> CommitBundle:
        bundle, _ = create_commit(
            issuer=issuer[0], issuer_keys=issuer[1], channel="inc", name="Incident",
            agreement=agreement, members=members, previous=None, expires=NOW + DAY, now=NOW,
        )  # fmt: skip
        return bundle

    wire = create().encode()
    me_cred, me_keys = devices[-1]

    def member(bundle_trust: TrustBundle) -> None:
        bundle = CommitBundle.decode(wire)
        c = verify_commit(bundle, bundle_trust, NOW, previous=None)
        me_keys.hpke.open(bundle.sealed[me_cred.device], seal_info(c.channel, c.epoch, c.hash))

    def cold() -> None:  # a member that has verified none of these credentials before
        member(TrustBundle(dict(trust.roots), min_signature=policy))

    cb, cm = _timed(create, repeat)
    vb, vm = _timed(cold, repeat)
    member(trust)  # the credentials of the previous epoch are verified once
    wb, wm = _timed(lambda: member(trust), repeat)
    decoded = [CommitBundle.decode(wire) for _ in range(repeat)]
    ob, _ = _timed(lambda: verify_commit(decoded.pop(), trust, NOW, previous=None), repeat)
    return {
        "verify_only": ob,
        "create": cb, "create_med": cm, "verify": vb, "verify_med": vm, "warm": wb,
        "warm_med": wm, "bytes": len(wire),
    }  # fmt: skip


def bench_checkpoint(n: int = 2000) -> dict[str, tuple[float, float, int]]:
    """µs per sign, µs per verify, signature bytes, for a 200-byte checkpoint body."""
    body = os.urandom(200)
    out = {}
    ed = ed25519.Ed25519PrivateKey.generate()
    ml = mldsa.MLDSA65PrivateKey.generate()
    for name, sign, verify in (
        ("Ed25519", ed.sign, ed.public_key().verify),
        ("ML-DSA-65", ml.sign, ml.public_key().verify),
    ):
        sig = sign(body)
        t0 = time.perf_counter()
        for _ in range(n):
            sign(body)
        t1 = time.perf_counter()
        for _ in range(n):
            verify(sig, body)
        t2 = time.perf_counter()
        out[name] = ((t1 - t0) / n * 1e6, (t2 - t1) / n * 1e6, len(sig))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--roster", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(f"{args.roster}-member hybrid rekey, best (median) of {args.repeat}, ms")
    print(
        f"  {'signatures':<22}{'create':>16}{'verify cold':>18}{'verify warm':>18}"
        f"{'verify_commit only':>20}{'bundle bytes':>14}"
    )
    for composite in (False, True):
        r = bench_rekey(composite, args.roster, args.repeat)
        label = "composite ML-DSA-65+Ed" if composite else "Ed25519 only"
        budget = f"  (budget {BUDGET_MS:g} ms each)" if composite else ""
        print(
            f"  {label:<22}{r['create']:>8.1f} ({r['create_med']:.1f}){r['verify']:>10.1f} "
            f"({r['verify_med']:.1f}){r['warm']:>10.1f} ({r['warm_med']:.1f})"
            f"{r['verify_only']:>20.1f}{int(r['bytes']):>14}{budget}"
        )
    print("per voice checkpoint (one every 200 ms: 5 per second of speech)")
    voice = 98 * 50
    for name, (s, v, size) in bench_checkpoint().items():
        print(
            f"  {name:<10} sign {s:7.1f} µs  verify {v:7.1f} µs  signature {size:5d} B "
            f"= {size * 5:6d} B/s of speech (voice frames: {voice} B/s)"
        )


if __name__ == "__main__":
    main()
