"""The three-agency world of the tests: the demo's builder (:mod:`bridge.demo.world`).

Tests may import :mod:`bridge.demo`; the runtime may not (see ``.importlinter``). This module
keeps the names the tests and benchmarks import.
"""

from __future__ import annotations

import time

from bridge.demo.world import AGENCIES, NOW, Device, World, make_world

__all__ = ["AGENCIES", "NOW", "Device", "World", "dispatch_and_vessel", "make_world"]


def dispatch_and_vessel() -> World:
    """A world valid now (for tests against a real relay process, which reads the wall clock)
    with a US dispatcher ``us-cbp/dispatch-1`` and a Canadian vessel ``ca-rcmp/vessel-1``."""
    w = make_world(now=int(time.time()))
    w.device("us-cbp", "dispatch-1", ("dispatcher", "member"))
    w.device("ca-rcmp", "vessel-1", ("member",))
    return w
