"""Crypto core benchmark (issue 2): per-frame SFrame cost and 500-member rekey cost.

    .venv/bin/python bench/crypto_bench.py [--frames N] [--repeat R] [--roster M]

Prints one table with best-of-R and median timings and their ratio to the budget:

- **Voice frame** (20 ms Opus, 80-byte payload, suite 0x0004 AES_128_GCM_SHA256_128):
  ``ChannelMember.protect`` / ``.unprotect`` through the real channel API (KID derivation,
  counter reservation, replay window, roster attribution), once in a 3-member channel and once
  in an M-member channel, plus the raw :class:`~crypto.sframe.SFrameKey` figures from
  :func:`bench.crypto_bench_sframe.bench_sframe`. Budget: protect + unprotect <= 10 µs.
- **Rekey** to M (default 500) members, for X25519 and for the hybrid ML-KEM-768 + X25519 KEM:
  ``create_commit`` (build, sign, seal the epoch secret to every member), ``CommitBundle.decode``
  of the wire bytes, ``verify_commit`` of a freshly decoded bundle (500 credential signatures),
  and one member's ``process_commit`` (verify + open + key confirmation).
  Budget: ``create_commit`` <= 100 ms with X25519.

Every timing uses ``time.perf_counter``; verify and process run on a bundle freshly decoded
from its wire bytes so no per-object cache from an earlier repetition flatters them.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.crypto_bench_sframe import METADATA, PAYLOAD, bench_sframe  # noqa: E402
from crypto.channel import CommitBundle, create_commit, verify_commit  # noqa: E402
from crypto.group import ChannelMember  # noqa: E402
from crypto.keys import Kem  # noqa: E402
from crypto.sframe import CipherSuite  # noqa: E402
from tests.world import NOW, Device, World, make_world  # noqa: E402

FRAME_BUDGET_US = 10.0
REKEY_BUDGET_MS = 100.0


@dataclass
class Row:
    what: str
    best: float
    median: float | None  # None: the source reports best-of only
    unit: str
    budget: float | None = None

    def line(self) -> str:
        ratio = f"{self.best / self.budget:5.2f}x" if self.budget else "     "
        budget = f"<= {self.budget:g}" if self.budget else ""
        median = "-" if self.median is None else f"{self.median:.2f}"
        return (
            f"  {self.what:52s} {self.best:9.2f} {median:>9s} {self.unit:3s}  {budget:9s} {ratio}"
        )


@contextmanager
def _no_gc() -> Iterator[None]:
    """Keep collector pauses out of the figures, as ``timeit`` does."""
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _timed(
    fn: Callable[[], object], repeat: int, setup: Callable[[], object] | None = None
) -> list[float]:
    """Run ``fn`` ``repeat`` times (``setup`` untimed before each); return seconds per run."""
    samples: list[float] = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        with _no_gc():
            t0 = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t0)
    return samples


# -- world --------------------------------------------------------------------------------


def build_roster(w: World, size: int, kem: Kem, tag: str) -> list[tuple[Device, str]]:
    """A dispatcher plus ``size - 1`` members split between the two dispatching agencies."""
    issuer = w.device("us-cbp", f"{tag}-dispatch", ("dispatcher", "member"), kem=kem)
    members = [(issuer, "dispatcher")]
    for i in range(size - 1):
        agency = ("us-cbp", "ca-rcmp")[i % 2]
        members.append((w.device(agency, f"{tag}-m{i}", ("member",), kem=kem), "member"))
    return members


def _commit(
    w: World, members: list[tuple[Device, str]], previous: CommitBundle | None
) -> tuple[CommitBundle, bytes]:
    issuer = members[0][0]
    return create_commit(
        issuer=issuer.cred,
        issuer_keys=issuer.keys,
        channel="inc-1",
        name="Incident 1",
        agreement=w.agreement,
        members=[(d.cred, r) for d, r in members],
        previous=previous.commit if previous else None,
        expires=NOW + 86400,
        now=NOW,
    )


# -- voice frames through the channel API -------------------------------------------------


def bench_channel_frames(
    w: World, members: list[tuple[Device, str]], bundle: CommitBundle, n: int, repeat: int
) -> tuple[float, float, float, float]:
    """(best, median) µs per frame of ChannelMember.protect, then of .unprotect."""
    wire = bundle.encode()
    sender_dev, receiver_dev = members[1][0], members[2][0]
    sender, receiver = w.member(sender_dev), w.member(receiver_dev)
    for m in (sender, receiver):
        m.process_commit(CommitBundle.decode(wire), NOW)
    assert bundle.commit.suite == CipherSuite.AES_128_GCM_SHA256_128
    for _ in range(min(n, 1_000)):  # warm up: derive keys, replay window, caches
        receiver.unprotect(sender.protect(PAYLOAD, metadata=METADATA), NOW, METADATA)
    prot: list[float] = []
    unprot: list[float] = []
    for _ in range(repeat):
        with _no_gc():
            t0 = time.perf_counter()
            frames = [sender.protect(PAYLOAD, metadata=METADATA) for _ in range(n)]
            t1 = time.perf_counter()
            for f in frames:
                receiver.unprotect(f, NOW, METADATA)
            t2 = time.perf_counter()
        prot.append((t1 - t0) / n * 1e6)
        unprot.append((t2 - t1) / n * 1e6)
    return min(prot), statistics.median(prot), min(unprot), statistics.median(unprot)


# -- rekey --------------------------------------------------------------------------------


def bench_rekey(
    w: World, members: list[tuple[Device, str]], base: CommitBundle, repeat: int
) -> tuple[dict[str, list[float]], int]:
    """Seconds per run of create / decode / verify / process of epoch 2 after ``base``.

    Also returns the size of the encoded bundle in bytes.
    """
    base_wire = base.encode()
    out: dict[str, list[float]] = {}
    bundles: list[CommitBundle] = []
    out["create"] = _timed(lambda: bundles.append(_commit(w, members, base)[0]), repeat)
    wire = bundles[-1].encode()
    out["decode"] = _timed(lambda: CommitBundle.decode(wire), repeat)

    fresh: list[CommitBundle] = []
    out["verify"] = _timed(
        lambda: verify_commit(fresh[-1], w.trust, NOW, previous=base.commit),
        repeat,
        setup=lambda: fresh.append(CommitBundle.decode(wire)),
    )

    state: list[ChannelMember] = []
    dev = members[len(members) // 2][0]

    def fresh_member() -> None:
        m = w.member(dev)
        m.process_commit(CommitBundle.decode(base_wire), NOW)
        state.append(m)
        fresh.append(CommitBundle.decode(wire))

    out["process"] = _timed(
        lambda: state[-1].process_commit(fresh[-1], NOW), repeat, setup=fresh_member
    )
    return out, len(wire)


def _ms(samples: list[float]) -> tuple[float, float]:
    return min(samples) * 1e3, statistics.median(samples) * 1e3


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--frames", type=int, default=10_000, help="voice frames per repetition")
    ap.add_argument("--repeat", type=int, default=9, help="repetitions (best-of and median)")
    ap.add_argument("--roster", type=int, default=500, help="members in the rekey benchmark")
    args = ap.parse_args(argv)
    n, repeat, size = args.frames, args.repeat, args.roster

    print(
        f"Crossband crypto bench — Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')}"
    )
    print(f"frames: n={n}, {len(PAYLOAD)}-byte payload + {len(METADATA)}-byte metadata, ", end="")
    print(f"suite 0x0004; rekey: {size} members; best-of-{repeat} and median")

    w = make_world()
    t0 = time.perf_counter()
    rosters = {kem: build_roster(w, size, kem, kem.value) for kem in Kem}
    small = build_roster(w, 3, Kem.X25519, "small")
    bases = {kem: _commit(w, r, None)[0] for kem, r in rosters.items()}
    small_base = _commit(w, small, None)[0]
    print(f"(setup: {2 * size + 3} credentials and 3 commits in {time.perf_counter() - t0:.1f} s)")

    rows: list[Row] = []
    raw = bench_sframe(n, CipherSuite.AES_128_GCM_SHA256_128, repeat)
    rows += [
        Row("SFrameKey.protect (raw)", raw["protect_us"], None, "µs"),
        Row("SFrameKey.unprotect (raw)", raw["unprotect_us"], None, "µs"),
        Row(
            "SFrameKey protect + unprotect",
            raw["round_trip_us"],
            None,
            "µs",
            FRAME_BUDGET_US,
        ),
    ]
    for label, roster, base in (
        ("3-member channel", small, small_base),
        (f"{size}-member channel", rosters[Kem.X25519], bases[Kem.X25519]),
    ):
        pb, pm, ub, um = bench_channel_frames(w, roster, base, n, repeat)
        rows += [
            Row(f"ChannelMember.protect, {label}", pb, pm, "µs"),
            Row(f"ChannelMember.unprotect, {label}", ub, um, "µs"),
            Row(
                f"ChannelMember protect + unprotect, {label}",
                pb + ub,
                pm + um,
                "µs",
                FRAME_BUDGET_US,
            ),
        ]

    sizes: dict[Kem, int] = {}
    for kem in Kem:
        r, sizes[kem] = bench_rekey(w, rosters[kem], bases[kem], repeat)
        budget = REKEY_BUDGET_MS if kem is Kem.X25519 else None
        rows += [
            Row(f"create_commit, {size} members, {kem.value}", *_ms(r["create"]), "ms", budget),
            Row(f"CommitBundle.decode, {size} members, {kem.value}", *_ms(r["decode"]), "ms"),
            Row(f"verify_commit, {size} roster, {kem.value}", *_ms(r["verify"]), "ms"),
            Row(f"process_commit (1 member), {kem.value}", *_ms(r["process"]), "ms"),
        ]

    print()
    print(f"  {'':52s} {'best':>9s} {'median':>9s}      {'budget':9s} best/budget")
    for row in rows:
        print(row.line())
    print()
    for kem, b in sizes.items():
        print(f"  commit bundle on the wire, {size} members, {kem.value}: {b / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
