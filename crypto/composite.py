"""Composite signatures: Ed25519 + ML-DSA-65, both of which must verify (DESIGN §4a).

The construction is Composite ML-DSA ``id-MLDSA65-Ed25519-SHA512`` of
draft-ietf-lamps-pq-composite-sigs-19 (§ "Prefix, Label and CTX", Sign, Verify):

    M' = Prefix || Label || len(ctx) || ctx || SHA-512(M)
    Prefix = "CompositeAlgorithmSignatures2025", Label = "COMPSIG-MLDSA65-Ed25519-SHA512"
    signature = ML-DSA-65.Sign(sk, M', ctx=Label) and Ed25519.Sign(sk, M')

and a verifier accepts only if **both** component signatures verify over ``M'``. Crossband
signs ``M = domain || 0x00 || canonical(body)`` (:func:`crypto.encoding.signing_input`) with
``ctx = "crossband/v1"``, so the statement kind is bound twice: by the domain in ``M`` and by
the composite label in ``M'`` (an Ed25519 half can never pass as a legacy Ed25519-only
signature, whose message starts with the domain, not with the prefix). The draft's raw forms
(:meth:`CompositeVerifyKey.from_draft`, :func:`split_draft_signature`: ML-DSA part first, then
Ed25519) are what its test vectors use.

Crossband's own encoding is versioned and length-prefixed, so a decoder never guesses::

    key       = 0x01 || u16 len || mldsa65_public (1952) || u16 len || ed25519_public (32)
    signature = 0x01 || u16 len || mldsa65_sig (3309)    || u16 len || ed25519_sig (64)

``0x01`` names the algorithm above; any other version, length or trailing byte is refused
(``MALFORMED`` for keys, ``BAD_SIGNATURE`` for signatures). The private key is the draft's
64 bytes: ML-DSA-65 seed (32) || Ed25519 private key (32).

The :data:`AnySigningKey`/:data:`AnyVerifyKey` helpers let roots and statements be either
legacy Ed25519 (the default policy) or composite (``min_signature: composite``).
"""

from __future__ import annotations

import hashlib
import struct
from functools import cached_property
from typing import TypeAlias

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa

from .errors import Refusal, VerificationError
from .keys import SigningKey, VerifyKey, fingerprint

PREFIX = b"CompositeAlgorithmSignatures2025"
LABEL = b"COMPSIG-MLDSA65-Ed25519-SHA512"
APP_CTX = b"crossband/v1"
VERSION = 0x01
MLDSA65_PUBLIC_LEN = 1952
MLDSA65_SIG_LEN = 3309
ED25519_PUBLIC_LEN = 32
ED25519_SIG_LEN = 64
KEY_LEN = 1 + 2 + MLDSA65_PUBLIC_LEN + 2 + ED25519_PUBLIC_LEN
SIG_LEN = 1 + 2 + MLDSA65_SIG_LEN + 2 + ED25519_SIG_LEN
PRIVATE_LEN = 64

COMPOSITE = "composite"
ED25519 = "ed25519"
SIGNATURE_POLICIES = (ED25519, COMPOSITE)


def representative(message: bytes, ctx: bytes = APP_CTX) -> bytes:
    """The draft's message representative M' for ``message`` under application ``ctx``."""
    if len(ctx) > 255:
        raise ValueError("composite ctx is at most 255 bytes")
    return PREFIX + LABEL + bytes([len(ctx)]) + ctx + hashlib.sha512(message).digest()


def _pack(version: int, first: bytes, second: bytes) -> bytes:
    return (
        bytes([version])
        + struct.pack(">H", len(first))
        + first
        + struct.pack(">H", len(second))
        + second
    )


def _unpack(data: bytes, lens: tuple[int, int]) -> tuple[bytes, bytes] | None:
    """The two components of an encoding with exactly ``lens``, or None."""
    if not isinstance(data, bytes) or len(data) != 5 + lens[0] + lens[1] or data[0] != VERSION:
        return None
    if struct.unpack(">H", data[1:3])[0] != lens[0]:
        return None
    a_end = 3 + lens[0]
    if struct.unpack(">H", data[a_end : a_end + 2])[0] != lens[1]:
        return None
    return data[3:a_end], data[a_end + 2 :]


def split_draft_signature(raw: bytes) -> bytes:
    """The draft's raw signature (``mldsa_sig || ed25519_sig``) in Crossband's encoding."""
    if len(raw) != MLDSA65_SIG_LEN + ED25519_SIG_LEN:
        raise VerificationError(Refusal.BAD_SIGNATURE, "composite signature of the wrong size")
    return _pack(VERSION, raw[:MLDSA65_SIG_LEN], raw[MLDSA65_SIG_LEN:])


