"""Micro-benchmarks for the relay's floor core and store-and-forward.

    python bench/floor_store_bench.py [--dir DIR] [--messages N]

Prints: floor request→grant latency in the sans-IO core (µs), SQLite enqueue with fsync
per message (ms), and pending/ack drain throughput (items/s). Put ``--dir`` on the disk the
relay will use: fsync cost is a property of the device, and tmpfs makes it meaningless.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bridge.floor.control import FloorControl, Priority  # noqa: E402
from bridge.relay.store import SqliteStore  # noqa: E402


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def bench_floor(rounds: int = 100_000) -> None:
    fc = FloorControl()
    now = 0.0
    samples: list[float] = []
    for _ in range(rounds):
        now += 0.1
        t0 = time.perf_counter_ns()
        fc.request("us-cbp/r1", Priority.NORMAL, now)
        samples.append((time.perf_counter_ns() - t0) / 1000)
        fc.release("us-cbp/r1", now)
    print(
        f"floor  idle request→grant:      median {statistics.median(samples):6.2f} µs"
        f"  p99 {percentile(samples, 99):6.2f} µs  ({rounds} rounds)"
    )
    # contended: a full queue of 16 waiters, then an emergency preempting
    samples = []
    for _ in range(rounds // 10):
        fc = FloorControl()
        fc.request("talker", Priority.NORMAL, now)
        for i in range(16):
            fc.request(f"w{i}", Priority.NORMAL, now)
        t0 = time.perf_counter_ns()
        fc.request("boat", Priority.EMERGENCY, now)
        samples.append((time.perf_counter_ns() - t0) / 1000)
    print(
        f"floor  emergency preempt (q=16): median {statistics.median(samples):6.2f} µs"
        f"  p99 {percentile(samples, 99):6.2f} µs"
    )
    fc = FloorControl()
    start = time.perf_counter()
    for i in range(rounds):
        fc.may_send("us-cbp/r1" if i & 1 else "x")
    per = (time.perf_counter() - start) / rounds * 1e9
    print(f"floor  may_send hot path:        {per:6.1f} ns")


def bench_store(directory: Path, messages: int) -> None:
    path = directory / "bench-fwd.db"
    store = SqliteStore(path)
    body = os.urandom(300)  # about one sealed text message
    recipients = ["ca-rcmp/vessel-7", "mx-gn/console-2"]
    samples = []
    for i in range(messages):
        t0 = time.perf_counter()
        store.enqueue(recipients, "shiprider-1", "message", f"m{i}", body, 0.0, 3600)
        samples.append((time.perf_counter() - t0) * 1000)
    print(
        f"store  enqueue+fsync (2 rcpt):   median {statistics.median(samples):6.3f} ms"
        f"  p99 {percentile(samples, 99):6.3f} ms  ({messages} messages, {directory})"
    )
    t0 = time.perf_counter()
    drained = 0
    while batch := store.pending(recipients[0], 1.0, limit=500):
        drained += len(batch)
        store.ack(recipients[0], batch[-1].seq)
    elapsed = time.perf_counter() - t0
    print(
        f"store  pending+ack drain:        {drained / elapsed:8.0f} items/s"
        f"  ({drained} items, pages of 500, one fsync per ack)"
    )
    t0 = time.perf_counter()
    items = store.pending(recipients[1], 1.0, limit=messages)
    read = time.perf_counter() - t0
    print(f"store  pending read only:        {len(items) / read:8.0f} items/s")
    store.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="where to put the SQLite file")
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]} on {sys.platform}")
    bench_floor()
    if args.dir is not None:
        bench_store(args.dir, args.messages)
    else:
        with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
            bench_store(Path(tmp), args.messages)


if __name__ == "__main__":
    main()
