"""The table ``bench/relay_speed.py`` prints: each figure beside its reference, per loop.

Latency figures are per round (one p50/p99 per measured window) and printed as the median
round with the range over rounds; a target is judged on the median round.
"""

from __future__ import annotations

import pstats
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.relay_procs import Window
from bench.relay_stress import pct, spread

Rounds = list[tuple[list[float], int, Window]]


class Report:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str, str]] = []
        self.notes: list[str] = []

    def row(
        self,
        what: str,
        value: str,
        loop: str,
        target: str = "",
        ref: str = "",
        ok: bool | None = None,
    ) -> None:
        mark = "" if ok is None else ("PASS" if ok else "MISS")
        self.rows.append((what, loop, ref, value, f"{target} {mark}".strip()))

    def lat(
        self, what: str, loop: str, ref: Rounds, got: Rounds, target: float, ref_name: str
    ) -> None:
        def p(rounds: Rounds, q: float) -> list[float]:
            return [pct(lat, q) for lat, _, _ in rounds if lat]

        r99, g99 = p(ref, 0.99), p(got, 0.99)
        med = sorted(g99)[len(g99) // 2] if g99 else float("inf")
        self.row(f"{what}: p50 ms", spread(p(got, 0.5), 1e3), loop, "", spread(p(ref, 0.5), 1e3))
        self.row(
            f"{what}: p99 ms",
            spread(g99, 1e3),
            loop,
            f"<= {target * 1e3:g} ms",
            spread(r99, 1e3),
            ok=med <= target,
        )
        self.row("   reference", ref_name, loop)
        fc = "/".join(f"{w.foreign_cpu:.0%}" for *_x, w in got)
        self.row("   foreign CPU per round (loaded)", fc, loop)

    def table(self, title: str) -> None:
        print(
            f"\n{title}, {time.strftime('%Y-%m-%d %H:%M %Z')}; median round (min–max over rounds)"
        )
        print(f"  {'figure':52s} {'loop':8s} {'reference':>22s} {'measured':>24s}  target")
        for what, loop, ref, value, target in self.rows:
            print(f"  {what:52s} {loop:8s} {ref:>22s} {value:>24s}  {target}")
        for note in self.notes:
            print(f"  note: {note}")

    @staticmethod
    def relay_log(loop: str, lines: Callable[[str], list[str]]) -> None:
        """The observe-only patches' findings (loop stalls, collector pauses) from a relay log."""
        for prefix in ("loop stall", "gc gen", "gc pause", "stall "):
            for line in lines(prefix)[:40]:
                print(f"  relay ({loop}) {line}")

    @staticmethod
    def cprofile(path: Path, what: str) -> None:
        if not path.exists():
            print(f"\nno cProfile written ({path})")
            return
        print(f"\ncProfile of the relay ({what}):")
        st = pstats.Stats(str(path))
        st.sort_stats("tottime").print_stats(25)
        st.sort_stats("cumulative").print_stats(30)

    @staticmethod
    def pyspy(path: Path, what: str) -> None:
        """py-spy's raw samples, by innermost frame and by frames anywhere on the stack."""
        if not path.exists():
            print(f"\nno py-spy output ({path})")
            return
        leaf: dict[str, int] = {}
        anywhere: dict[str, int] = {}
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            frames = stack.split(";")
            leaf[frames[-1]] = leaf.get(frames[-1], 0) + int(count)
            for f in set(frames):
                anywhere[f] = anywhere.get(f, 0) + int(count)
        total = sum(leaf.values()) or 1
        for title, table in (("innermost frame", leaf), ("anywhere on the stack", anywhere)):
            print(f"\npy-spy samples of the relay ({what}), {total} samples, by {title}:")
            for name, cnt in sorted(table.items(), key=lambda kv: -kv[1])[:30]:
                print(f"  {cnt / total:6.1%}  {name}")


# -- the issue-3 table (bench/relay_bench.py) -------------------------------------------------


@dataclass
class Row:
    what: str
    value: str
    target: str = ""
    ok: bool | None = None

    def line(self) -> str:
        mark = "" if self.ok is None else ("PASS" if self.ok else "MISS")
        return f"  {self.what:50s} {self.value:>30s}  {self.target:>9s}  {mark}"


def foreign(ws: list[Window]) -> str:
    return "/".join(f"{w.foreign_cpu:.0%}" for w in ws)


def _times(n: int) -> Callable[[int], int]:
    return lambda sent: sent * n


class Figures:
    """The issue-3 figures, numbered 1-5 as in ``bench/relay_bench.py``'s docstring."""

    rows: dict[int, list[Any]]

    def add(self, figure: int, *rows: Row) -> None:
        self.rows[figure] += rows

    def lat_rows(
        self,
        figure: int,
        name: str,
        rounds: list[tuple[list[float], int, Window]],
        expect: Callable[[int], int],
        target: bool,
    ) -> None:
        """The median round (by p99) as the figure; every round's p99 and foreign CPU after it.

        ``expect(sent)`` is how many receipts ``sent`` frames should produce at the probes.
        """
        stats = []
        for lat, sent, w in rounds:
            if lat:
                stats.append((pct(lat, 0.99), pct(lat, 0.5), len(lat), expect(sent), w))
        if not stats:
            self.add(figure, Row(f"{name}: nothing received", "-", "", False if target else None))
            return
        stats.sort(key=lambda s: s[0])
        p99, p50, got, expected, _ = stats[len(stats) // 2]
        lost = 1 - sum(s[2] for s in stats) / max(1, sum(s[3] for s in stats))
        every = " / ".join(f"{s[0] * 1e3:.2f}" for s in stats)
        self.add(
            figure,
            Row(f"{name}: p50", f"{p50 * 1e3:.3f} ms"),
            Row(
                f"{name}: p99",
                f"{p99 * 1e3:.3f} ms",
                "<= 2 ms" if target else "",
                (p99 <= 2e-3) if target else None,
            ),
            Row("   p99 per round (ms); lost", f"{every}; {lost:.2%}"),
            Row("   foreign CPU per round", foreign([s[4] for s in stats])),
        )

    # -- relay set-up ------------------------------------------------------------------------


def report(bench: Any, quick: bool, started: float) -> None:
    patch = f", relay patches: {bench.patch}" if bench.patch else ""
    print(
        f"\nRelay benchmark — {'quick' if quick else 'full'} run{patch}, "
        f"{time.perf_counter() - started:.0f} s, {time.strftime('%Y-%m-%d %H:%M')}"
    )
    print(f"  {'figure':50s} {'measured':>30s}  {'target':>9s}")
    for n in sorted(bench.rows):
        for row in bench.rows[n]:
            print(row.line())
