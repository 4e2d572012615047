"""The relay's audit log: append-only, hash-chained, metadata only, one JSON object a line.

Each line is the canonical JSON (sorted keys, no spaces, ASCII) of one record::

    {"event": "floor.granted", "fields": {"channel": "c1", "device": "us-cbp/r7"},
     "hash": "…", "prev": "…", "seq": 12, "time": 1718000000.25}

``seq`` counts from 1 and equals the line number. ``prev`` is the ``hash`` of the record
before; the first record's ``prev`` is the *anchor*, 64 zeros by default (or the head of
the previous file when logs are rotated). ``hash`` is SHA-256 over the canonical JSON of
the record without ``hash``. Editing, dropping, inserting or reordering records, or a
last line cut short, therefore breaks the chain at a record :func:`verify_file` names.
Removing whole records from the *end* is only visible against a head recorded elsewhere:
:attr:`AuditLog.head` and :attr:`VerifyResult.head` exist so an operator can do that.

Only metadata goes in: device, channel and message ids, sizes, floor holders, reasons.
Field names that look like content or key material are refused, and values are limited
to short scalars (or lists of them), so nobody can log a message body by accident.

Every append is written with one ``write`` on an ``O_APPEND`` descriptor and fsynced
before :meth:`AuditLog.append` returns. The file is locked (``flock``) against a second
writer. On reopen the chain head is recovered from the last line, and a file whose last
record is torn or does not hash is refused: the operator runs ``crossband audit verify``.
"""

from __future__ import annotations

import fcntl
import math
import os
import queue
import threading
from pathlib import Path
from typing import Any, Final

from bridge.errors import AuditLogError
from bridge.relay.audit_format import (
    GENESIS,
    HASH_RE,
    NAME_RE,
    Scalar,
    canonical,
    check_fields,
    digest,
    parse_record,
)
from bridge.relay.audit_verify import VerifyResult, verify_command, verify_file

__all__ = [
    "GENESIS",
    "AuditLog",
    "BackgroundAuditLog",
    "VerifyResult",
    "check_fields",
    "verify_file",
    "verify_command",
]

_TAIL_CHUNK: Final = 8192


