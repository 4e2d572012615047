"""Typed wrappers over the primitives: Ed25519 signing keys and HPKE recipient keys.

HPKE (RFC 9180) comes from ``cryptography.hazmat.primitives.hpke`` in base mode with the
single-shot API. Two KEMs are supported:

- ``x25519``: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM;
- ``mlkem768x25519``: the hybrid ML-KEM-768 + X25519 KEM (draft-ietf-hpke-pq, KEM id 0x647a),
  HKDF-SHA256, ChaCha20-Poly1305 — post-quantum protection of sealed epoch secrets against
  record-now-decrypt-later. (This is the combination the official PQ vectors cover.)

A hybrid public key is encoded as ``mlkem768_public (1184 bytes) || x25519_public (32)``; a
hybrid private key is the draft's 32-byte seed, expanded with SHAKE256 to 96 bytes: the
ML-KEM-768 seed (64) then the X25519 private key (32).
"""

from __future__ import annotations

import hashlib
import os
from enum import Enum
from functools import cached_property

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import ed25519, mlkem, x25519

from .errors import DecryptError, Refusal, VerificationError

MLKEM768_PUBLIC_LEN = 1184
MLKEM_SEED_LEN = 64
HYBRID_SEED_LEN = 32


class Kem(str, Enum):  # noqa: UP042 - StrEnum would change str() of members
    X25519 = "x25519"
    MLKEM768_X25519 = "mlkem768x25519"


_SUITES = {
    Kem.X25519: hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM),
    Kem.MLKEM768_X25519: hpke.Suite(
        hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305
    ),
}


def fingerprint(data: bytes) -> str:
    """Printable identifier of a public key or statement: the hex of its whole SHA-256 (a
    roster binds credentials by it, so it is never truncated)."""
    return hashlib.sha256(data).hexdigest()


class SigningKey:
    """An Ed25519 private key."""

    def __init__(self, key: ed25519.Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(ed25519.Ed25519PrivateKey.generate())

    @classmethod
    def from_bytes(cls, raw: bytes) -> SigningKey:
        return cls(ed25519.Ed25519PrivateKey.from_private_bytes(raw))

    def to_bytes(self) -> bytes:
        return self._key.private_bytes_raw()

    @cached_property
    def public(self) -> VerifyKey:
        return VerifyKey(self._key.public_key().public_bytes_raw())

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def __repr__(self) -> str:  # never show key material
        return f"SigningKey(public={self.public.fingerprint})"


class VerifyKey:
    """An Ed25519 public key."""

    def __init__(self, raw: bytes) -> None:
        if not isinstance(raw, bytes) or len(raw) != 32:
            raise VerificationError(Refusal.MALFORMED, "Ed25519 public key must be 32 bytes")
        self.raw = raw
        try:
            self._key = ed25519.Ed25519PublicKey.from_public_bytes(raw)
        except ValueError:
            raise VerificationError(Refusal.MALFORMED, "bad Ed25519 public key") from None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.raw)

    def verify(self, signature: bytes, data: bytes) -> None:
        """Raise VerificationError(BAD_SIGNATURE) unless ``signature`` is valid over ``data``."""
        try:
            self._key.verify(signature, data)
        except (InvalidSignature, TypeError):
            raise VerificationError(Refusal.BAD_SIGNATURE)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyKey) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)


class HpkePublicKey:
    """A recipient's public HPKE key of either KEM."""

    def __init__(self, kem: Kem, raw: bytes) -> None:
        self.kem = kem
        self.raw = raw
        try:
            if kem is Kem.X25519:
                if len(raw) != 32:
                    raise ValueError("length")
                self._key: object = x25519.X25519PublicKey.from_public_bytes(raw)
            else:
                if len(raw) != MLKEM768_PUBLIC_LEN + 32:
                    raise ValueError("length")
                self._key = hpke.MLKEM768X25519PublicKey(
                    mlkem.MLKEM768PublicKey.from_public_bytes(raw[:MLKEM768_PUBLIC_LEN]),
                    x25519.X25519PublicKey.from_public_bytes(raw[MLKEM768_PUBLIC_LEN:]),
                )
        except ValueError:
            raise VerificationError(Refusal.MALFORMED, f"bad {kem.value} public key")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HpkePublicKey) and (other.kem, other.raw) == (self.kem, self.raw)

    def __hash__(self) -> int:
        return hash((self.kem, self.raw))

    def seal(self, plaintext: bytes, info: bytes) -> bytes:
        """HPKE base-mode single-shot seal; returns ``enc || ciphertext``.

        A key that decodes but cannot be used (an X25519 point of small order, for which the
        shared secret is all zeros) is refused with VerificationError(MALFORMED)."""
        try:
            return _SUITES[self.kem].encrypt(plaintext, self._key, info=info)  # type: ignore[arg-type]
        except ValueError:
            raise VerificationError(
                Refusal.MALFORMED, f"unusable {self.kem.value} public key"
            ) from None


class HpkePrivateKey:
    """A recipient's private HPKE key of either KEM."""

    def __init__(self, kem: Kem, raw: bytes) -> None:
        self.kem = kem
        self._raw = raw
        if kem is Kem.X25519:
            x = x25519.X25519PrivateKey.from_private_bytes(raw)
            self._key: object = x
            self.public = HpkePublicKey(kem, x.public_key().public_bytes_raw())
        else:
            if len(raw) != HYBRID_SEED_LEN:
                raise ValueError("hybrid private key must be a 32-byte seed")
            expanded = hashlib.shake_256(raw).digest(MLKEM_SEED_LEN + 32)
            m = mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:MLKEM_SEED_LEN])
            x = x25519.X25519PrivateKey.from_private_bytes(expanded[MLKEM_SEED_LEN:])
            self._key = hpke.MLKEM768X25519PrivateKey(m, x)
            self.public = HpkePublicKey(
                kem, m.public_key().public_bytes_raw() + x.public_key().public_bytes_raw()
            )

    @classmethod
    def generate(cls, kem: Kem = Kem.X25519) -> HpkePrivateKey:
        if kem is Kem.X25519:
            return cls(kem, x25519.X25519PrivateKey.generate().private_bytes_raw())
        return cls(kem, os.urandom(HYBRID_SEED_LEN))

    def to_bytes(self) -> bytes:
        return self._raw

    def open(self, sealed: bytes, info: bytes) -> bytes:
        try:
            return _SUITES[self.kem].decrypt(sealed, self._key, info=info)  # type: ignore[arg-type]
        except (InvalidTag, ValueError):
            raise DecryptError()

    def __repr__(self) -> str:
        return f"HpkePrivateKey({self.kem.value}, public={fingerprint(self.public.raw)})"
