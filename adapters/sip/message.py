"""SIP messages (RFC 3261 §7, §20, §25): parse and serialize, no I/O.

:func:`parse_message` takes one datagram (or one framed stream message) and returns a
:class:`SipRequest` or :class:`SipResponse`, or raises :class:`SipError` — and nothing else (the
fuzz tests hold it to that). A :class:`SipError` carries a ``code`` (a short fixed word saying
which rule broke), the SIP ``status`` to answer with (400 unless said otherwise) and, when the
start line and the headers a response needs were readable, the ``partial`` message, so the
core can still answer a broken request with a 400 (RFC 3261 §8.2, §21.4.1). Neither the code
nor the message ever echoes the peer's bytes.

Parsing follows RFC 3261 §7.3.1 and the torture cases of RFC 4475: header names are
case-insensitive and compact forms (``v``, ``i``, ``f``, ``t``, ``m``, ``l``, ``c``, ``k``,
``s``, ``e``, ``o``, ``u``, ``r``) are expanded to their full names; folded lines (a line
starting with SP/HT) are joined; values are trimmed; a header whose value is a comma-separated
list (``Via: a, b``) is read as several by :meth:`SipMessage.values`, which respects quotes
and ``<…>``. ``Content-Length`` decides the body (§18.3: a longer datagram is truncated to it,
a shorter one is an error); without it a datagram's body is the rest. Sizes are bounded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from adapters.errors import AdapterError

__all__ = [
    "MAX_HEADERS",
    "MAX_MESSAGE",
    "SipError",
    "SipMessage",
    "SipRequest",
    "SipResponse",
    "canonical_name",
    "header_params",
    "parse_message",
    "split_list",
]

MAX_MESSAGE = 65_535  # bytes: the most a UDP datagram holds
MAX_HEADERS = 128
MAX_LINE = 8192
MAX_BODY = 32_768
REQUIRED = ("Via", "From", "To", "Call-ID", "CSeq")  # §8.1.1 (Max-Forwards tolerated absent)

_COMPACT = {
    "a": "Accept-Contact", "b": "Referred-By", "c": "Content-Type", "d": "Request-Disposition",
    "e": "Content-Encoding", "f": "From", "i": "Call-ID", "j": "Reject-Contact",
    "k": "Supported", "l": "Content-Length", "m": "Contact", "o": "Event", "r": "Refer-To",
    "s": "Subject", "t": "To", "u": "Allow-Events", "v": "Via", "x": "Session-Expires",
}  # fmt: skip
_CANON = {
    n.lower(): n
    for n in (
        "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Max-Forwards", "Content-Length",
        "Content-Type", "Route", "Record-Route", "Allow", "Supported", "Require", "Expires",
        "WWW-Authenticate", "Authorization", "Proxy-Authenticate", "Proxy-Authorization",
        "User-Agent", "Server", "Accept", "Unsupported", "Subject", "Event", "Allow-Events",
        "Content-Encoding", "Refer-To", "Session-Expires", "Min-Expires", "Retry-After",
    )
}  # fmt: skip
_TOKEN = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_VERSION = "SIP/2.0"
_LIST_HEADERS = {"Via", "Route", "Record-Route", "Contact", "Allow", "Supported", "Require"}


class SipError(AdapterError):
    """A malformed SIP message (see the module docstring): ``code`` names the rule that broke,
    ``status`` is the response to send, ``partial`` the readable part (or None)."""

    def __init__(self, code: str, status: int = 400, partial: SipMessage | None = None) -> None:
        self.code = code
        self.status = status
        self.partial = partial
        super().__init__(f"malformed SIP message: {code}")


def canonical_name(name: str) -> str:
    """The full, conventionally capitalised name of a header (``i`` → ``Call-ID``)."""
    low = name.lower()
    if low in _COMPACT:
        return _COMPACT[low]
    return _CANON.get(low) or "-".join(p.capitalize() for p in low.split("-"))


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value, not inside quotes or ``<…>`` (§7.3.1)."""
    out: list[str] = []
    depth, quoted, escaped, start = 0, False, False, 0
    for i, ch in enumerate(value):
        if escaped:
            escaped = False
        elif quoted:
            escaped, quoted = ch == "\\", ch != '"'
        elif ch == '"':
            quoted = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(depth - 1, 0)
        elif ch == "," and depth == 0:
            out.append(value[start:i].strip())
            start = i + 1
    out.append(value[start:].strip())
    return [v for v in out if v]


def header_params(value: str) -> tuple[str, dict[str, str]]:
    """``<sip:a@b>;tag=x;lr`` → (``<sip:a@b>``, {``tag``: ``x``, ``lr``: ``""``}). Parameter
    names are lower-cased; ``;`` inside ``<…>`` or quotes belongs to the main part."""
    depth, quoted, escaped, cut = 0, False, False, len(value)
    for i, ch in enumerate(value):
        if escaped:
            escaped = False
        elif quoted:
            escaped, quoted = ch == "\\", ch != '"'
        elif ch == '"':
            quoted = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif depth == 0 and ch == ";":
            cut = i
            break
    params: dict[str, str] = {}
    for part in value[cut + 1 :].split(";") if cut < len(value) else []:
        name, _, val = part.partition("=")
        if name.strip():
            params[name.strip().lower()] = val.strip().strip('"')
    return value[:cut].strip(), params


