"""``crossband audit verify``: check every record of an audit file and the chain between them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.relay.audit_format import GENESIS, digest, parse_record

__all__ = ["VerifyResult", "verify_command", "verify_file"]


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
        record = parse_record(raw[:-1])
    except ValueError as exc:
        return f"malformed record ({exc})", None
    if record["seq"] != number:
        return f"out of sequence (seq {record['seq']} at record {number})", None
    if record["prev"] != previous:
        return "chain broken (prev is not the hash of the record before)", None
    if digest(record) != record["hash"]:
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
