"""Strict, bounded JSON reading: the one way peer-supplied JSON is parsed (statements, signed
payloads, control messages).

:func:`loads` refuses, with :class:`JsonRefused` and a fixed, content-free reason:

* bytes that are not UTF-8 (no UTF-16/32 guessing), and text holding lone surrogates, raw or
  escaped (``"\\ud800"``): they cannot be written to a database, a log or a canonical body;
* nesting deeper than ``max_depth`` (the top level counts as 1). Python's own parser recurses,
  so a few kilobytes of ``[`` raise ``RecursionError``; here that and anything merely deep
  become a refusal, and no later walk over the value can recurse far;
* ``NaN``, ``Infinity``, ``-Infinity`` and floats that overflow to infinity; every float when
  ``floats=False`` (canonical statements carry none);
* integers outside the signed 64-bit range (what SQLite and ``struct`` take);
* an object with the same key twice (two readers could disagree about which one counts).

How: the C parser does the parsing (with a hook per object for duplicate keys), then one
breadth-first walk over the result checks depth and every key and scalar. A parser that
recursed past the interpreter's limit is caught and refused too.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

__all__ = ["INT_MAX", "INT_MIN", "MAX_DEPTH", "JsonRefused", "loads"]

MAX_DEPTH: Final = 16
INT_MIN: Final = -(2**63)
INT_MAX: Final = 2**63 - 1

_SURROGATE = re.compile("[\ud800-\udfff]")


class JsonRefused(ValueError):
    """The input is not strict JSON. ``str()`` is a fixed reason that never quotes the input."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise JsonRefused("duplicate key")
    return obj


# Built once: json.loads(text, **hooks) would build a decoder on every call.
_DECODER: Final = json.JSONDecoder(object_pairs_hook=_unique_keys)


def _refuse_scalar(value: Any, floats: bool) -> None:
    """Raise JsonRefused if the scalar ``value`` is not allowed (see check_value)."""
    kind = type(value)
    if kind is str:
        # isascii() is O(1) in CPython; only non-ASCII text needs the search.
        if not value.isascii() and _SURROGATE.search(value):
            raise JsonRefused("lone surrogate")
    elif kind is int:
        if not INT_MIN <= value <= INT_MAX:
            raise JsonRefused("integer out of range")
    elif kind is float and (not floats or not math.isfinite(value)):
        # NaN, Infinity and overflowing literals (1e999) all parse to non-finite floats.
        raise JsonRefused("float out of range" if floats else "floats are not allowed")


def check_value(value: Any, *, max_depth: int = MAX_DEPTH, floats: bool = True) -> None:
    """Raise JsonRefused unless parsed JSON ``value`` nests at most ``max_depth`` containers
    deep and every key and scalar in it is allowed. Breadth first, one level per round: no
    recursion, each value visited once. (The common cases, ASCII strings and small integers,
    are tested inline: this walk runs on every control message.)"""
    if type(value) is not dict and type(value) is not list:
        _refuse_scalar(value, floats)
        return
    level: list[Any] = [value]
    depth = 0
    while level:
        depth += 1
        if depth > max_depth:
            raise JsonRefused("nested too deeply")
        deeper: list[Any] = []
        for container in level:
            if type(container) is dict:
                for key in container:
                    if not key.isascii():
                        _refuse_scalar(key, floats)
                items = container.values()
            else:
                items = container
            for item in items:
                kind = type(item)
                if kind is str:
                    if not item.isascii():
                        _refuse_scalar(item, floats)
                elif kind is dict or kind is list:
                    deeper.append(item)
                elif kind is not int or not INT_MIN <= item <= INT_MAX:
                    _refuse_scalar(item, floats)  # floats, None, bools: cheap or refused
        level = deeper


def loads(data: str | bytes | bytearray, *, max_depth: int = MAX_DEPTH, floats: bool = True) -> Any:
    """Parse ``data`` as strict JSON (see the module docstring); raise JsonRefused otherwise."""
    if isinstance(data, bytes | bytearray):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise JsonRefused("not UTF-8") from None
    elif isinstance(data, str):
        text = data
    else:
        raise JsonRefused("not text")
    try:
        value = _DECODER.decode(text)
    except JsonRefused:
        raise
    except RecursionError:
        raise JsonRefused("nested too deeply") from None
    except ValueError:  # JSONDecodeError, and int() past sys.get_int_max_str_digits
        raise JsonRefused("not JSON") from None
    check_value(value, max_depth=max_depth, floats=floats)
    return value
