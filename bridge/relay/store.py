"""Store-and-forward: ciphertext kept for members that are offline, until acked or expired.

The relay accepts a commit, a sealed epoch secret or a data message for a channel, writes
one copy per recipient that cannot take it now, and only then acknowledges it to the
sender. On reconnect the recipient gets its items in acceptance order and acknowledges
them cumulatively (``ack(recipient, up_to_seq)``), as a TCP receiver would.

Model
-----
* An *enqueue* stores one body and gets one ``seq``, a number that only ever grows (SQLite
  ``AUTOINCREMENT``: never reused, even after deletion), shared by all its recipients. A
  recipient's items are therefore ordered by ``seq``, and a cumulative ack is meaningful.
* ``(recipient, msg_id)`` is unique: a retransmitted message is stored once per recipient,
  and stays known (as a body-less tombstone) after it is acked, until it expires, so a
  sender's retry after a lost acceptance cannot deliver it twice. The first body wins.
* Bodies are opaque ciphertext. Nothing here logs, parses or compares them.

Durability: :class:`SqliteStore` runs SQLite in WAL mode with ``synchronous=FULL``, so the
WAL has been fsynced when ``COMMIT`` returns; ``enqueue`` returns only after its commit,
so an item whose ``seq`` the relay has seen survives a crash or power cut.

:class:`ForwardStore` is the interface the relay codes against; a NATS JetStream store
(DESIGN §9) is a third implementation of it, beside SQLite and the in-memory one for tests
(:mod:`bridge.relay.memory_store`).
The same interface holds a little relay state that must survive a restart
(``put_state``/``get_state``), such as the head of each channel's commit chain.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from bridge.errors import StoreError

__all__ = ["StoredItem", "ForwardStore", "SqliteStore", "check_enqueue", "check_state"]


@dataclass(frozen=True, slots=True, repr=False)
class StoredItem:
    seq: int
    recipient: str
    channel: str
    kind: str  # "commit" | "sealed-secret" | "message" | ...
    msg_id: str
    body: bytes  # opaque ciphertext
    accepted_at: float
    expires_at: float

    def __repr__(self) -> str:  # never show a body, not even in a traceback
        return (
            f"StoredItem(seq={self.seq}, recipient={self.recipient!r}, "
            f"channel={self.channel!r}, kind={self.kind!r}, msg_id={self.msg_id!r}, "
            f"body=<{len(self.body)} bytes>, expires_at={self.expires_at})"
        )


@runtime_checkable
class ForwardStore(Protocol):
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
        """Store ``body`` for each recipient and the ``state`` entries (as ``put_state``), in
        one transaction; durable on return. Returns the item's seq."""
        ...

    def pending(
        self, recipient: str, now: float, after_seq: int = 0, limit: int = 500
    ) -> list[StoredItem]:
        """Unacknowledged, unexpired items for ``recipient`` in acceptance order."""
        ...

    def ack(self, recipient: str, up_to_seq: int) -> int:
        """Forget every item of ``recipient`` with seq ≤ ``up_to_seq``; returns how many."""
        ...

    def expire(self, now: float) -> int:
        """Drop what expired at or before ``now``; returns the number of undelivered items."""
        ...

    def depth(self, recipient: str | None = None) -> int:
        """Undelivered items for ``recipient``, or for everybody."""
        ...

    def put_state(self, key: str, value: bytes) -> None: ...

    def get_state(self, key: str) -> bytes | None: ...

    def close(self) -> None: ...


def check_enqueue(
    recipients: list[str], channel: str, kind: str, msg_id: str, body: bytes, now: float, ttl: float
) -> list[str]:
    for name, value in (("channel", channel), ("kind", kind), ("msg_id", msg_id)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string")
    if not isinstance(body, bytes | bytearray | memoryview):
        raise ValueError("body must be bytes")
    if not math.isfinite(now) or not math.isfinite(ttl) or ttl <= 0:
        raise ValueError("now must be finite and ttl positive")
    unique = list(dict.fromkeys(recipients))
    if not unique or not all(isinstance(r, str) and r for r in unique):
        raise ValueError("recipients must be a non-empty list of non-empty strings")
    return unique


def check_state(state: Mapping[str, bytes] | None) -> list[tuple[str, bytes]]:
    items = [] if state is None else list(state.items())
    for key, value in items:
        if not isinstance(key, str) or not key or not isinstance(value, bytes):
            raise ValueError("state keys must be non-empty strings and values bytes")
    return items


@contextmanager
def _store_errors() -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"store unavailable: {type(exc).__name__}") from exc


