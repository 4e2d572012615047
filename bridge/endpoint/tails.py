"""A floor release held back until our last UDP frames are ahead of it (the core's tails)."""

from __future__ import annotations

from dataclasses import dataclass

from crypto.messages import BurstSeal


@dataclass
class Tail:
    deadline: float
    armed: float
    sealed: tuple[BurstSeal, bytes] | None
