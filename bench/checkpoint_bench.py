"""Cost of voice checkpoints (issue 9): per talker and per listener, in µs per second of
speech, and bytes per second on the wire, beside the SFrame frame cost measured in the same run.

    .venv/bin/python bench/checkpoint_bench.py [--seconds 30] [--repeat 5]

One talker, 20 ms frames of 98 bytes (the relay bench's SFrame frame size), a checkpoint every
200 ms: the talker hashes each frame and signs each checkpoint (Ed25519); the listener hashes
each frame, decodes and verifies each checkpoint, and matches the frames it covers. Best of
``--repeat`` runs (the garbage collector off while timing).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crypto.attribution import Attribution  # noqa: E402
from crypto.checkpoint import Checkpointer, decode_checkpoint  # noqa: E402
from crypto.sframe import CipherSuite, SFrameKey  # noqa: E402
from tests.world import make_world  # noqa: E402

FRAME_S = 0.02


def run(seconds: float, talker, frames: list[bytes]) -> tuple[float, float, int]:
    """(talker s, listener s, checkpoint bytes) for ``seconds`` of speech."""
    n = int(seconds / FRAME_S)
    cpr, att = Checkpointer("inc-1", b"\x01" * 32, 0x42), Attribution()
    wire: list[tuple[int, bytes, float, bytes | None]] = []
    t0 = time.perf_counter()
    for i in range(n):
        cp = cpr.add(i, frames[i % len(frames)], i * FRAME_S)
        wire.append(
            (
                i,
                frames[i % len(frames)],
                i * FRAME_S,
                cp.signed(talker.keys.sign).encode() if cp else None,
            )
        )
    last = cpr.close()
    tail = last.signed(talker.keys.sign).encode() if last else None
    t1 = time.perf_counter()
    size = sum(len(c) for *_x, c in wire if c) + (len(tail) if tail else 0)
    for ctr, frame, t, cp_bytes in wire:
        att.frame(0x42, ctr, frame, t)
        if cp_bytes is not None:
            att.checkpoint(decode_checkpoint(cp_bytes).verify(talker.cred), t)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    talker = make_world().device("us-cbp", "officer-1", ("member",))
    frames = [os.urandom(98) for _ in range(32)]
    key = SFrameKey(CipherSuite.AES_128_GCM_SHA256_128, os.urandom(16), 7)
    gc.disable()
    best_t = best_l = float("inf")
    size = 0
    for _ in range(args.repeat):
        t, lis, size = run(args.seconds, talker, frames)
        best_t, best_l = min(best_t, t), min(best_l, lis)
    sf = float("inf")
    for _ in range(args.repeat):
        a = time.perf_counter()
        for ctr in range(5000):
            key.unprotect(key.protect(ctr, b"\x00" * 80))
        sf = min(sf, (time.perf_counter() - a) / 5000)
    gc.enable()
    per_s = 1 / args.seconds
    print(
        f"checkpoints, {args.seconds:g} s of speech, best of {args.repeat} "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.2f})"
    )
    print(
        f"  talker:   {best_t * per_s * 1e6:8.0f} µs per second of speech (hash 50 frames, sign 5)"
    )
    print(f"  listener: {best_l * per_s * 1e6:8.0f} µs per second of speech (hash 50, verify 5)")
    print(
        f"  wire:     {size * per_s:8.0f} bytes/s of checkpoints (voice frames: {98 * 50} bytes/s)"
    )
    print(
        f"  reference, same run: SFrame protect + unprotect {sf * 1e6:.2f} µs per frame "
        f"= {sf * 50 * 1e6:.0f} µs per second of speech"
    )


if __name__ == "__main__":
    main()
