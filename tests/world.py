"""The three-agency world of the tests: the demo's builder (:mod:`bridge.demo.world`).

Tests may import :mod:`bridge.demo`; the runtime may not (see ``.importlinter``). This module
keeps the names the tests and benchmarks import.
"""

from __future__ import annotations

from bridge.demo.world import AGENCIES, NOW, Device, World, make_world

__all__ = ["AGENCIES", "NOW", "Device", "World", "make_world"]
