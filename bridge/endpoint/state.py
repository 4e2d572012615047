"""An endpoint's durable state: verified commits, send counters, seen message ids.

One SQLite file per endpoint (WAL, ``synchronous=FULL``) so that a restart neither loses
membership nor reuses an SFrame counter: :meth:`EndpointState.reserve` is the
:class:`~crypto.counters.CounterStore` hook and is durable when it returns. Commit bundles are
kept as received (the epoch secret inside is sealed to this device's HPKE key, so the file holds
no key in the clear); on start the endpoint re-verifies and re-opens them. Message ids already
handed to the application are remembered so a redelivery after a crash is dropped.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS commits (channel TEXT, epoch INTEGER, bundle BLOB,
                                    PRIMARY KEY (channel, epoch));
CREATE TABLE IF NOT EXISTS counters (label TEXT PRIMARY KEY, upto INTEGER);
CREATE TABLE IF NOT EXISTS seen (msg_id TEXT PRIMARY KEY, at REAL);
"""
KEEP_COMMITS = 2


class EndpointState:
    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    # CounterStore
    def load(self, label: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT upto FROM counters WHERE label=?", (label,)).fetchone()
        return int(row[0]) if row else 0

    def reserve(self, label: str, upto: int) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO counters VALUES (?, ?) ON CONFLICT(label) DO UPDATE SET upto=?",
                (label, upto, upto),
            )

    # commits
    def save_commit(self, channel: str, epoch: int, bundle: bytes) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT OR REPLACE INTO commits VALUES (?, ?, ?)", (channel, epoch, bundle)
            )
            self._db.execute(
                "DELETE FROM commits WHERE channel=? AND epoch <= ?",
                (channel, epoch - KEEP_COMMITS),
            )
            self._db.execute("COMMIT")

    def commits(self) -> list[tuple[str, int, bytes]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT channel, epoch, bundle FROM commits ORDER BY channel, epoch"
            ).fetchall()
        return [(str(c), int(e), bytes(b)) for c, e, b in rows]

    # dedup
    def seen(self, msg_id: str) -> bool:
        with self._lock:
            return (
                self._db.execute("SELECT 1 FROM seen WHERE msg_id=?", (msg_id,)).fetchone()
                is not None
            )

    def mark_seen(self, msg_id: str, now: float) -> None:
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)", (msg_id, now))

    def forget_seen(self, before: float) -> None:
        with self._lock:
            self._db.execute("DELETE FROM seen WHERE at < ?", (before,))

    def close(self) -> None:
        with self._lock:
            self._db.close()
