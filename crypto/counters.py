"""Sender counters that are never reused, even across a crash (RFC 9605 §9.1 / DESIGN §4).

SFrame's nonce is ``salt XOR CTR``: reusing a CTR under the same key breaks AES-GCM. A sender
therefore never uses a counter it has not first *reserved* durably. Counters are reserved in
blocks through a :class:`CounterStore` (the endpoint backs it with a file or SQLite and must
make ``reserve`` durable before returning). After a restart the sender resumes from the
reserved high-water mark, skipping any counters that were reserved but not used — wasting at
most one block per restart, never reusing one.

A reservation cannot protect against a state file that is *rolled back* (a snapshot restored, a
standby cloned): the marks go back with it. That case is handled one level up, by a fresh
sender generation in every KID per boot (:mod:`crypto.epoch`); the reservation still keeps one
boot's counters unique and guards against a generation drawn twice.

The same store shape keeps a listener's replay marks (:mod:`crypto.replay`): a store that
offers :class:`ReplayMarkSource` (the endpoint's state file) is used for both.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .errors import CounterExhaustedError

MAX_CTR = (1 << 64) - 1


class CounterStore(Protocol):
    def load(self, label: str) -> int:
        """The reserved high-water mark for ``label`` (0 if never reserved)."""
        ...

    def reserve(self, label: str, upto: int) -> None:
        """Durably record that counters below ``upto`` may have been used."""
        ...


@runtime_checkable
class ReplayMarkSource(Protocol):
    """A counter store that also keeps durable replay marks, in a store of their own."""

    @property
    def replay_marks(self) -> CounterStore: ...


class MemoryCounterStore:
    """A CounterStore in a dict: for tests and for devices that rekey on every start."""

    def __init__(self) -> None:
        self.marks: dict[str, int] = {}
        self.reservations = 0

    def load(self, label: str) -> int:
        return self.marks.get(label, 0)

    def reserve(self, label: str, upto: int) -> None:
        self.reservations += 1
        self.marks[label] = upto


class SendCounter:
    """Hands out counters for one (key, KID); reserves blocks before use."""

    __slots__ = ("_store", "_label", "_next", "_limit", "_block", "_max")

    def __init__(
        self, store: CounterStore, label: str, block: int = 1024, max_ctr: int = MAX_CTR
    ) -> None:
        if block < 1:
            raise ValueError("block must be positive")
        self._store = store
        self._label = label
        self._block = block
        self._max = max_ctr
        start = store.load(label)
        self._next = start
        self._limit = start  # nothing reserved by this instance yet

    def next(self) -> int:
        ctr = self._next
        if ctr >= self._limit:
            if ctr > self._max:
                raise CounterExhaustedError("SFrame counter space exhausted; rekey")
            limit = min(ctr + self._block, self._max + 1)
            self._store.reserve(self._label, limit)
            self._limit = limit
        self._next = ctr + 1
        return ctr
