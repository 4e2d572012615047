"""The composite signature itself (crypto.composite): ML-DSA-65 against the official NIST
vectors shipped in cryptography_vectors, and the encoding's strictness: both halves must
verify, and nothing but the one encoding decodes. (The draft's own vector:
test_composite_draft_vector.py.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa

from crypto.composite import (
    KEY_LEN,
    SIG_LEN,
    CompositeSigningKey,
    CompositeVerifyKey,
    verify_key_from_bytes,
)
from crypto.errors import Refusal, VerificationError
from crypto.keys import VerifyKey


def _kat(name: str) -> list[dict[str, str]]:
    import cryptography_vectors

    path = Path(cryptography_vectors.__file__).parent / "asymmetric" / "MLDSA" / name
    records: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if " = " in line:
            key, value = line.split(" = ", 1)
            if key == "count" and current:
                records.append(current)
                current = {}
            current[key] = value
    records.append(current)
    return records


def test_mldsa65_matches_the_official_deterministic_kat() -> None:
    """NIST's ML-DSA-65 KAT (pure, with context): the key from each seed ``xi`` is the
    vector's, and the vector's signature verifies (ours are hedged, so not byte-equal)."""
    records = _kat("kat_MLDSA_65_det_pure.rsp")
    assert len(records) == 100
    for r in records:
        key = mldsa.MLDSA65PrivateKey.from_seed_bytes(bytes.fromhex(r["xi"]))
        pk = key.public_key()
        assert pk.public_bytes_raw() == bytes.fromhex(r["pk"])
        msg, ctx = bytes.fromhex(r["msg"]), bytes.fromhex(r["ctx"])
        sm = bytes.fromhex(r["sm"])
        sig = sm[: len(sm) - len(msg)]
        assert sm[len(sig) :] == msg
        pk.verify(sig, msg, ctx)
        with pytest.raises(InvalidSignature):
            pk.verify(sig, msg + b"\x00", ctx)


def _halves(sig: bytes) -> tuple[bytes, bytes]:
    return sig[3 : 3 + 3309], sig[3 + 3309 + 2 :]


def _with(sig: bytes, mldsa_sig: bytes, ed_sig: bytes) -> bytes:
    return sig[:3] + mldsa_sig + sig[3 + 3309 : 3 + 3309 + 2] + ed_sig


def test_either_half_broken_is_refused() -> None:
    key = CompositeSigningKey.generate()
    sig = key.sign(b"statement")
    assert len(sig) == SIG_LEN and len(key.public.raw) == KEY_LEN
    key.public.verify(sig, b"statement")
    m, e = _halves(sig)
    flip = bytes([e[0] ^ 1]) + e[1:]
    for bad in (_with(sig, m, flip), _with(sig, bytes([m[0] ^ 1]) + m[1:], e)):
        with pytest.raises(VerificationError) as err:
            key.public.verify(bad, b"statement")
        assert err.value.code is Refusal.BAD_SIGNATURE
    # Another key's valid Ed25519 half, spliced in, is refused too.
    other = CompositeSigningKey.generate().sign(b"statement")
    with pytest.raises(VerificationError):
        key.public.verify(_with(sig, m, _halves(other)[1]), b"statement")


def test_components_do_not_verify_alone() -> None:
    """Neither half is a signature over the message itself: the Ed25519 half does not verify
    as an Ed25519-only signature, the ML-DSA half not as a plain ML-DSA one."""
    raw = os.urandom(64)
    key = CompositeSigningKey(raw)
    m, e = _halves(key.sign(b"statement"))
    with pytest.raises(InvalidSignature):
        ed25519.Ed25519PrivateKey.from_private_bytes(raw[32:]).public_key().verify(e, b"statement")
    with pytest.raises(InvalidSignature):
        mldsa.MLDSA65PrivateKey.from_seed_bytes(raw[:32]).public_key().verify(m, b"statement")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda b: b[:-1],
        lambda b: b + b"\x00",
        lambda b: b"\x02" + b[1:],
        lambda b: b[:1] + b"\x07\xa1" + b[3:],
        lambda b: b"",
    ],
)
def test_only_the_one_encoding_decodes(mangle: object) -> None:
    key = CompositeSigningKey.generate()
    sig = key.sign(b"x")
    with pytest.raises(VerificationError) as err:
        CompositeVerifyKey(mangle(key.public.raw))  # type: ignore[operator]
    assert err.value.code is Refusal.MALFORMED
    with pytest.raises(VerificationError) as err:
        key.public.verify(mangle(sig), b"x")  # type: ignore[operator]
    assert err.value.code is Refusal.BAD_SIGNATURE


def test_key_kind_is_told_by_its_encoding() -> None:
    ed = os.urandom(32)
    legacy = ed25519.Ed25519PrivateKey.from_private_bytes(ed).public_key().public_bytes_raw()
    assert isinstance(verify_key_from_bytes(legacy), VerifyKey)
    composite = CompositeSigningKey.generate().public
    assert verify_key_from_bytes(composite.raw) == composite
    with pytest.raises(VerificationError):
        verify_key_from_bytes(legacy + b"\x00")
    assert "public=" in repr(CompositeSigningKey.generate())