@dataclass
class SipMessage:
    """Headers in order as (canonical name, value), and the body."""

    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def get(self, name: str) -> str | None:
        """The first value of ``name`` (a list header's first element), or None."""
        values = self.values(name)
        return values[0] if values else None

    def values(self, name: str) -> list[str]:
        """Every value of ``name`` in order, list headers split at their commas."""
        name = canonical_name(name)
        out: list[str] = []
        for n, v in self.headers:
            if n == name:
                out.extend(split_list(v) if n in _LIST_HEADERS else [v])
        return out

    def set(self, name: str, value: str) -> None:
        """Replace every ``name`` header by one with ``value``."""
        name = canonical_name(name)
        self.headers = [(n, v) for n, v in self.headers if n != name]
        self.headers.append((name, value))

    def add(self, name: str, value: str) -> None:
        self.headers.append((canonical_name(name), value))

    @property
    def call_id(self) -> str:
        return self.get("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        """(number, method) of the CSeq header."""
        number, _, method = (self.get("CSeq") or "").partition(" ")
        return int(number), method.strip()

    def _serialize(self, start: str) -> bytes:
        lines = [start]
        lines += [f"{n}: {v}" for n, v in self.headers if n != "Content-Length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


@dataclass
class SipRequest(SipMessage):
    method: str = ""
    uri: str = ""

    def serialize(self) -> bytes:
        return self._serialize(f"{self.method} {self.uri} {_VERSION}")


@dataclass
class SipResponse(SipMessage):
    status: int = 0
    reason: str = ""

    def serialize(self) -> bytes:
        return self._serialize(f"{_VERSION} {self.status} {self.reason}")


def _lines(head: str) -> list[str]:
    raw = head.replace("\r\n", "\n").split("\n")
    out: list[str] = []
    for line in raw:
        if len(line) > MAX_LINE:
            raise SipError("line_too_long")
        if line[:1] in (" ", "\t") and out:
            out[-1] = out[-1].rstrip() + " " + line.strip()  # folding (§7.3.1)
        else:
            out.append(line)
    return out


def _start_line(line: str) -> SipRequest | SipResponse:
    parts = line.split(" ", 2)
    if len(parts) != 3:
        raise SipError("bad_start_line")
    if parts[0].upper() == _VERSION:
        if not (parts[1].isdigit() and len(parts[1]) == 3 and 100 <= int(parts[1]) <= 699):
            raise SipError("bad_status_code")
        return SipResponse(status=int(parts[1]), reason=parts[2].strip())
    method, uri, version = parts
    if not _TOKEN.match(method) or version.strip().upper() != _VERSION:
        raise SipError("bad_start_line", 505 if version.startswith("SIP/") else 400)
    if not uri or " " in uri or ":" not in uri:
        raise SipError("bad_request_uri")
    return SipRequest(method=method, uri=uri)


def parse_message(data: bytes, *, stream: bool = False) -> SipRequest | SipResponse:
    """Parse one SIP message (module docstring); ``stream``: from TCP, where Content-Length
    is required (§18.3)."""
    if len(data) > MAX_MESSAGE:
        raise SipError("too_large", 513)
    data = data.lstrip(b"\r\n")  # keep-alive CRLFs before a message (RFC 5626 §3.5.1)
    cut = data.find(b"\r\n\r\n")
    sep = 4
    if cut < 0:
        cut, sep = data.find(b"\n\n"), 2
    if cut < 0:
        raise SipError("no_header_end")
    try:
        head = data[:cut].decode("utf-8")
    except UnicodeDecodeError:
        raise SipError("not_utf8")
    lines = _lines(head)
    msg = _start_line(lines[0])
    if len(lines) - 1 > MAX_HEADERS:
        raise SipError("too_many_headers", 513)
    broken: str | None = None
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.match(name.strip()):
            broken = broken or "bad_header"
            continue
        msg.headers.append((canonical_name(name.strip()), value.strip()))
    body = data[cut + sep :]
    lengths = msg.values("Content-Length")
    if lengths:
        if len(set(lengths)) != 1 or not lengths[0].isdigit():
            broken = broken or "bad_content_length"
        elif int(lengths[0]) > len(body):
            broken = broken or "body_shorter_than_content_length"
        else:
            body = body[: int(lengths[0])]
    elif stream:
        broken = broken or "no_content_length"
    if len(body) > MAX_BODY:
        raise SipError("body_too_large", 413)
    msg.body = body
    broken = broken or _check(msg)
    if broken:
        readable = all(msg.get(h) for h in REQUIRED)
        raise SipError(broken, partial=msg if readable else None)
    return msg


def _check(msg: SipRequest | SipResponse) -> str | None:
    for name in REQUIRED:
        if len(msg.values(name)) == 0:
            return "missing_" + name.lower().replace("-", "_")
    for name in ("From", "To", "Call-ID", "CSeq", "Max-Forwards", "Content-Type"):
        if len(msg.values(name)) > 1:
            return "duplicate_" + name.lower().replace("-", "_")
    number, _, method = (msg.get("CSeq") or "").partition(" ")
    if not number.isdigit() or int(number) >= 2**31 or not _TOKEN.match(method.strip() or "-"):
        return "bad_cseq"
    if isinstance(msg, SipRequest) and method.strip() != msg.method:
        return "cseq_method_mismatch"  # RFC 4475 §3.1.2.17 style
    forwards = msg.get("Max-Forwards")
    if forwards is not None and (not forwards.isdigit() or int(forwards) > 255):
        return "bad_max_forwards"
    return None
