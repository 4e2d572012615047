"""Receiver replay protection for SFrame counters: a sliding window per sender KID.

RFC 9605 §7.3 leaves replay protection to the application and points at the SRTP scheme;
this is that scheme, RFC 3711 §3.3.2, over SFrame CTR values. Sans-IO: no clock, no I/O.

How it works. The window remembers the highest counter accepted so far (``highest``) and,
in an integer bitmask, which of the ``size`` counters ending at ``highest`` were accepted:
bit *i* set means ``highest - i`` was seen. For a received counter ``ctr``:

* ``ctr > highest``: new, acceptable;
* ``highest - size < ctr <= highest``: acceptable iff its bit is clear (reordering inside
  the window is fine, a duplicate is not);
* ``ctr <= highest - size``: too old, rejected — it can no longer be told from a replay.

The receiver calls :meth:`ReplayWindow.check` before decrypting and
:meth:`ReplayWindow.update` only once the frame has authenticated, so forged frames never
move the window (RFC 3711 §3.3.2: "the replay list is updated only after authentication").

Across restarts. A window lives in memory, so a listener that restarts would take every frame
it already played as new. The caller therefore keeps a durable *mark* per KID, reserved ahead
like a sender's counters (:mod:`crypto.counters`): before it accepts a counter at or past
:attr:`ReplayWindow.mark` it durably records a higher mark, and a window restored after a
restart starts with ``floor`` = that mark and refuses every counter below it. Nothing accepted
before the restart is accepted again; the cost is at most one block of the sender's frames
that had not been heard yet when the listener went down.
"""

from __future__ import annotations

__all__ = ["MIN_SIZE", "ReplayWindow"]

MIN_SIZE = 64
"""RFC 3711 §3.3.2: the window size MUST be at least 64."""

_MAX_CTR = 2**64 - 1


class ReplayWindow:
    """The replay window of one sender KID (RFC 3711 §3.3.2 semantics)."""

    __slots__ = ("_full", "_mask", "floor", "highest", "mark", "size")

    def __init__(self, size: int = 128, floor: int = 0) -> None:
        if size < MIN_SIZE:
            raise ValueError(f"replay window size must be at least {MIN_SIZE}")
        if not 0 <= floor <= _MAX_CTR + 1:
            raise ValueError("replay floor out of range")
        self.size = size
        self.floor = floor  # counters below were (or may have been) accepted before a restart
        self.mark = floor  # the caller's durable mark: counters below it are on record
        self.highest: int | None = None
        self._mask = 0
        self._full = (1 << size) - 1

    def __repr__(self) -> str:
        return f"ReplayWindow(size={self.size}, highest={self.highest}, floor={self.floor})"

    def check(self, ctr: int) -> bool:
        """True if ``ctr`` is acceptable: neither seen nor too old. Changes nothing."""
        if not self.floor <= ctr <= _MAX_CTR:
            return False
        highest = self.highest
        if highest is None or ctr > highest:
            return True
        delta = highest - ctr
        return delta < self.size and not (self._mask >> delta) & 1

    def update(self, ctr: int) -> None:
        """Record ``ctr`` as received. Call only after its frame authenticated.

        Raises ValueError if :meth:`check` would refuse ``ctr``: recording a replayed or
        too-old counter is a bug in the caller, never something a peer can cause.
        """
        if not self.check(ctr):
            raise ValueError("counter was not acceptable to the replay window")
        highest = self.highest
        if highest is None:
            self.highest = ctr
            self._mask = 1
        elif ctr > highest:
            shift = ctr - highest
            self._mask = ((self._mask << shift) | 1) & self._full if shift < self.size else 1
            self.highest = ctr
        else:
            self._mask |= 1 << (highest - ctr)
