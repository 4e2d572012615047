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
import hashlib
import json
import math
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bridge.errors import RelayError

__all__ = [
    "GENESIS",
    "AuditLog",
    "BackgroundAuditLog",
    "VerifyResult",
    "check_fields",
    "verify_file",
    "verify_command",
]

GENESIS: Final = "0" * 64
_FORBIDDEN: Final = (
    "content",
    "plaintext",
    "cleartext",
    "body",
    "key",
    "secret",
    "password",
    "passphrase",
    "payload",
    "private",
    "token",
)
_NAME: Final = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
_HASH: Final = re.compile(r"[0-9a-f]{64}")
_MAX_STR: Final = 512
_KEYS: Final = frozenset({"seq", "time", "event", "fields", "prev", "hash"})
_TAIL_CHUNK: Final = 8192

Scalar = str | int | float | bool | None


def _canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def _digest(record: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical({k: v for k, v in record.items() if k != "hash"})).hexdigest()


def _check_value(name: str, value: object) -> None:
    if isinstance(value, list):
        for item in value:
            if isinstance(item, list):
                raise ValueError(f"audit field {name!r}: lists may not nest")
            _check_value(name, item)
        return
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"audit field {name!r}: not a finite number")
        return
    if isinstance(value, str):
        if len(value) > _MAX_STR:
            raise ValueError(f"audit field {name!r}: string longer than {_MAX_STR}")
        return
    raise ValueError(f"audit field {name!r}: {type(value).__name__} is not metadata")


def check_fields(fields: Mapping[str, object]) -> None:
    """Refuse anything that is not plain metadata. Raises ValueError."""
    for name, value in fields.items():
        lowered = name.lower()
        if any(word in lowered for word in _FORBIDDEN):
            raise ValueError(f"audit field {name!r} looks like content or key material")
        if not _NAME.fullmatch(lowered):
            raise ValueError(f"audit field name {name!r} is not a plain identifier")
        _check_value(name, value)


def _parse(line: bytes) -> dict[str, Any]:
    """One record, structurally checked, or ValueError with a short reason."""
    try:
        record = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("not valid JSON") from None
    if not isinstance(record, dict) or set(record) != _KEYS:
        raise ValueError("not an audit record")
    seq, time, event, fields = record["seq"], record["time"], record["event"], record["fields"]
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise ValueError("bad seq")
    if isinstance(time, bool) or not isinstance(time, int | float):
        raise ValueError("bad time")
    if not isinstance(event, str) or not isinstance(fields, dict):
        raise ValueError("bad event or fields")
    for name in ("prev", "hash"):
        if not isinstance(record[name], str) or not _HASH.fullmatch(record[name]):
            raise ValueError(f"bad {name}")
    if _canonical(record) != line:
        raise ValueError("not in canonical form")
    return record


