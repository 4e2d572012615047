"""An in-memory :class:`~bridge.relay.store.ForwardStore`: same semantics, no durability.

For tests and demos; the relay runs on :class:`~bridge.relay.store.SqliteStore`.
"""

from __future__ import annotations

from collections.abc import Mapping

from bridge.relay.store import StoredItem, check_enqueue, check_state

__all__ = ["MemoryStore"]


class MemoryStore:
    """A :class:`ForwardStore` in memory, same semantics, no durability: tests and demos."""

    def __init__(self) -> None:
        self._seq = 0
        self._bodies: dict[int, tuple[str, str, str, bytes, float, float]] = {}
        # recipient -> msg_id -> (seq, expires_at, delivered); dicts keep insertion order
        self._deliveries: dict[str, dict[str, tuple[int, float, bool]]] = {}
        self._state: dict[str, bytes] = {}

    def enqueue(
        self,
        recipients: list[str],
        channel: str,
        kind: str,
        msg_id: str,
        body: bytes,
        now: float,
        ttl: float,
        state: Mapping[str, bytes] | None = None,
    ) -> int:
        targets = check_enqueue(recipients, channel, kind, msg_id, body, now, ttl)
        for key, value in check_state(state):
            self._state[key] = value
        known = {r: self._deliveries.get(r, {}).get(msg_id) for r in targets}
        fresh = [r for r, entry in known.items() if entry is None]
        if not fresh:
            entry = known[targets[0]]
            assert entry is not None
            return entry[0]
        self._seq += 1
        expires_at = now + ttl
        self._bodies[self._seq] = (channel, kind, msg_id, bytes(body), now, expires_at)
        for recipient in fresh:
            self._deliveries.setdefault(recipient, {})[msg_id] = (self._seq, expires_at, False)
        return self._seq

    def pending(
        self, recipient: str, now: float, after_seq: int = 0, limit: int = 500
    ) -> list[StoredItem]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        out: list[StoredItem] = []
        for seq, expires_at, delivered in self._deliveries.get(recipient, {}).values():
            if delivered or seq <= after_seq or expires_at <= now:
                continue
            channel, kind, msg_id, body, accepted_at, _ = self._bodies[seq]
            out.append(
                StoredItem(seq, recipient, channel, kind, msg_id, body, accepted_at, expires_at)
            )
            if len(out) == limit:
                break
        return out

    def ack(self, recipient: str, up_to_seq: int) -> int:
        entries = self._deliveries.get(recipient, {})
        acked = []
        for msg_id, (seq, expires_at, delivered) in entries.items():
            if not delivered and seq <= up_to_seq:
                entries[msg_id] = (seq, expires_at, True)
                acked.append(seq)
        waiting = {s for e in self._deliveries.values() for s, _, d in e.values() if not d}
        for seq in acked:
            if seq not in waiting:
                self._bodies.pop(seq, None)
        return len(acked)

    def expire(self, now: float) -> int:
        dropped = 0
        for entries in self._deliveries.values():
            for msg_id, (_, expires_at, delivered) in list(entries.items()):
                if expires_at <= now:
                    dropped += not delivered
                    del entries[msg_id]
        self._bodies = {s: b for s, b in self._bodies.items() if b[5] > now}
        return dropped

    def depth(self, recipient: str | None = None) -> int:
        if recipient is not None:
            return sum(not d for _, _, d in self._deliveries.get(recipient, {}).values())
        return sum(not d for e in self._deliveries.values() for _, _, d in e.values())

    def put_state(self, key: str, value: bytes) -> None:
        if not isinstance(key, str) or not key:
            raise ValueError("key must be a non-empty string")
        self._state[key] = bytes(value)

    def get_state(self, key: str) -> bytes | None:
        return self._state.get(key)

    def close(self) -> None:
        pass
