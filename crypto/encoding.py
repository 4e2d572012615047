"""Canonical encoding of signed statements.

Every signed object (credential, agreement, revocation list, commit, message, burst seal) is
encoded as canonical JSON: UTF-8, keys sorted, no insignificant white space, ASCII only, no
floats (times are integer seconds). Binary fields are base64url without padding. The bytes that
are signed are ``domain || 0x00 || canonical(body)`` where ``domain`` names the statement type
and protocol version, so a signature over one kind of statement can never be replayed as
another.

Reading is strict (DESIGN §4a): :func:`parse` goes through :mod:`crypto.strict_json` (UTF-8,
bounded depth, no floats, 64-bit integers, no duplicate keys, no lone surrogates), :func:`b64d`
accepts only the one base64url spelling :func:`b64e` produces, and :func:`field` refuses
integers outside the signed 64-bit range. Every refusal is a
``VerificationError(Refusal.MALFORMED)`` with a reason that never quotes the input, and
:func:`parse` raises nothing else whatever the input: however deep the nesting, no
``RecursionError`` reaches its callers (strict_json refuses deep input, and :func:`parse`
turns one into a refusal should any part of the reading recurse too far), so the decoders built
on it need no catch of their own.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from .errors import Refusal, VerificationError
from .strict_json import INT_MAX, INT_MIN, JsonRefused, loads

MAX_STATEMENT = 4 * 1024 * 1024


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: str) -> bytes:
    """Decode unpadded base64url; anything but the canonical spelling of some bytes (other
    characters, padding, non-zero trailing bits) is refused, so decode→encode is the identity."""
    if not isinstance(text, str):
        raise VerificationError(Refusal.MALFORMED, "expected base64url text")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise VerificationError(Refusal.MALFORMED, "bad base64url") from None
    if b64e(data) != text:
        raise VerificationError(Refusal.MALFORMED, "bad base64url")
    return data


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
    """Parse a statement; anything that is not a strict JSON object is refused (MALFORMED)."""
    if not isinstance(data, bytes | bytearray):
        raise VerificationError(Refusal.MALFORMED, "statement must be bytes")
    if len(data) > MAX_STATEMENT:
        raise VerificationError(Refusal.MALFORMED, "statement too large")
    try:
        obj = loads(data, floats=False)
    except JsonRefused as exc:
        raise VerificationError(Refusal.MALFORMED, str(exc)) from None
    except RecursionError:  # strict_json refuses deep input; this covers any reader below it
        raise VerificationError(Refusal.MALFORMED, "nested too deeply") from None
    if not isinstance(obj, dict):
        raise VerificationError(Refusal.MALFORMED, "not an object")
    return obj


def field(obj: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    """Fetch a required field of the given type or refuse the statement as malformed.

    An ``int`` field must not be a bool and must fit in a signed 64-bit integer."""
    if not isinstance(obj, dict):
        raise VerificationError(Refusal.MALFORMED, "expected an object")
    if name not in obj:
        raise VerificationError(Refusal.MALFORMED, f"missing field {name!r}")
    value = obj[name]
    if kind is int and isinstance(value, bool):
        raise VerificationError(Refusal.MALFORMED, f"field {name!r} has the wrong type")
    if not isinstance(value, kind):
        raise VerificationError(Refusal.MALFORMED, f"field {name!r} has the wrong type")
    if isinstance(value, int) and not isinstance(value, bool) and not INT_MIN <= value <= INT_MAX:
        raise VerificationError(Refusal.MALFORMED, f"field {name!r} is out of range")
    return value


def text_field(obj: dict[str, Any], name: str, *, max_len: int, min_len: int = 1) -> str:
    """A required string field of printable characters (no control characters, no lone
    surrogates), ``min_len`` to ``max_len`` long; otherwise the statement is malformed."""
    value: str = field(obj, name, str)
    if not min_len <= len(value) <= max_len or not value.isprintable():
        raise VerificationError(
            Refusal.MALFORMED, f"field {name!r} must be {min_len}-{max_len} printable characters"
        )
    return value


def int_list(obj: dict[str, Any], name: str) -> list[int]:
    """A required list of 64-bit integers (no bools)."""
    values: list[Any] = field(obj, name, list)
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool) or not INT_MIN <= v <= INT_MAX:
            raise VerificationError(Refusal.MALFORMED, f"field {name!r} must hold integers")
    return values