class AuditLog:
    """An open audit file. ``append`` is thread-safe and durable when it returns."""

    def __init__(self, path: str | Path, anchor: str = GENESIS) -> None:
        if not _HASH.fullmatch(anchor):
            raise ValueError("anchor must be 64 lowercase hex digits")
        self.path = Path(path)
        self._lock = threading.Lock()
        self._failed = False
        created = not self.path.exists()
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RelayError("audit-log-locked", f"{self.path} is open in another process")
            if created:
                _fsync_dir(self.path.parent)
            self._seq, self._head = self._recover(anchor)
        except BaseException:
            os.close(self._fd)
            raise

    @property
    def head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the last record; ``(0, anchor)`` for an empty log."""
        return self._seq, self._head

    def append(self, event: str, now: float, **fields: Scalar | list[Scalar]) -> int:
        """Write one record and fsync it. Returns its seq."""
        if not isinstance(event, str) or not _NAME.fullmatch(event):
            raise ValueError("event must be a short lowercase identifier")
        if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
            raise ValueError("now must be a finite number")
        check_fields(fields)
        with self._lock:
            if self._failed:
                raise RelayError("audit-log-failed", "an earlier write failed; reopen the log")
            record: dict[str, Any] = {
                "seq": self._seq + 1,
                "time": now,
                "event": event,
                "fields": dict(fields),
                "prev": self._head,
            }
            record["hash"] = _digest(record)
            line = _canonical(record) + b"\n"
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(self._fd, view) :]
                os.fsync(self._fd)
            except OSError as exc:
                self._failed = True  # the tail may be torn: refuse to chain onto it
                raise RelayError("audit-log-failed", f"{self.path}: {exc.strerror}") from exc
            self._seq, self._head = record["seq"], record["hash"]
            return self._seq

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
            raise RelayError("audit-log-corrupt", f"{self.path}: last record is truncated")
        tail, position = b"", size
        while position > 0 and b"\n" not in tail[:-1]:
            step = min(_TAIL_CHUNK, position)
            position -= step
            tail = os.pread(self._fd, step, position) + tail
        last = tail[:-1].rsplit(b"\n", 1)[-1]
        try:
            record = _parse(last)
        except ValueError as exc:
            raise RelayError("audit-log-corrupt", f"{self.path}: last record: {exc}") from None
        if _digest(record) != record["hash"]:
            raise RelayError("audit-log-corrupt", f"{self.path}: last record does not hash")
        return int(record["seq"]), str(record["hash"])


class BackgroundAuditLog:
    """An :class:`AuditLog` written by one thread of its own, in submission order.

    The relay must not stall voice for an fsync per floor event (about 4 ms here), so
    :meth:`append` validates the record at once (a forbidden field still raises in the
    caller) and queues it; the writer thread chains, writes and fsyncs. The price: a record
    can trail the event it describes by a few milliseconds, and a crash loses at most the
    records still queued. :meth:`close` writes everything queued before it returns.
    """

    def __init__(self, path: str | Path, anchor: str = GENESIS) -> None:
        import queue

        self._log = AuditLog(path, anchor)
        self._queue: queue.SimpleQueue[tuple[str, float, dict[str, Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._write, name="audit", daemon=True)
        self._thread.start()
        self.failures = 0

    @property
    def path(self) -> Path:
        return self._log.path

    def append(self, event: str, now: float, **fields: Scalar | list[Scalar]) -> None:
        if not isinstance(event, str) or not _NAME.fullmatch(event):
            raise ValueError("event must be a short lowercase identifier")
        check_fields(fields)
        self._queue.put((event, now, fields))

    def _write(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            event, now, fields = item
            try:
                self._log.append(event, now, **fields)
            except (RelayError, ValueError):
                self.failures += 1

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._log.close()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    records: int  # records that verified before the first bad one (all of them if ok)
    first_bad: int | None  # 1-based record (= line) number of the first bad record
    reason: str
    head: str | None = None  # hash of the last good record, to compare with a saved head


def verify_file(path: str | Path, anchor: str = GENESIS) -> VerifyResult:
    """Check every record of an audit file and the chain between them."""
    previous, good = anchor, 0
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            reason, record = _check_line(raw, number, previous)
            if record is None:
                head = previous if good else None
                return VerifyResult(False, good, number, reason, head)
            previous, good = record["hash"], number
    return VerifyResult(True, good, None, "ok", previous if good else None)


def _check_line(raw: bytes, number: int, previous: str) -> tuple[str, dict[str, Any] | None]:
    """``("ok", record)`` if line ``number`` is the right next record, else ``(reason, None)``."""
    if not raw.endswith(b"\n"):
        return "truncated record", None
    try:
        record = _parse(raw[:-1])
    except ValueError as exc:
        return f"malformed record ({exc})", None
    if record["seq"] != number:
        return f"out of sequence (seq {record['seq']} at record {number})", None
    if record["prev"] != previous:
        return "chain broken (prev is not the hash of the record before)", None
    if _digest(record) != record["hash"]:
        return "hash mismatch (record was altered)", None
    return "ok", record


def verify_command(path: str) -> int:
    """``crossband audit verify FILE``: one line for a human, exit status 0 or 1."""
    try:
        result = verify_file(path)
    except OSError as exc:
        print(f"{path}: cannot read: {exc.strerror}")
        return 1
    if result.ok:
        head = f", head {result.head}" if result.head else ""
        print(f"{path}: OK, {result.records} records, chain intact{head}")
        return 0
    print(f"{path}: FAILED at record {result.first_bad}: {result.reason}")
    return 1
