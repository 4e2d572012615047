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
"""

from __future__ import annotations

__all__ = ["MIN_SIZE", "ReplayWindow"]

MIN_SIZE = 64
"""RFC 3711 §3.3.2: the window size MUST be at least 64."""

_MAX_CTR = 2**64 - 1


class ReplayWindow:
    """The replay window of one sender KID (RFC 3711 §3.3.2 semantics)."""

    __slots__ = ("_full", "_mask", "highest", "size")

    def __init__(self, size: int = 128) -> None:
        if size < MIN_SIZE:
            raise ValueError(f"replay window size must be at least {MIN_SIZE}")
        self.size = size
        self.highest: int | None = None
        self._mask = 0
        self._full = (1 << size) - 1

    def __repr__(self) -> str:
        return f"ReplayWindow(size={self.size}, highest={self.highest})"

    def check(self, ctr: int) -> bool:
        """True if ``ctr`` is acceptable: neither seen nor too old. Changes nothing."""
        if not 0 <= ctr <= _MAX_CTR:
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
