"""SFrame (RFC 9605): end-to-end encryption of media frames and data messages.

This module is exactly RFC 9605 and nothing else: no I/O, no clock, no key management and
no replay protection (see :mod:`crypto.replay`). Layers, lowest first:

* **Cipher suites** (§4.5, IANA "SFrame Cipher Suites"): :class:`CipherSuite` and
  :func:`suite_params`. Suites 1–3 are AES-128-CTR + truncated HMAC-SHA256 (§4.5.1,
  :class:`CtrHmacAead`); suites 4–5 are AES-GCM from ``cryptography``.
* **Header** (§4.3): :func:`encode_header` / :func:`decode_header`. One config byte
  ``|X|K(3)|Y|C(3)|``; a KID or CTR below 8 is carried in K or C, otherwise X (or Y) is set
  and K (or C) is the length minus one of the big-endian value that follows (KID first).
* **Key schedule** (§4.4.2): :func:`derive_key_salt`, HKDF with the suite's hash and the
  labels ``"SFrame 1.0 Secret key " || KID || suite`` and ``"SFrame 1.0 Secret salt " ||
  KID || suite`` (KID as 8 bytes, suite as 2 bytes, both big-endian).
* **Encryption** (§4.4.3, §4.4.4): :class:`SFrameKey` holds the derived key and salt of one
  KID with its AEAD object built once; nonce = salt XOR CTR, AAD = header || metadata,
  frame = header || ciphertext || tag.

Every failure to open a frame — truncated or malformed header, wrong KID, bad tag — raises
the one opaque :class:`~crypto.errors.DecryptError`. Misuse by the caller (a negative KID, a
wrong-sized key) raises :class:`ValueError`; running out of counters raises
:class:`~crypto.errors.CounterExhaustedError`. Using a (key, KID, CTR) twice is the
caller's bug and is not detected here.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

from crypto.errors import CounterExhaustedError, DecryptError

__all__ = [
    "MAX_VALUE",
    "Aead",
    "CipherSuite",
    "CtrHmacAead",
    "SFrameKey",
    "SuiteParams",
    "decode_header",
    "derive_key_salt",
    "derive_subkeys",
    "encode_header",
    "make_aead",
    "protect",
    "suite_params",
    "unprotect",
]

MAX_VALUE = 2**64 - 1
"""Largest KID or CTR the header can carry (§4.3: at most 8 bytes)."""

_KEY_LABEL = b"SFrame 1.0 Secret key "
_SALT_LABEL = b"SFrame 1.0 Secret salt "


class CipherSuite(IntEnum):
    """RFC 9605 §4.5 / §8.1 cipher suites."""

    AES_128_CTR_HMAC_SHA256_80 = 0x0001
    AES_128_CTR_HMAC_SHA256_64 = 0x0002
    AES_128_CTR_HMAC_SHA256_32 = 0x0003
    AES_128_GCM_SHA256_128 = 0x0004
    AES_256_GCM_SHA512_128 = 0x0005


@dataclass(frozen=True)
class SuiteParams:
    """Sizes in bytes from the §4.5 table. ``nka`` is None for the AES-GCM suites."""

    hash: str  # "sha256" or "sha512": the HKDF (and, for suites 1-3, HMAC) hash
    nh: int  # hash output size
    nk: int  # AEAD key size
    nn: int  # nonce size
    nt: int  # tag size
    nka: int | None = None  # AES key part of the AEAD key (CTR+HMAC suites only)


_PARAMS: dict[CipherSuite, SuiteParams] = {
    CipherSuite.AES_128_CTR_HMAC_SHA256_80: SuiteParams("sha256", 32, 48, 12, 10, 16),
    CipherSuite.AES_128_CTR_HMAC_SHA256_64: SuiteParams("sha256", 32, 48, 12, 8, 16),
    CipherSuite.AES_128_CTR_HMAC_SHA256_32: SuiteParams("sha256", 32, 48, 12, 4, 16),
    CipherSuite.AES_128_GCM_SHA256_128: SuiteParams("sha256", 32, 16, 12, 16),
    CipherSuite.AES_256_GCM_SHA512_128: SuiteParams("sha512", 64, 32, 12, 16),
}


def suite_params(suite: CipherSuite | int) -> SuiteParams:
    """The §4.5 parameters of ``suite``; ValueError for a suite this module lacks."""
    return _PARAMS[CipherSuite(suite)]


def _hash(params: SuiteParams) -> hashes.HashAlgorithm:
    return hashes.SHA256() if params.hash == "sha256" else hashes.SHA512()


# --- Header (§4.3) ---------------------------------------------------------------------


def _field(value: int) -> tuple[int, bytes]:
    """(3-bit K/C value plus the extended flag at bit 3, extension bytes) for one field."""
    if value < 8:
        return value, b""
    length = (value.bit_length() + 7) // 8
    return 0x08 | (length - 1), value.to_bytes(length, "big")


def encode_header(kid: int, ctr: int) -> bytes:
    """The §4.3 header for ``kid`` and ``ctr``, each in its shortest form."""
    if not (0 <= kid <= MAX_VALUE and 0 <= ctr <= MAX_VALUE):
        raise ValueError("KID and CTR must be in 0 .. 2**64-1")
    kid_bits, kid_bytes = _field(kid)
    ctr_bits, ctr_bytes = _field(ctr)
    return bytes((kid_bits << 4 | ctr_bits,)) + kid_bytes + ctr_bytes


def decode_header(data: bytes) -> tuple[int, int, int]:
    """Parse the §4.3 header at the start of ``data``: ``(kid, ctr, header_len)``.

    Raises DecryptError if ``data`` is too short. Non-minimal encodings are accepted as
    sent: the header bytes are authenticated as AAD, so they cannot be altered in transit.
    """
    if not data:
        raise DecryptError()
    config = data[0]
    pos = 1
    if config & 0x80:
        end = pos + ((config >> 4) & 0x07) + 1
        if len(data) < end:
            raise DecryptError()
        kid = int.from_bytes(data[pos:end], "big")
        pos = end
    else:
        kid = (config >> 4) & 0x07
    if config & 0x08:
        end = pos + (config & 0x07) + 1
        if len(data) < end:
            raise DecryptError()
        ctr = int.from_bytes(data[pos:end], "big")
        pos = end
    else:
        ctr = config & 0x07
    return kid, ctr, pos


# --- Key schedule (§4.4.2) ---------------------------------------------------------------


def derive_key_salt(suite: CipherSuite | int, base_key: bytes, kid: int) -> tuple[bytes, bytes]:
    """``(sframe_key, sframe_salt)`` for ``kid`` from ``base_key`` (§4.4.2)."""
    params = suite_params(suite)
    if not 0 <= kid <= MAX_VALUE:
        raise ValueError("KID must be in 0 .. 2**64-1")
    algorithm = _hash(params)
    # HKDF-Extract with an empty salt: HMAC keyed with Nh zero bytes is the same function.
    secret = HKDF.extract(algorithm, None, bytes(base_key))
    context = kid.to_bytes(8, "big") + int(suite).to_bytes(2, "big")
    key = HKDFExpand(algorithm, params.nk, _KEY_LABEL + context).derive(secret)
    salt = HKDFExpand(algorithm, params.nn, _SALT_LABEL + context).derive(secret)
    return key, salt


# --- AEADs (§4.5) ----------------------------------------------------------------------


class Aead(Protocol):
    """The AEAD interface SFrame needs; ``cryptography``'s AESGCM already has it.

    ``decrypt`` raises :class:`cryptography.exceptions.InvalidTag` on any failure.
    """

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...


def derive_subkeys(suite: CipherSuite | int, sframe_key: bytes) -> tuple[bytes, bytes]:
    """§4.5.1 ``derive_subkeys``: ``(enc_key, auth_key)`` = first Nka bytes, the rest."""
    params = suite_params(suite)
    if params.nka is None:
        raise ValueError("only the AES-CTR + HMAC suites have subkeys")
    if len(sframe_key) != params.nk:
        raise ValueError(f"key must be {params.nk} bytes")
    return bytes(sframe_key[: params.nka]), bytes(sframe_key[params.nka :])


class CtrHmacAead:
    """AES-CTR with a truncated HMAC tag, the AEAD of suites 1–3 (RFC 9605 §4.5.1).

    The CTR initial counter block is ``nonce || 0x00000000``; the tag is HMAC over
    ``len(aad) || len(ct) || Nt`` (each 8 bytes, big-endian) ``|| nonce || aad || ct``,
    truncated to Nt bytes.
    """

    __slots__ = ("_aes", "_mac", "_nt", "_tag_len")

    def __init__(self, suite: CipherSuite | int, key: bytes) -> None:
        params = suite_params(suite)
        enc_key, auth_key = derive_subkeys(suite, key)
        self._aes = algorithms.AES(enc_key)
        self._mac = crypto_hmac.HMAC(auth_key, _hash(params))
        self._nt = params.nt
        self._tag_len = params.nt.to_bytes(8, "big")

    def _tag(self, nonce: bytes, aad: bytes, ct: bytes) -> bytes:
        mac = self._mac.copy()
        lengths = len(aad).to_bytes(8, "big") + len(ct).to_bytes(8, "big") + self._tag_len
        mac.update(b"".join((lengths, nonce, aad, ct)))
        return mac.finalize()[: self._nt]

    def _ctr(self, nonce: bytes, data: bytes) -> bytes:
        if len(nonce) != 12:
            raise ValueError("nonce must be 12 bytes")
        if len(data) > 2**32 * 16:  # the 32-bit block counter must not wrap
            raise ValueError("message too long")
        ctx = Cipher(self._aes, modes.CTR(nonce + b"\x00\x00\x00\x00")).encryptor()
        return ctx.update(data) + ctx.finalize()

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        """``ct || tag`` for plaintext ``data``."""
        aad = associated_data or b""
        ct = self._ctr(nonce, data)
        return ct + self._tag(nonce, aad, ct)

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        """Plaintext of ``ct || tag``; InvalidTag (checked in constant time) on failure."""
        if len(data) < self._nt or len(nonce) != 12:
            raise InvalidTag()
        aad = associated_data or b""
        ct, tag = data[: -self._nt], data[-self._nt :]
        if not hmac.compare_digest(self._tag(nonce, aad, ct), tag):
            raise InvalidTag()
        return self._ctr(nonce, ct)


def make_aead(suite: CipherSuite | int, key: bytes) -> Aead:
    """The AEAD of ``suite`` keyed with ``key`` (Nk bytes)."""
    params = suite_params(suite)
    if len(key) != params.nk:
        raise ValueError(f"key must be {params.nk} bytes")
    if params.nka is not None:
        return CtrHmacAead(suite, key)
    return AESGCM(key)


# --- Frames (§4.4.3, §4.4.4) -----------------------------------------------------------


class SFrameKey:
    """The derived key and salt of one KID, ready to protect and unprotect frames.

    Everything that does not depend on the counter (AEAD object, salt as an integer, the
    KID part of the header) is computed once here; a frame then costs one AEAD call.
    """

    __slots__ = ("_aead", "_kid_bits", "_kid_bytes", "_nn", "_nt", "_salt", "kid", "suite")

    def __init__(self, suite: CipherSuite | int, base_key: bytes, kid: int) -> None:
        self.suite = CipherSuite(suite)
        self.kid = kid
        params = suite_params(self.suite)
        key, salt = derive_key_salt(self.suite, base_key, kid)
        self._aead = make_aead(self.suite, key)
        self._salt = int.from_bytes(salt, "big")
        self._nn = params.nn
        self._nt = params.nt
        self._kid_bits, self._kid_bytes = _field(kid)

    def __repr__(self) -> str:  # never show key material
        return f"SFrameKey(suite={self.suite.name}, kid={self.kid})"

    def nonce(self, ctr: int) -> bytes:
        """§4.4.3: the salt XOR ``ctr`` left-padded to Nn bytes."""
        return (self._salt ^ ctr).to_bytes(self._nn, "big")

    def header(self, ctr: int) -> bytes:
        """The §4.3 header for this KID and ``ctr`` (same bytes as :func:`encode_header`)."""
        if ctr < 8:
            return bytes((self._kid_bits << 4 | ctr,)) + self._kid_bytes
        length = (ctr.bit_length() + 7) // 8
        config = self._kid_bits << 4 | 0x08 | (length - 1)
        return bytes((config,)) + self._kid_bytes + ctr.to_bytes(length, "big")

    def protect(self, ctr: int, plaintext: bytes, metadata: bytes = b"") -> bytes:
        """§4.4.3: ``header || ciphertext || tag`` with AAD = header || metadata.

        The caller guarantees ``ctr`` was never used with this key before.
        """
        if ctr < 0:
            raise ValueError("CTR must not be negative")
        if ctr > MAX_VALUE:
            raise CounterExhaustedError("SFrame CTR space exhausted for this KID")
        header = self.header(ctr)
        nonce = (self._salt ^ ctr).to_bytes(self._nn, "big")
        return header + self._aead.encrypt(nonce, plaintext, header + metadata)

    def unprotect_body(self, header: bytes, ctr: int, body: bytes, metadata: bytes = b"") -> bytes:
        """§4.4.4 after the header is parsed: open ``body`` (ciphertext || tag).

        ``header`` must be the header bytes exactly as received and ``ctr`` the value
        decoded from them. Raises DecryptError on any failure.
        """
        if len(body) < self._nt or not 0 <= ctr <= MAX_VALUE:
            raise DecryptError()
        nonce = (self._salt ^ ctr).to_bytes(self._nn, "big")
        try:
            return self._aead.decrypt(nonce, body, bytes(header) + metadata)
        except InvalidTag:
            raise DecryptError() from None

    def unprotect(self, frame: bytes, metadata: bytes = b"") -> bytes:
        """§4.4.4: parse ``frame``, check its KID is this key's, and open it."""
        kid, ctr, header_len = decode_header(frame)
        if kid != self.kid:
            raise DecryptError()
        return self.unprotect_body(frame[:header_len], ctr, frame[header_len:], metadata)


def protect(
    suite: CipherSuite | int,
    base_key: bytes,
    kid: int,
    ctr: int,
    plaintext: bytes,
    metadata: bytes = b"",
) -> bytes:
    """One-shot :meth:`SFrameKey.protect` (derives the key every call: slow)."""
    return SFrameKey(suite, base_key, kid).protect(ctr, plaintext, metadata)


def unprotect(
    suite: CipherSuite | int, base_key: bytes, frame: bytes, metadata: bytes = b""
) -> bytes:
    """One-shot unprotect: derive the key for the KID in ``frame``'s header and open it.

    A frame sealed under another base key fails the tag check, so this raises DecryptError.
    """
    kid, _ctr, _len = decode_header(frame)
    return SFrameKey(suite, base_key, kid).unprotect(frame, metadata)
