"""Canonical encoding of signed statements.

Every signed object (credential, agreement, revocation list, commit, message, burst seal) is
encoded as canonical JSON: UTF-8, keys sorted, no insignificant white space, ASCII only, no
floats (times are integer seconds). Binary fields are base64url without padding. The bytes that
are signed are ``domain || 0x00 || canonical(body)`` where ``domain`` names the statement type
and protocol version, so a signature over one kind of statement can never be replayed as
another.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from .errors import Refusal, VerificationError

MAX_STATEMENT = 4 * 1024 * 1024


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: str) -> bytes:
    if not isinstance(text, str):
        raise VerificationError(Refusal.MALFORMED, "expected base64url text")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise VerificationError(Refusal.MALFORMED, "bad base64url")


def _check(value: Any) -> None:
    if isinstance(value, float):
        raise ValueError("floats are not canonical; use integer seconds")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError("keys must be strings")
            _check(v)
    elif isinstance(value, list | tuple):
        for v in value:
            _check(v)


def canonical(obj: Any, *, checked: bool = True) -> bytes:
    """Return the canonical JSON encoding of ``obj`` (dicts, lists, str, int, bool, None).

    ``checked=False`` skips the walk that refuses floats: only for bodies built from typed,
    already validated fields (a credential's), where the walk was most of the cost.
    """
    if checked:
        _check(obj)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def signing_input(domain: str, body: Any, *, checked: bool = True) -> bytes:
    return domain.encode("ascii") + b"\x00" + canonical(body, checked=checked)


def parse(data: bytes) -> dict[str, Any]:
    """Parse a canonical statement; anything that is not a JSON object is refused."""
    if len(data) > MAX_STATEMENT:
        raise VerificationError(Refusal.MALFORMED, "statement too large")
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise VerificationError(Refusal.MALFORMED, "not JSON")
    if not isinstance(obj, dict):
        raise VerificationError(Refusal.MALFORMED, "not an object")
    return obj


def field(obj: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    """Fetch a required field of the given type or refuse the statement as malformed."""
    if name not in obj:
        raise VerificationError(Refusal.MALFORMED, f"missing field {name!r}")
    value = obj[name]
    if kind is int and isinstance(value, bool):
        raise VerificationError(Refusal.MALFORMED, f"field {name!r} has the wrong type")
    if not isinstance(value, kind):
        raise VerificationError(Refusal.MALFORMED, f"field {name!r} has the wrong type")
    return value