class AuditLog:
    """An open audit file. ``append`` is thread-safe and durable when it returns."""

    def __init__(self, path: str | Path, anchor: str = GENESIS) -> None:
        if not HASH_RE.fullmatch(anchor):
            raise ValueError("anchor must be 64 lowercase hex digits")
        self.path = Path(path)
        self._lock = threading.Lock()
        self._torn = False  # a failed write may have left a partial line past ``_size``
        self.failures = 0  # writes that failed
        self._last_failed = False
        created = not self.path.exists()
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise AuditLogError(f"{self.path} is open in another process (locked)")
            if created:
                _fsync_dir(self.path.parent)
            self._seq, self._head = self._recover(anchor)
            self._size = os.fstat(self._fd).st_size
        except BaseException:
            os.close(self._fd)
            raise

    @property
    def head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the last record; ``(0, anchor)`` for an empty log."""
        return self._seq, self._head

    @property
    def failing(self) -> bool:
        """True after a failed write, until a write succeeds again."""
        return self._torn or self._last_failed

    def append(self, event: str, now: float, **fields: Scalar | list[Scalar]) -> int:
        """Write one record and fsync it. Returns its seq."""
        if not isinstance(event, str) or not NAME_RE.fullmatch(event):
            raise ValueError("event must be a short lowercase identifier")
        if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
            raise ValueError("now must be a finite number")
        check_fields(fields)
        with self._lock:
            if self._torn and not self._repair():
                self.failures += 1
                self._last_failed = True
                raise AuditLogError(f"{self.path}: an earlier write left a torn record")
            record: dict[str, Any] = {
                "seq": self._seq + 1,
                "time": now,
                "event": event,
                "fields": dict(fields),
                "prev": self._head,
            }
            record["hash"] = digest(record)
            line = canonical(record) + b"\n"
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(self._fd, view) :]
                os.fsync(self._fd)
            except OSError as exc:
                # The record is not written. Cut any partial line off so the chain can go on
                # from the last good record; if even that fails, refuse until it works.
                self.failures += 1
                self._last_failed = True
                self._torn = True
                self._repair()
                raise AuditLogError(f"{self.path}: {exc.strerror or exc}") from exc
            self._seq, self._head = record["seq"], record["hash"]
            self._size += len(line)
            self._last_failed = False
            return self._seq

    def _repair(self) -> bool:
        try:
            os.ftruncate(self._fd, self._size)
            os.fsync(self._fd)
        except OSError:
            return False
        self._torn = False
        return True

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)  # releases the flock
                self._fd = -1

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _recover(self, anchor: str) -> tuple[int, str]:
        size = os.fstat(self._fd).st_size
        if size == 0:
            return 0, anchor
        if os.pread(self._fd, 1, size - 1) != b"\n":
            raise AuditLogError(f"{self.path}: last record is truncated (corrupt)")
        tail, position = b"", size
        while position > 0 and b"\n" not in tail[:-1]:
            step = min(_TAIL_CHUNK, position)
            position -= step
            tail = os.pread(self._fd, step, position) + tail
        last = tail[:-1].rsplit(b"\n", 1)[-1]
        try:
            record = parse_record(last)
        except ValueError as exc:
            raise AuditLogError(f"{self.path}: last record: {exc} (corrupt)") from None
        if digest(record) != record["hash"]:
            raise AuditLogError(f"{self.path}: last record does not hash (corrupt)")
        return int(record["seq"]), str(record["hash"])


class BackgroundAuditLog:
    """An :class:`AuditLog` written by one thread of its own, in submission order.

    The relay must not stall voice for an fsync per floor event (about 4 ms here), so
    :meth:`append` validates the record at once (a forbidden field still raises in the
    caller) and queues it; the writer thread chains, writes and fsyncs. The price: a record
    can trail the event it describes by a few milliseconds, and a crash loses at most the
    records still queued. :meth:`close` writes everything queued before it returns.

    A write that fails is not skipped: the writer keeps the record and tries it again (after
    ``retry`` seconds, doubling up to ``max_retry``), so the log stays complete and in order
    once the disk recovers. Meanwhile :attr:`failing` is true (the relay's ``/healthz`` answers
    503, and in fail-closed mode it refuses audited requests), :attr:`failures` counts the
    failed writes and, past ``max_pending`` queued records, new ones are dropped and counted
    in :attr:`dropped`.
    """

    def __init__(
        self,
        path: str | Path,
        anchor: str = GENESIS,
        *,
        retry: float = 0.5,
        max_retry: float = 5.0,
        max_pending: int = 100_000,
    ) -> None:
        self._log = AuditLog(path, anchor)
        self._queue: queue.Queue[tuple[str, float, dict[str, Any]] | None] = queue.Queue(
            max_pending
        )
        self._retry, self._max_retry = retry, max_retry
        self._closing = threading.Event()
        self.failing = False
        self.dropped = 0
        self._thread = threading.Thread(target=self._write, name="audit", daemon=True)
        self._thread.start()

    @property
    def path(self) -> Path:
        return self._log.path

    @property
    def failures(self) -> int:
        return self._log.failures

    def append(self, event: str, now: float, **fields: Scalar | list[Scalar]) -> None:
        if not isinstance(event, str) or not NAME_RE.fullmatch(event):
            raise ValueError("event must be a short lowercase identifier")
        check_fields(fields)
        try:
            self._queue.put_nowait((event, now, fields))
        except queue.Full:
            self.dropped += 1
            raise AuditLogError(f"{self.path}: {self.dropped} records dropped, writes failing")

    def _write(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            delay = self._retry
            while True:
                try:
                    self._log.append(item[0], item[1], **item[2])
                except ValueError:
                    break  # refused in the caller already; cannot happen here
                except AuditLogError:
                    self.failing = True
                    if self._closing.wait(delay):
                        self.dropped += 1  # closing: one attempt per record left
                        break
                    delay = min(delay * 2, self._max_retry)
                    continue
                self.failing = False
                break

    def close(self) -> None:
        if self._thread.is_alive():
            self._closing.set()
            self._queue.put(None)
            self._thread.join()
        self._log.close()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
