"""RFC 9605 Appendix C test vectors, run case by case.

Source: the official SFrame test vectors, vendored in ``tests/vectors/sframe/`` (see
``tests/vectors/README.md``: github.com/sframe-wg/sframe, ``test-vectors/test-vectors.json`` at
commit 025d568, as RFC 9605 cites it). Sections:

* ``header`` (C.1): KID/CTR → encoded header (§4.3);
* ``aes_ctr_hmac`` (C.2): the AES-CTR + HMAC AEAD of suites 1–3 (§4.5.1);
* ``sframe`` (C.3): key schedule (§4.4.2), nonce and AAD (§4.4.3), whole frames.

If the file is missing or is not that exact file, every test here fails: a missing vector file
must never look like a pass.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from crypto.errors import DecryptError
from crypto.sframe import (
    CipherSuite,
    SFrameKey,
    decode_header,
    derive_key_salt,
    derive_subkeys,
    encode_header,
    make_aead,
    suite_params,
    unprotect,
)

VECTOR_FILE = (
    Path(__file__).resolve().parents[1] / "vectors" / "sframe" / "rfc9605-test-vectors.json"
)
VECTOR_SHA256 = "b8d35efd41749567427cb9ae52d9a7362904154978ff6a5fb20c0258a8ffdec1"
EXPECTED_COUNTS = {"header": 289, "aes_ctr_hmac": 3, "sframe": 5}


def _load() -> tuple[dict[str, list[dict[str, Any]]] | None, str]:
    if not VECTOR_FILE.is_file():
        return None, f"SFrame test vectors not found at {VECTOR_FILE} (see tests/vectors/README.md)"
    raw = VECTOR_FILE.read_bytes()
    if hashlib.sha256(raw).hexdigest() != VECTOR_SHA256:
        return None, f"{VECTOR_FILE} is not the file tests/vectors/README.md names (SHA-256)"
    return json.loads(raw), str(VECTOR_FILE)


VECTORS, SOURCE = _load()
MISSING = pytest.param(None, id="vector-file-missing")


def _cases(section: str, id_fields: tuple[str, ...]) -> list[Any]:
    if VECTORS is None:
        return [MISSING]
    return [
        pytest.param(case, id=f"{section}-{i}-" + "-".join(str(case[k]) for k in id_fields))
        for i, case in enumerate(VECTORS[section])
    ]


def _require(case: dict[str, Any] | None) -> dict[str, Any]:
    if case is None:
        pytest.fail(SOURCE)
    return case


def _b(case: dict[str, Any], field: str) -> bytes:
    return bytes.fromhex(case[field])


def test_vector_counts() -> None:
    if VECTORS is None:
        pytest.fail(SOURCE)
    assert {k: len(VECTORS[k]) for k in EXPECTED_COUNTS} == EXPECTED_COUNTS


# --- C.1 header ------------------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("header", ("kid", "ctr")))
def test_header(case: dict[str, Any] | None) -> None:
    case = _require(case)
    encoded = _b(case, "encoded")
    assert encode_header(case["kid"], case["ctr"]) == encoded
    assert decode_header(encoded) == (case["kid"], case["ctr"], len(encoded))
    # A header is followed by the ciphertext: trailing bytes must not change the parse.
    assert decode_header(encoded + b"\xff" * 9) == (case["kid"], case["ctr"], len(encoded))
    # Every proper prefix is a truncated header.
    for cut in range(len(encoded)):
        with pytest.raises(DecryptError):
            decode_header(encoded[:cut])


# --- C.2 AES-CTR + HMAC ----------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("aes_ctr_hmac", ("cipher_suite",)))
def test_aes_ctr_hmac(case: dict[str, Any] | None) -> None:
    case = _require(case)
    suite = CipherSuite(case["cipher_suite"])
    key = _b(case, "key")
    assert derive_subkeys(suite, key) == (_b(case, "enc_key"), _b(case, "auth_key"))
    aead = make_aead(suite, key)
    nonce, aad, pt, ct = (_b(case, f) for f in ("nonce", "aad", "pt", "ct"))
    assert aead.encrypt(nonce, pt, aad) == ct
    assert aead.decrypt(nonce, ct, aad) == pt
    assert len(ct) == len(pt) + suite_params(suite).nt


# --- C.3 SFrame encryption -------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("sframe", ("cipher_suite",)))
def test_sframe(case: dict[str, Any] | None) -> None:
    case = _require(case)
    suite = CipherSuite(case["cipher_suite"])
    kid, ctr = case["kid"], case["ctr"]
    base_key, metadata, pt, ct = (_b(case, f) for f in ("base_key", "metadata", "pt", "ct"))

    expected_key_salt = (_b(case, "sframe_key"), _b(case, "sframe_salt"))
    assert derive_key_salt(suite, base_key, kid) == expected_key_salt
    key = SFrameKey(suite, base_key, kid)
    assert key.nonce(ctr) == _b(case, "nonce")
    header = encode_header(kid, ctr)
    assert header + metadata == _b(case, "aad")
    assert key.protect(ctr, pt, metadata) == ct

    assert key.unprotect(ct, metadata) == pt
    assert unprotect(suite, base_key, ct, metadata) == pt
    parsed_kid, parsed_ctr, header_len = decode_header(ct)
    assert (parsed_kid, parsed_ctr, ct[:header_len]) == (kid, ctr, header)
    assert key.unprotect_body(ct[:header_len], ctr, ct[header_len:], metadata) == pt
