"""Micro-benchmark: SFrame protect/unprotect cost per 20 ms voice frame.

One 20 ms Opus voice frame is ~80 bytes; with a few bytes of metadata (RFC 9605 §4.4.3,
authenticated but not encrypted) it is sealed with the default suite AES_128_GCM_SHA256_128
(0x0004). Budget: protect + unprotect <= 10 µs per frame.

Run: ``python -m bench.crypto_bench_sframe [n]`` or ``python bench/crypto_bench_sframe.py``.
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crypto.replay import ReplayWindow
from crypto.sframe import CipherSuite, SFrameKey, decode_header

PAYLOAD = bytes(range(80))  # one 20 ms voice frame
METADATA = b"\x01\x02\x03\x04"  # e.g. channel and stream id


def _per_call_us(start: int, end: int, n: int) -> float:
    return (end - start) / n / 1_000


def bench_sframe(
    n: int = 100_000,
    suite: CipherSuite = CipherSuite.AES_128_GCM_SHA256_128,
    repeat: int = 5,
) -> dict[str, float]:
    """µs per frame over ``n`` frames, best of ``repeat`` runs (as ``timeit`` reports).

    Keys: ``protect_us``, ``unprotect_us``, their sum ``round_trip_us``,
    ``receive_with_replay_us`` (parse + replay check + open + record, what a receiver does)
    and ``frame_bytes``.
    """
    sender = SFrameKey(suite, bytes(16), kid=0x2A)
    receiver = SFrameKey(suite, bytes(16), kid=0x2A)
    for i in range(min(n, 1_000)):  # warm up
        receiver.unprotect(sender.protect(i, PAYLOAD, METADATA), METADATA)

    gc_was_enabled = gc.isenabled()
    gc.disable()  # as timeit does: keep collector pauses out of the per-frame figures
    try:
        best, frames = _timed_runs(sender, receiver, n, repeat)
    finally:
        if gc_was_enabled:
            gc.enable()

    best["round_trip_us"] = best["protect_us"] + best["unprotect_us"]
    best["frame_bytes"] = float(len(frames[0])) if frames else 0.0
    return best


def _timed_runs(
    sender: SFrameKey, receiver: SFrameKey, n: int, repeat: int
) -> tuple[dict[str, float], list[bytes]]:
    best = dict.fromkeys(("protect_us", "unprotect_us", "receive_with_replay_us"), float("inf"))
    base = 1 << 20  # realistic multi-byte CTR in the header
    frames: list[bytes] = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter_ns()
        frames = [sender.protect(base + i, PAYLOAD, METADATA) for i in range(n)]
        t1 = time.perf_counter_ns()
        for frame in frames:
            receiver.unprotect(frame, METADATA)
        t2 = time.perf_counter_ns()
        window = ReplayWindow()
        for frame in frames:
            _kid, ctr, hlen = decode_header(frame)
            if window.check(ctr):
                receiver.unprotect_body(frame[:hlen], ctr, frame[hlen:], METADATA)
                window.update(ctr)
        t3 = time.perf_counter_ns()
        for key, (a, b) in {
            "protect_us": (t0, t1),
            "unprotect_us": (t1, t2),
            "receive_with_replay_us": (t2, t3),
        }.items():
            best[key] = min(best[key], _per_call_us(a, b, n))
    return best, frames


def main(argv: list[str]) -> None:
    n = int(argv[1]) if len(argv) > 1 else 20_000
    print(f"SFrame, {len(PAYLOAD)}-byte payload + {len(METADATA)}-byte metadata, n={n}")
    for suite in CipherSuite:
        r = bench_sframe(n if suite == CipherSuite.AES_128_GCM_SHA256_128 else n // 4, suite)
        print(
            f"  {suite.name:28s} protect {r['protect_us']:5.2f} µs  "
            f"unprotect {r['unprotect_us']:5.2f} µs  "
            f"sum {r['round_trip_us']:5.2f} µs  "
            f"recv+replay {r['receive_with_replay_us']:5.2f} µs  "
            f"({r['frame_bytes']:.0f} B/frame)"
        )


if __name__ == "__main__":
    main(sys.argv)