_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    channel     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    msg_id      TEXT NOT NULL,
    body        BLOB NOT NULL,
    accepted_at REAL NOT NULL,
    expires_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    recipient   TEXT NOT NULL,
    msg_id      TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    expires_at  REAL NOT NULL,
    delivered   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (recipient, msg_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_queue ON deliveries (recipient, delivered, seq);
CREATE INDEX IF NOT EXISTS deliveries_seq ON deliveries (seq);
CREATE INDEX IF NOT EXISTS deliveries_expiry ON deliveries (expires_at);
CREATE INDEX IF NOT EXISTS items_expiry ON items (expires_at);
CREATE TABLE IF NOT EXISTS relay_state (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
"""


class SqliteStore:
    """The default :class:`ForwardStore`: one SQLite file, WAL, fsync on every accept.

    Safe to call from several threads (one connection behind a lock), so a driver may move
    the fsync off the event loop with ``asyncio.to_thread``.
    """

    def __init__(self, path: str | Path) -> None:
        self._lock = threading.Lock()
        # isolation_level=None: we issue BEGIN/COMMIT ourselves.
        with _store_errors():
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        try:
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"cannot enable WAL (journal_mode={mode})")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            self._db.close()
            raise StoreError(f"store unavailable: cannot open {path}: {exc}") from exc

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
        states = check_state(state)
        expires_at = now + ttl
        with self._lock, self._transaction():
            for key, value in states:
                self._put(key, value)
            known: dict[str, int] = {}
            for recipient in targets:
                row = self._db.execute(
                    "SELECT seq FROM deliveries WHERE recipient = ? AND msg_id = ?",
                    (recipient, msg_id),
                ).fetchone()
                if row is not None:
                    known[recipient] = int(row[0])
            fresh = [r for r in targets if r not in known]
            if not fresh:
                return known[targets[0]]
            cursor = self._db.execute(
                "INSERT INTO items (channel, kind, msg_id, body, accepted_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (channel, kind, msg_id, bytes(body), now, expires_at),
            )
            seq = cursor.lastrowid
            assert seq is not None
            self._db.executemany(
                "INSERT INTO deliveries (recipient, msg_id, seq, expires_at) VALUES (?, ?, ?, ?)",
                [(r, msg_id, seq, expires_at) for r in fresh],
            )
            return seq

    def pending(
        self, recipient: str, now: float, after_seq: int = 0, limit: int = 500
    ) -> list[StoredItem]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        with self._lock, _store_errors():
            rows = self._db.execute(
                "SELECT i.seq, i.channel, i.kind, i.msg_id, i.body, i.accepted_at, i.expires_at"
                " FROM deliveries d JOIN items i ON i.seq = d.seq"
                " WHERE d.recipient = ? AND d.delivered = 0 AND d.seq > ? AND d.expires_at > ?"
                " ORDER BY d.seq LIMIT ?",
                (recipient, after_seq, now, limit),
            ).fetchall()
        return [
            StoredItem(seq, recipient, channel, kind, msg_id, bytes(body), accepted, expires)
            for seq, channel, kind, msg_id, body, accepted, expires in rows
        ]

    def ack(self, recipient: str, up_to_seq: int) -> int:
        with self._lock, self._transaction():
            seqs = [
                row[0]
                for row in self._db.execute(
                    "SELECT seq FROM deliveries WHERE recipient = ? AND delivered = 0 AND seq <= ?",
                    (recipient, up_to_seq),
                )
            ]
            if not seqs:
                return 0
            self._db.execute(
                "UPDATE deliveries SET delivered = 1"
                " WHERE recipient = ? AND delivered = 0 AND seq <= ?",
                (recipient, up_to_seq),
            )
            # A body nobody still waits for goes now; its tombstones stay until expiry.
            self._db.executemany(
                "DELETE FROM items WHERE seq = ? AND NOT EXISTS"
                " (SELECT 1 FROM deliveries d WHERE d.seq = ? AND d.delivered = 0)",
                [(seq, seq) for seq in seqs],
            )
            return len(seqs)

    def expire(self, now: float) -> int:
        with self._lock, self._transaction():
            dropped = self._db.execute(
                "SELECT COUNT(*) FROM deliveries WHERE expires_at <= ? AND delivered = 0", (now,)
            ).fetchone()[0]
            self._db.execute("DELETE FROM deliveries WHERE expires_at <= ?", (now,))
            self._db.execute("DELETE FROM items WHERE expires_at <= ?", (now,))
            return int(dropped)

    def depth(self, recipient: str | None = None) -> int:
        with self._lock, _store_errors():
            if recipient is None:
                row = self._db.execute("SELECT COUNT(*) FROM deliveries WHERE delivered = 0")
            else:
                row = self._db.execute(
                    "SELECT COUNT(*) FROM deliveries WHERE recipient = ? AND delivered = 0",
                    (recipient,),
                )
            return int(row.fetchone()[0])

    def put_state(self, key: str, value: bytes) -> None:
        if not isinstance(key, str) or not key:
            raise ValueError("key must be a non-empty string")
        with self._lock, self._transaction():
            self._put(key, value)

    def _put(self, key: str, value: bytes) -> None:
        self._db.execute(
            "INSERT INTO relay_state (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, bytes(value)),
        )

    def get_state(self, key: str) -> bytes | None:
        with self._lock, _store_errors():
            row = self._db.execute("SELECT value FROM relay_state WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def pragmas(self) -> dict[str, str | int]:
        """The durability settings in force on this store's connection (for operators and the
        tests): ``journal_mode`` (``wal``) and ``synchronous`` (2 = FULL)."""
        with self._lock, _store_errors():
            mode = self._db.execute("PRAGMA journal_mode").fetchone()[0]
            sync = self._db.execute("PRAGMA synchronous").fetchone()[0]
        return {"journal_mode": str(mode), "synchronous": int(sync)}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (fsynced: synchronous=FULL), rollback on error.

    SQLite failures leave as :class:`~bridge.errors.StoreError`: the relay then refuses the
    request with ``Code.STORE_FAILED`` instead of acknowledging it.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"store unavailable: {type(exc).__name__}") from exc

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self._db.execute("COMMIT")
                return
        except sqlite3.Error as failure:
            self._rollback()
            raise StoreError(f"store unavailable: {type(failure).__name__}") from failure
        self._rollback()
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"store unavailable: {type(exc).__name__}") from exc

    def _rollback(self) -> None:
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the connection is unusable; SQLite rolls the journal back on reopen
