"""The audit record format: canonical JSON lines, hash-chained, metadata only.

See :mod:`bridge.relay.audit` for the format and why; this module builds, checks and parses
one record, and is shared by the writer and the verifier (:mod:`bridge.relay.audit_verify`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "GENESIS",
    "HASH_RE",
    "NAME_RE",
    "Scalar",
    "canonical",
    "check_fields",
    "digest",
    "parse_record",
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
NAME_RE: Final = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
HASH_RE: Final = re.compile(r"[0-9a-f]{64}")
_MAX_STR: Final = 512
_KEYS: Final = frozenset({"seq", "time", "event", "fields", "prev", "hash"})

Scalar = str | int | float | bool | None


def canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def digest(record: dict[str, Any]) -> str:
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k != "hash"})).hexdigest()


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
        if not NAME_RE.fullmatch(lowered):
            raise ValueError(f"audit field name {name!r} is not a plain identifier")
        _check_value(name, value)


def parse_record(line: bytes) -> dict[str, Any]:
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
        if not isinstance(record[name], str) or not HASH_RE.fullmatch(record[name]):
            raise ValueError(f"bad {name}")
    if canonical(record) != line:
        raise ValueError("not in canonical form")
    return record
