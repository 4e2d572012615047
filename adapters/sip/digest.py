"""HTTP digest authentication for SIP, client side (RFC 3261 §22, RFC 7616, RFC 8760), no I/O.

:func:`parse_challenge` reads a ``WWW-Authenticate`` / ``Proxy-Authenticate`` value;
:func:`authorization` answers it. Algorithms: ``SHA-256`` and ``MD5`` (and their ``-sess``
forms); ``qop=auth`` when offered (RFC 8760 §2.5), else the RFC 2069 form RFC 3261 keeps. A
challenge with an unknown algorithm or ``qop`` is refused (:class:`DigestError`) rather than
answered with a guess. The password is never part of an error.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from adapters.errors import AdapterError
from adapters.sip.message import split_list

__all__ = ["Challenge", "DigestError", "authorization", "parse_challenge"]

_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


class DigestError(AdapterError):
    """A digest challenge we cannot (or will not) answer."""


@dataclass(frozen=True)
class Challenge:
    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False


def parse_challenge(value: str) -> Challenge:
    """``Digest realm="x", nonce="y", …`` → :class:`Challenge`."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise DigestError("not a Digest challenge")
    params: dict[str, str] = {}
    for item in split_list(rest):
        name, eq, val = item.partition("=")
        if eq:
            params[name.strip().lower()] = val.strip().strip('"')
    if "realm" not in params or "nonce" not in params:
        raise DigestError("digest challenge without realm or nonce")
    algorithm = params.get("algorithm", "MD5").upper()
    base = algorithm.removesuffix("-SESS")
    if base not in _HASHES:
        raise DigestError("unsupported digest algorithm")
    qop = tuple(q.strip() for q in params.get("qop", "").split(",") if q.strip())
    if qop and "auth" not in qop:
        raise DigestError("digest challenge offers no qop=auth")
    return Challenge(
        params["realm"],
        params["nonce"],
        algorithm,
        qop,
        params.get("opaque"),
        params.get("stale", "").lower() == "true",
    )


def _h(algorithm: str, text: str) -> str:
    return _HASHES[algorithm.upper().removesuffix("-SESS")](text.encode()).hexdigest()


def response(
    ch: Challenge,
    username: str,
    password: str,
    method: str,
    uri: str,
    *,
    cnonce: str,
    nc: int = 1,
) -> str:
    """The ``response`` value of RFC 7616 §3.4.1 (``qop=auth`` if offered)."""
    alg = ch.algorithm
    ha1 = _h(alg, f"{username}:{ch.realm}:{password}")
    if alg.upper().endswith("-SESS"):
        ha1 = _h(alg, f"{ha1}:{ch.nonce}:{cnonce}")
    ha2 = _h(alg, f"{method}:{uri}")
    if ch.qop:
        return _h(alg, f"{ha1}:{ch.nonce}:{nc:08x}:{cnonce}:auth:{ha2}")
    return _h(alg, f"{ha1}:{ch.nonce}:{ha2}")


def authorization(
    ch: Challenge,
    username: str,
    password: str,
    method: str,
    uri: str,
    *,
    cnonce: str | None = None,
    nc: int = 1,
) -> str:
    """An ``Authorization`` / ``Proxy-Authorization`` header value answering ``ch``."""
    cnonce = cnonce or secrets.token_hex(8)
    digest = response(ch, username, password, method, uri, cnonce=cnonce, nc=nc)
    parts = [
        f'username="{username}"',
        f'realm="{ch.realm}"',
        f'nonce="{ch.nonce}"',
        f'uri="{uri}"',
        f'response="{digest}"',
        f"algorithm={ch.algorithm}",
    ]
    if ch.qop:
        parts += ["qop=auth", f"nc={nc:08x}", f'cnonce="{cnonce}"']
    if ch.opaque is not None:
        parts.append(f'opaque="{ch.opaque}"')
    return "Digest " + ", ".join(parts)
