"""Console logins: local password hashes (scrypt, RFC 7914) and expiring sessions.

A password hash is one line an operator pastes into ``console.yaml``
(``crossband console hash-password``)::

    scrypt$<log2 n>$<r>$<p>$<salt, base64url>$<hash, base64url>

:func:`verify_password` recomputes it with the stored parameters and compares in constant time;
an unknown user costs the same scrypt as a known one, so timing does not tell which names exist.

:class:`Sessions` is sans-IO (``now`` passed in): a session is a random token (the cookie) with
its own random CSRF token, an absolute expiry and an idle expiry. Nothing here logs a password,
a hash or a token.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

__all__ = ["HASH_PREFIX", "Session", "Sessions", "hash_password", "verify_password"]

HASH_PREFIX = "scrypt"
LOG_N, R, P = 15, 8, 1  # 32 MiB, ~50 ms: OWASP's scrypt minimum is N=2^17 r=8 p=1 (or 2^15)
LENGTH = 32
MAX_PASSWORD = 1024


def _b64e(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _b64d(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def hash_password(password: str, *, log_n: int = LOG_N, salt: bytes | None = None) -> str:
    if not password:
        raise ValueError("the password is empty")
    if len(password) > MAX_PASSWORD:
        raise ValueError(f"the password is longer than {MAX_PASSWORD} characters")
    salt = secrets.token_bytes(16) if salt is None else salt
    key = Scrypt(salt=salt, length=LENGTH, n=2**log_n, r=R, p=P).derive(password.encode())
    return f"{HASH_PREFIX}${log_n}${R}${P}${_b64e(salt)}${_b64e(key)}"


def parse_hash(stored: str) -> tuple[int, int, int, bytes, bytes]:
    """(log2 n, r, p, salt, key) of a stored hash; ValueError if it is not one."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != HASH_PREFIX:
        raise ValueError("not a scrypt password hash (expected scrypt$n$r$p$salt$hash)")
    try:
        log_n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, key = _b64d(parts[4]), _b64d(parts[5])
    except ValueError:
        raise ValueError("a malformed scrypt password hash") from None
    if not (10 <= log_n <= 22 and 1 <= r <= 32 and 1 <= p <= 16):
        raise ValueError("scrypt parameters out of range (log2 n 10..22, r 1..32, p 1..16)")
    if len(salt) < 16 or len(key) != LENGTH:
        raise ValueError("a scrypt password hash needs a salt of 16+ bytes and a 32-byte hash")
    return log_n, r, p, salt, key


_DUMMY = hash_password("not-a-user", salt=b"\0" * 16)


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored`` (None: an unknown user, always False)."""
    log_n, r, p, salt, key = parse_hash(stored if stored is not None else _DUMMY)
    if len(password) > MAX_PASSWORD:
        return False
    try:
        Scrypt(salt=salt, length=LENGTH, n=2**log_n, r=r, p=p).verify(password.encode(), key)
    except InvalidKey:
        return False
    return stored is not None


@dataclass
class Session:
    user: str
    csrf: str
    created: float
    last_seen: float


class Sessions:
    """Login sessions by token, each expiring ``ttl`` seconds after login or ``idle`` seconds
    after its last use; at most ``limit`` at once (the oldest goes)."""

    def __init__(self, ttl: float = 8 * 3600, idle: float = 1800, limit: int = 64) -> None:
        self.ttl, self.idle, self.limit = ttl, idle, limit
        self._by_token: dict[str, Session] = {}

    def open(self, user: str, now: float) -> tuple[str, Session]:
        self.expire(now)
        while len(self._by_token) >= self.limit:
            oldest = min(self._by_token, key=lambda t: self._by_token[t].created)
            del self._by_token[oldest]
        token = secrets.token_urlsafe(32)
        s = self._by_token[token] = Session(user, secrets.token_urlsafe(32), now, now)
        return token, s

    def get(self, token: str | None, now: float, *, touch: bool = True) -> Session | None:
        """The live session of ``token``, or None (unknown or expired: then forgotten)."""
        if not token:
            return None
        s = self._by_token.get(token)
        if s is None:
            return None
        if not self.alive(s, now):
            del self._by_token[token]
            return None
        if touch:
            s.last_seen = now
        return s

    def alive(self, s: Session, now: float) -> bool:
        return now < s.created + self.ttl and now < s.last_seen + self.idle

    def close(self, token: str | None) -> None:
        if token:
            self._by_token.pop(token, None)

    def expire(self, now: float) -> None:
        for t in [t for t, s in self._by_token.items() if not self.alive(s, now)]:
            del self._by_token[t]

    def __len__(self) -> int:
        return len(self._by_token)


def csrf_ok(session: Session, token: str | None) -> bool:
    """Constant-time check of a request's CSRF token against its session's."""
    return token is not None and hmac.compare_digest(session.csrf.encode(), token.encode())