class CompositeVerifyKey:
    """A composite public key: ML-DSA-65 and Ed25519; :meth:`verify` needs both."""

    def __init__(self, raw: bytes) -> None:
        parts = _unpack(raw, (MLDSA65_PUBLIC_LEN, ED25519_PUBLIC_LEN))
        if parts is None:
            raise VerificationError(Refusal.MALFORMED, "bad composite ML-DSA-65+Ed25519 key")
        try:
            self._mldsa = mldsa.MLDSA65PublicKey.from_public_bytes(parts[0])
            self._ed = ed25519.Ed25519PublicKey.from_public_bytes(parts[1])
        except ValueError:
            raise VerificationError(Refusal.MALFORMED, "bad composite key component") from None
        self.raw = raw

    @classmethod
    def from_draft(cls, raw: bytes) -> CompositeVerifyKey:
        """From the draft's ``SerializePublicKey`` (``mldsa_pk || ed25519_pk``)."""
        if len(raw) != MLDSA65_PUBLIC_LEN + ED25519_PUBLIC_LEN:
            raise VerificationError(Refusal.MALFORMED, "composite key of the wrong size")
        return cls(_pack(VERSION, raw[:MLDSA65_PUBLIC_LEN], raw[MLDSA65_PUBLIC_LEN:]))

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.raw)

    def verify(self, signature: bytes, data: bytes, ctx: bytes = APP_CTX) -> None:
        """Raise VerificationError(BAD_SIGNATURE) unless both components verify over M'."""
        parts = _unpack(signature, (MLDSA65_SIG_LEN, ED25519_SIG_LEN))
        if parts is None:
            raise VerificationError(Refusal.BAD_SIGNATURE, "not a composite signature")
        m = representative(data, ctx)
        ok = True
        try:
            self._mldsa.verify(parts[0], m, LABEL)
        except InvalidSignature:
            ok = False
        try:  # checked even if ML-DSA failed: no early exit on which half is wrong
            self._ed.verify(parts[1], m)
        except InvalidSignature:
            ok = False
        if not ok:
            raise VerificationError(Refusal.BAD_SIGNATURE)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CompositeVerifyKey) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)


class CompositeSigningKey:
    """A composite private key (the draft's 64 bytes: ML-DSA-65 seed, Ed25519 private key)."""

    def __init__(self, raw: bytes) -> None:
        if not isinstance(raw, bytes) or len(raw) != PRIVATE_LEN:
            raise ValueError("composite private key must be 64 bytes")
        self._raw = raw
        self._mldsa = mldsa.MLDSA65PrivateKey.from_seed_bytes(raw[:32])
        self._ed = ed25519.Ed25519PrivateKey.from_private_bytes(raw[32:])

    @classmethod
    def generate(cls) -> CompositeSigningKey:
        ed = ed25519.Ed25519PrivateKey.generate().private_bytes_raw()
        return cls(mldsa.MLDSA65PrivateKey.generate().private_bytes_raw() + ed)

    @classmethod
    def from_bytes(cls, raw: bytes) -> CompositeSigningKey:
        return cls(raw)

    def to_bytes(self) -> bytes:
        return self._raw

    @cached_property
    def public(self) -> CompositeVerifyKey:
        return CompositeVerifyKey(
            _pack(
                VERSION,
                self._mldsa.public_key().public_bytes_raw(),
                self._ed.public_key().public_bytes_raw(),
            )
        )

    def sign(self, data: bytes, ctx: bytes = APP_CTX) -> bytes:
        m = representative(data, ctx)
        return _pack(VERSION, self._mldsa.sign(m, LABEL), self._ed.sign(m))

    def __repr__(self) -> str:  # never show key material
        return f"CompositeSigningKey(public={self.public.fingerprint})"


AnySigningKey: TypeAlias = SigningKey | CompositeSigningKey
AnyVerifyKey: TypeAlias = VerifyKey | CompositeVerifyKey


def verify_key_from_bytes(raw: bytes) -> AnyVerifyKey:
    """A pinned or credentialed public key: 32 bytes are a legacy Ed25519 key, anything else
    must be a composite key in Crossband's encoding."""
    if isinstance(raw, bytes) and len(raw) == ED25519_PUBLIC_LEN:
        return VerifyKey(raw)
    return CompositeVerifyKey(raw)


def signing_key_from_bytes(raw: bytes) -> AnySigningKey:
    """A private key: 32 bytes are Ed25519, 64 bytes composite."""
    if len(raw) == PRIVATE_LEN:
        return CompositeSigningKey(raw)
    return SigningKey.from_bytes(raw)


def kind_of(key: AnySigningKey | AnyVerifyKey) -> str:
    return COMPOSITE if isinstance(key, CompositeSigningKey | CompositeVerifyKey) else ED25519
