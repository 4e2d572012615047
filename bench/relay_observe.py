"""The observe-only patches of :mod:`bench.relay_patched`: they change nothing the relay does.

- ``gclog``: every garbage-collector pause, summarised at exit.
- ``looplag``: every event-loop stall over 5 ms, at exit.
- ``stallstack``: where the event-loop thread was during stalls over 5 ms (sampled).
- ``cprofile``: a ``cProfile`` recording between SIGUSR1 and SIGUSR2.
- the ``event-loop:`` line (always): which loop class served the relay, from which tree.
"""

from __future__ import annotations

import asyncio
import atexit
import cProfile
import gc
import os
import signal
import sys
import threading
import time
from typing import Any


def _gclog() -> None:
    pauses: list[tuple[float, int, float]] = []
    start = [0.0]

    def cb(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            start[0] = time.perf_counter()
        else:
            pauses.append((time.perf_counter() - start[0], info["generation"], time.time()))

    gc.callbacks.append(cb)

    def summary() -> None:
        for gen in (0, 1, 2):
            ts = sorted(t for t, g, _ in pauses if g == gen)
            if ts:
                print(
                    f"gc gen{gen}: {len(ts)} collections, max {ts[-1] * 1e3:.1f} ms, "
                    f"total {sum(ts) * 1e3:.0f} ms",
                    flush=True,
                )

        for t, g, at in pauses:
            if t >= 0.010:
                stamp = time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at % 1 * 1000):03d}"
                print(f"gc pause at {stamp}: gen{g} {t * 1e3:.1f} ms", flush=True)

    atexit.register(summary)


def _looplag() -> None:
    """Observe only: log every event-loop stall over 5 ms (when, how long) at exit."""
    from bridge.relay import server as rs

    stalls: list[tuple[float, float]] = []
    original = rs.RelayServer.start

    async def watch() -> None:
        import asyncio

        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(0.002)
            lag = time.perf_counter() - t0 - 0.002
            if lag > 0.005:
                stalls.append((time.time(), lag))

    async def start(self: Any) -> None:
        import asyncio

        await original(self)
        self._lag_task = asyncio.get_running_loop().create_task(watch())

    rs.RelayServer.start = start  # type: ignore[method-assign]

    def summary() -> None:
        for at, lag in stalls:
            stamp = time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at % 1 * 1000):03d}"
            print(f"loop stall at {stamp}: {lag * 1e3:.1f} ms", flush=True)

    atexit.register(summary)


def _on_start(hook: Any) -> None:
    """Run ``hook()`` on the event loop right after ``RelayServer.start`` returns."""
    from bridge.relay import server as rs

    original = rs.RelayServer.start

    async def start(self: Any) -> None:
        await original(self)
        hook()

    rs.RelayServer.start = start  # type: ignore[method-assign]


def _loopinfo() -> None:
    def say() -> None:
        import bridge

        loop = type(asyncio.get_running_loop())
        where = os.path.dirname(os.path.dirname(os.path.abspath(bridge.__file__)))
        print(f"event-loop: {loop.__module__}.{loop.__qualname__} (relay from {where})", flush=True)

    _on_start(say)


def _cprofile() -> None:
    prof: list[cProfile.Profile] = []
    out = os.environ.get("CROSSBAND_BENCH_PROFILE", "relay.prof")

    def begin(_sig: int, _frame: Any) -> None:
        if not prof:
            prof.append(cProfile.Profile())
            prof[0].enable()

    def end(_sig: int, _frame: Any) -> None:
        if prof:
            p = prof.pop()
            p.disable()
            p.dump_stats(out)
            print(f"profile written: {out}", flush=True)

    _on_signals(begin, end)


def _on_signals(begin: Any, end: Any) -> None:
    """SIGUSR1 calls ``begin``, SIGUSR2 ``end``, after any handler installed before."""
    for sig, fn in ((signal.SIGUSR1, begin), (signal.SIGUSR2, end)):
        before = signal.getsignal(sig)

        def handler(n: int, frame: Any, fn: Any = fn, before: Any = before) -> None:
            if callable(before):
                before(n, frame)
            fn(n, frame)

        signal.signal(sig, handler)


def _stallstack() -> None:
    import collections
    import traceback

    beat = [time.perf_counter()]
    armed = [os.environ.get("CROSSBAND_BENCH_ARMED", "1") == "1"]  # else SIGUSR1..SIGUSR2
    seen: collections.Counter[str] = collections.Counter()
    stalls = [0, 0.0]  # count, worst (s)
    main = threading.main_thread().ident

    def tick() -> None:
        beat[0] = time.perf_counter()
        asyncio.get_running_loop().call_later(0.001, tick)

    def watch() -> None:
        in_stall = False
        while True:
            time.sleep(0.001)
            age = time.perf_counter() - beat[0]
            if age <= 0.005 or not armed[0]:
                in_stall = False
                continue
            frame = sys._current_frames().get(main or 0)
            if frame is None:
                continue
            stack = traceback.extract_stack(frame)[-8:]
            where = " < ".join(
                f"{f.name} ({os.path.basename(f.filename)}:{f.lineno})" for f in reversed(stack)
            )
            seen[where] += 1
            if not in_stall:
                stalls[0] += 1
            stalls[1] = max(stalls[1], age)
            in_stall = True

    def begin() -> None:
        tick()
        threading.Thread(target=watch, daemon=True).start()

    _on_start(begin)
    _on_signals(lambda *_: armed.__setitem__(0, True), lambda *_: armed.__setitem__(0, False))

    def summary() -> None:
        total = sum(seen.values()) or 1
        print(
            f"stall samples: {stalls[0]} stalls over 5 ms, worst {stalls[1] * 1e3:.1f} ms, "
            f"{total} samples (1 per ms of stall)",
            flush=True,
        )
        for where, n in seen.most_common(25):
            print(f"stall stack {n / total:6.1%} {n:6d}  {where}", flush=True)

    atexit.register(summary)
