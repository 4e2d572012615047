"""An endpoint's durable state: commits, send counters, replay marks, seen message ids.

One SQLite file per endpoint (WAL, ``synchronous=FULL``) so that a restart neither loses
membership nor reuses an SFrame counter: :meth:`EndpointState.reserve` is the
:class:`~crypto.counters.CounterStore` hook and is durable when it returns. Commit bundles are
kept as received (the epoch secret inside is sealed to this device's HPKE key, so the file holds
no key in the clear); on start the endpoint re-verifies and re-opens them. A commit kept only as
a chain link (authentic, but refused: see :mod:`bridge.endpoint.chain`) is stored with the code
of its refusal, so a restart restores it as a link again and never derives keys from it.
Message ids already handed to the application are remembered so a redelivery after a crash is
dropped, for as long as the relay could redeliver them (:mod:`bridge.endpoint.seen` prunes):
the relay's delivery ids, and — what a replay cannot change — each signed item's (sender, kind,
inner id). Per voice KID a replay high-water mark (:attr:`EndpointState.replay_marks`, reserved
ahead like the counters, see :mod:`crypto.replay`) keeps a frame heard before a restart from
playing again after it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bridge.errors import StoreError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS commits (channel TEXT, epoch INTEGER, bundle BLOB, refused TEXT,
                                    PRIMARY KEY (channel, epoch));
CREATE TABLE IF NOT EXISTS counters (label TEXT PRIMARY KEY, upto INTEGER);
CREATE TABLE IF NOT EXISTS seen (msg_id TEXT PRIMARY KEY, at REAL);
CREATE INDEX IF NOT EXISTS seen_at ON seen (at);
CREATE TABLE IF NOT EXISTS replay (label TEXT PRIMARY KEY, upto TEXT);
CREATE TABLE IF NOT EXISTS inner_seen (sender TEXT, kind TEXT, id TEXT, at REAL,
                                       PRIMARY KEY (sender, kind, id));
CREATE INDEX IF NOT EXISTS inner_seen_at ON inner_seen (at);
"""
KEEP_COMMITS = 2


class EndpointState:
    """Every failure of the database is a :class:`~bridge.errors.StoreError` naming the file
    (a full disk, an I/O error, a closed state); a failed write changes nothing."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        self._lock = threading.Lock()
        with self._guard():
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(commits)")}
            if "refused" not in columns:  # a state file from before chain links
                self._db.execute("ALTER TABLE commits ADD COLUMN refused TEXT")
        self._marks = ReplayMarks(self)

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        with self._lock:
            try:
                yield
            except sqlite3.Error as exc:
                raise StoreError(f"endpoint state {self.path}: {type(exc).__name__}") from None

    def _one(self, sql: str, args: tuple[object, ...]) -> tuple[Any, ...] | None:
        with self._guard():
            row: tuple[Any, ...] | None = self._db.execute(sql, args).fetchone()
        return row

    def _write(self, sql: str, args: tuple[object, ...]) -> None:
        with self._guard():
            self._db.execute(sql, args)

    # CounterStore
    def load(self, label: str) -> int:
        with self._guard():
            row = self._db.execute("SELECT upto FROM counters WHERE label=?", (label,)).fetchone()
        return int(row[0]) if row else 0

    def reserve(self, label: str, upto: int) -> None:
        """Durable when it returns (``synchronous=FULL``): a counter below is never reused."""
        with self._guard():
            self._db.execute(
                "INSERT INTO counters VALUES (?, ?) ON CONFLICT(label) DO UPDATE SET upto=?",
                (label, upto, upto),
            )

    @property
    def replay_marks(self) -> ReplayMarks:
        """The listener's replay marks, a :class:`~crypto.counters.CounterStore` of their own
        (never the send counters: a mark must not lower a counter reservation)."""
        return self._marks

    # commits
    def save_commit(
        self, channel: str, epoch: int, bundle: bytes, refused: str | None = None
    ) -> None:
        """Keep a verified commit, or with ``refused`` (its refusal code) a chain link."""
        with self._guard():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO commits VALUES (?, ?, ?, ?)",
                    (channel, epoch, bundle, refused),
                )
                self._db.execute(
                    "DELETE FROM commits WHERE channel=? AND epoch <= ?",
                    (channel, epoch - KEEP_COMMITS),
                )
                self._db.execute("COMMIT")
            except sqlite3.Error:
                self._db.execute("ROLLBACK")
                raise

    def commits(self) -> list[tuple[str, int, bytes, str | None]]:
        """(channel, epoch, bundle, refusal code or None), oldest first per channel."""
        with self._guard():
            rows = self._db.execute(
                "SELECT channel, epoch, bundle, refused FROM commits ORDER BY channel, epoch"
            ).fetchall()
        return [(str(c), int(e), bytes(b), None if r is None else str(r)) for c, e, b, r in rows]

    # dedup
    def seen(self, msg_id: str) -> bool:
        with self._guard():
            row = self._db.execute("SELECT 1 FROM seen WHERE msg_id=?", (msg_id,)).fetchone()
        return row is not None

    def mark_seen(self, msg_id: str, now: float) -> None:
        self._write("INSERT OR IGNORE INTO seen VALUES (?, ?)", (msg_id, now))

    def seen_inner(self, sender: str, kind: str, inner_id: str) -> bool:
        """Whether ``sender``'s signed ``kind`` (message / seal) ``inner_id`` was handled."""
        sql = "SELECT 1 FROM inner_seen WHERE sender=? AND kind=? AND id=?"
        return self._one(sql, (sender, kind, inner_id)) is not None

    def mark_seen_inner(self, sender: str, kind: str, inner_id: str, now: float) -> None:
        sql = "INSERT OR IGNORE INTO inner_seen VALUES (?, ?, ?, ?)"
        self._write(sql, (sender, kind, inner_id, now))

    def forget_seen(self, before: float) -> None:
        """Forget the ids (relay and inner) first seen before ``before``."""
        with self._guard():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM seen WHERE at < ?", (before,))
                self._db.execute("DELETE FROM inner_seen WHERE at < ?", (before,))
                self._db.execute("COMMIT")
            except sqlite3.Error:
                self._db.execute("ROLLBACK")
                raise

    def oldest_seen(self) -> float | None:
        """When the oldest remembered id was first seen (None: none is)."""
        sql = "SELECT MIN(at) FROM (SELECT at FROM seen UNION ALL SELECT at FROM inner_seen)"
        row = self._one(sql, ())
        return None if row is None or row[0] is None else float(row[0])

    def close(self) -> None:
        with self._guard():
            self._db.close()


class ReplayMarks:
    """Per-KID replay high-water marks in the state file (a CounterStore): a mark only rises,
    and is durable when :meth:`reserve` returns."""

    def __init__(self, state: EndpointState) -> None:
        self._state = state

    def load(self, label: str) -> int:
        row = self._state._one("SELECT upto FROM replay WHERE label=?", (label,))
        return int(row[0]) if row else 0

    def reserve(self, label: str, upto: int) -> None:
        """A mark runs up to 2**64, past SQLite's integers: it is kept as 20 decimal digits,
        zero-padded, so that text order is number order and ``MAX`` keeps the higher."""
        if not 0 <= upto <= 1 << 64:
            raise ValueError("replay mark out of range")
        self._state._write(
            "INSERT INTO replay VALUES (?, ?) ON CONFLICT(label) DO UPDATE SET upto=MAX(upto, ?)",
            (label, f"{upto:020d}", f"{upto:020d}"),
        )
