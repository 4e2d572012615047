"""What one field of a control message may hold: the value kinds of the message table.

Each kind is a small frozen object with ``accepts(value) -> bool`` and a ``describe`` hint for
the error (the hint names the rule, never the value). They check type and range only; what a
value means (is this channel ours, is this base64 a valid commit) is for the handler.

Every text kind refuses control characters and lone surrogates (``str.isprintable``): such
strings could not be stored in SQLite, written to the audit log or shown to an operator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, Protocol

from crypto.identity import DEVICE_ID_RE
from crypto.strict_json import INT_MAX

__all__ = [
    "BASE64",
    "CHANNEL_ID",
    "DEVICE_ID",
    "EPOCH",
    "MESSAGE_ID",
    "NONCE",
    "OBJECT",
    "PRIORITY",
    "REQUEST_ID",
    "SEQUENCE",
    "AnyOf",
    "Base64Text",
    "FieldSpec",
    "Integer",
    "ListOf",
    "Object",
    "OneOf",
    "Pattern",
    "Text",
]


class FieldSpec(Protocol):
    @property
    def describe(self) -> str: ...

    def accepts(self, value: Any) -> bool: ...


@dataclass(frozen=True, slots=True)
class Text:
    """A printable string of ``min_len`` to ``max_len`` characters."""

    max_len: int
    min_len: int = 1

    @property
    def describe(self) -> str:
        return f"{self.min_len}-{self.max_len} printable characters"

    def accepts(self, value: Any) -> bool:
        return (
            isinstance(value, str)
            and self.min_len <= len(value) <= self.max_len
            and value.isprintable()
        )


@dataclass(frozen=True, slots=True)
class Pattern:
    """A string that matches ``regex`` in full."""

    regex: re.Pattern[str]
    what: str

    @property
    def describe(self) -> str:
        return self.what

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and self.regex.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class Base64Text:
    """A string of base64 characters (its decoding is checked where it is used)."""

    @property
    def describe(self) -> str:
        return "base64 text"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and value.isascii()


@dataclass(frozen=True, slots=True)
class Integer:
    """An integer (not a bool) in ``low .. high``."""

    low: int
    high: int

    @property
    def describe(self) -> str:
        return f"an integer in {self.low}..{self.high}"

    def accepts(self, value: Any) -> bool:
        return type(value) is int and self.low <= value <= self.high


@dataclass(frozen=True, slots=True)
class OneOf:
    """One of a few fixed strings."""

    values: frozenset[str]

    @property
    def describe(self) -> str:
        return "one of " + ", ".join(sorted(self.values))

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.values


@dataclass(frozen=True, slots=True)
class Object:
    """A JSON object (decoded further by the handler, e.g. a credential)."""

    @property
    def describe(self) -> str:
        return "an object"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, dict)


@dataclass(frozen=True, slots=True)
class ListOf:
    """A list of at most ``max_items`` values, each accepted by ``item``."""

    item: FieldSpec
    max_items: int

    @property
    def describe(self) -> str:
        return f"a list of at most {self.max_items} items, each {self.item.describe}"

    def accepts(self, value: Any) -> bool:
        return (
            isinstance(value, list)
            and len(value) <= self.max_items
            and all(self.item.accepts(v) for v in value)
        )


@dataclass(frozen=True, slots=True)
class AnyOf:
    """A value accepted by any of ``options``."""

    options: tuple[FieldSpec, ...]

    @property
    def describe(self) -> str:
        return " or ".join(o.describe for o in self.options)

    def accepts(self, value: Any) -> bool:
        return any(o.accepts(value) for o in self.options)


# The kinds the message table uses.
CHANNEL_ID: Final = Text(128)  # the same rule as a commit's channel id (crypto.channel)
MESSAGE_ID: Final = Text(128)
NONCE: Final = Text(256)
BASE64: Final = Base64Text()
OBJECT: Final = Object()
SEQUENCE: Final = Integer(0, INT_MAX)
EPOCH: Final = Integer(1, INT_MAX)
PRIORITY: Final = OneOf(frozenset({"normal", "high", "emergency"}))
DEVICE_ID: Final = Pattern(DEVICE_ID_RE, "a device id (agency/name)")
REQUEST_ID: Final = AnyOf((Text(128), Integer(-INT_MAX, INT_MAX)))
