"""Microbenchmark of the audio path: µs per 20 ms frame.

Run: .venv/bin/python bench/audio_bench.py [--seconds N]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bridge import codec  # noqa: E402
from bridge.audio.jitter import JitterBuffer  # noqa: E402


def speechlike(rate: int, frames: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    n = rate // 50
    t = np.arange(frames * n) / rate
    phase = 2 * np.pi * np.cumsum(120 + 30 * np.sin(2 * np.pi * 1.5 * t)) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 20)) + 0.05 * rng.standard_normal(len(t))
    pcm = (x / np.abs(x).max() * 12000).astype("<i2")
    return [pcm[i * n : (i + 1) * n].tobytes() for i in range(frames)]


def per_frame_us(fn: Callable[[int], object], count: int, seconds: float) -> float:
    """Mean µs per call of ``fn(i)``, repeated over ``count`` items for about ``seconds``."""
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while True:
        start = time.perf_counter()
        for i in range(count):
            fn(i)
        best = min(best, (time.perf_counter() - start) / count * 1e6)
        if time.perf_counter() > deadline:
            return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=0.5, help="time per measurement")
    args = parser.parse_args()
    s = args.seconds
    rows: list[tuple[str, float]] = []

    for rate in (16000, 8000):
        frames = speechlike(rate, 250)
        enc = codec.OpusEncoder(rate)
        packets = [enc.encode(f) for f in frames]
        rows.append(
            (f"opus encode {rate // 1000}k", per_frame_us(lambda i: enc.encode(frames[i]), 250, s))
        )
        dec = codec.OpusDecoder(rate)
        rows.append(
            (f"opus decode {rate // 1000}k", per_frame_us(lambda i: dec.decode(packets[i]), 250, s))
        )
        rows.append(
            (
                f"opus decode_fec {rate // 1000}k",
                per_frame_us(lambda i: dec.decode_fec(packets[i]), 250, s),
            )
        )
        rows.append(
            (f"opus conceal {rate // 1000}k", per_frame_us(lambda i: dec.conceal(), 250, s))
        )

    nb = speechlike(8000, 250)
    ulaw = [codec.ulaw_encode(f) for f in nb]
    alaw = [codec.alaw_encode(f) for f in nb]
    rows.append(("g711 ulaw encode 8k", per_frame_us(lambda i: codec.ulaw_encode(nb[i]), 250, s)))
    rows.append(("g711 ulaw decode 8k", per_frame_us(lambda i: codec.ulaw_decode(ulaw[i]), 250, s)))
    rows.append(("g711 alaw encode 8k", per_frame_us(lambda i: codec.alaw_encode(nb[i]), 250, s)))
    rows.append(("g711 alaw decode 8k", per_frame_us(lambda i: codec.alaw_decode(alaw[i]), 250, s)))
    up = codec.Resampler(8000, 16000)
    rows.append(("resample 8k->16k", per_frame_us(lambda i: up.process(nb[i]), 250, s)))

    jb = JitterBuffer()
    payload = bytes(60)
    state = {"seq": 0, "now": 0.0}

    def push_pop(_i: int) -> None:
        seq, now = state["seq"], state["now"]
        jb.push(int(seq) & 0xFFFF, payload, now + 0.03)
        jb.pop(now)
        state["seq"], state["now"] = seq + 1, now + 0.02

    rows.append(("jitter push+pop", per_frame_us(push_pop, 1000, s)))

    width = max(len(name) for name, _ in rows)
    print(f"{'operation':<{width}}  µs per 20 ms frame")
    for name, us in rows:
        print(f"{name:<{width}}  {us:8.1f}")


if __name__ == "__main__":
    main()
