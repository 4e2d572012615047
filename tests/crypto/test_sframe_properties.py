"""Property tests and a small fuzzer for crypto.sframe.

* any single flipped bit in header, metadata or ciphertext/tag → DecryptError (suites 1–5);
* header encode/decode round-trips over the whole 64-bit KID and CTR range (RFC 9605 §4.3);
* arbitrary or truncated input to decode_header/unprotect raises DecryptError and nothing
  else: the parser's only documented failure.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.errors import CounterExhaustedError, DecryptError
from crypto.sframe import (
    MAX_VALUE,
    CipherSuite,
    SFrameKey,
    decode_header,
    encode_header,
    protect,
    suite_params,
    unprotect,
)

SUITES = list(CipherSuite)
BASE_KEY = bytes(range(16))
# Key derivation is the slow part; derive once per (suite, kid) used below.
KEYS = {(s, kid): SFrameKey(s, BASE_KEY, kid) for s in SUITES for kid in (0, 7, 300, MAX_VALUE)}

suites = st.sampled_from(SUITES)
kids = st.sampled_from([0, 7, 300, MAX_VALUE])
values = st.integers(min_value=0, max_value=MAX_VALUE)
small = st.binary(max_size=64)


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@settings(max_examples=300, deadline=None)
@given(suite=suites, kid=kids, ctr=values, pt=small, md=small, data=st.data())
def test_any_single_bit_flip_is_rejected(
    suite: CipherSuite, kid: int, ctr: int, pt: bytes, md: bytes, data: st.DataObject
) -> None:
    key = KEYS[suite, kid]
    frame = key.protect(ctr, pt, md)
    assert key.unprotect(frame, md) == pt
    bits_in_frame = len(frame) * 8
    bit = data.draw(st.integers(0, bits_in_frame + len(md) * 8 - 1), label="bit")
    if bit < bits_in_frame:  # header, ciphertext or tag
        frame = _flip(frame, bit)
    else:  # metadata
        md = _flip(md, bit - bits_in_frame)
    with pytest.raises(DecryptError):
        key.unprotect(frame, md)


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_every_bit_of_one_frame(suite: CipherSuite) -> None:
    """Exhaustive over one small frame per suite, so no position is left to chance."""
    key = KEYS[suite, 300]
    md = b"meta"
    frame = key.protect(0x1234, b"voice!", md)
    for bit in range(len(frame) * 8):
        with pytest.raises(DecryptError):
            key.unprotect(_flip(frame, bit), md)
    for bit in range(len(md) * 8):
        with pytest.raises(DecryptError):
            key.unprotect(frame, _flip(md, bit))


@settings(max_examples=500)
@given(kid=values, ctr=values, tail=st.binary(max_size=8))
def test_header_round_trip(kid: int, ctr: int, tail: bytes) -> None:
    header = encode_header(kid, ctr)
    assert 1 <= len(header) <= 17
    assert decode_header(header + tail) == (kid, ctr, len(header))


@settings(max_examples=200)
@given(suite=suites, kid=kids, ctr=values)
def test_key_header_matches_encode_header(suite: CipherSuite, kid: int, ctr: int) -> None:
    frame = KEYS[suite, kid].protect(ctr, b"")
    assert frame.startswith(KEYS[suite, kid].header(ctr))
    assert KEYS[suite, kid].header(ctr) == encode_header(kid, ctr)


@pytest.mark.parametrize(("kid", "ctr"), [(-1, 0), (0, -1), (MAX_VALUE + 1, 0), (0, MAX_VALUE + 1)])
def test_encode_header_rejects_out_of_range(kid: int, ctr: int) -> None:
    with pytest.raises(ValueError):
        encode_header(kid, ctr)


def test_protect_counter_bounds() -> None:
    key = KEYS[CipherSuite.AES_128_GCM_SHA256_128, 0]
    assert key.unprotect(key.protect(MAX_VALUE, b"x")) == b"x"
    with pytest.raises(CounterExhaustedError):
        key.protect(MAX_VALUE + 1, b"x")
    with pytest.raises(ValueError):
        key.protect(-1, b"x")


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_wrong_kid_wrong_key_and_wrong_suite_are_rejected(suite: CipherSuite) -> None:
    frame = KEYS[suite, 7].protect(5, b"payload", b"md")
    with pytest.raises(DecryptError):
        KEYS[suite, 300].unprotect(frame, b"md")  # KID in header is not this key's
    with pytest.raises(DecryptError):
        unprotect(suite, bytes(16), frame, b"md")  # another base key
    other = next(s for s in SUITES if s != suite)
    with pytest.raises(DecryptError):
        unprotect(other, BASE_KEY, frame, b"md")
    assert unprotect(suite, BASE_KEY, frame, b"md") == b"payload"
    assert protect(suite, BASE_KEY, 7, 5, b"payload", b"md") == frame


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_every_truncation_is_rejected(suite: CipherSuite) -> None:
    key = KEYS[suite, 300]
    frame = key.protect(70000, b"twenty ms of voice", b"md")
    for cut in range(len(frame)):
        with pytest.raises(DecryptError):
            key.unprotect(frame[:cut], b"md")
    body_start = decode_header(frame)[2]
    for cut in range(suite_params(suite).nt):
        with pytest.raises(DecryptError):
            key.unprotect_body(frame[:body_start], 70000, b"\x00" * cut, b"md")


# --- Fuzz: only DecryptError may escape ------------------------------------------------


@settings(max_examples=1000)
@given(data=st.binary(max_size=40))
def test_fuzz_decode_header(data: bytes) -> None:
    try:
        kid, ctr, n = decode_header(data)
    except DecryptError:
        return
    assert 1 <= n <= len(data)
    assert 0 <= kid <= MAX_VALUE and 0 <= ctr <= MAX_VALUE


@settings(max_examples=300, deadline=None)
@given(suite=suites, data=st.binary(max_size=64), md=st.binary(max_size=8))
def test_fuzz_unprotect(suite: CipherSuite, data: bytes, md: bytes) -> None:
    with pytest.raises(DecryptError):
        KEYS[suite, 7].unprotect(data, md)
    with pytest.raises(DecryptError):
        unprotect(suite, BASE_KEY, data, md)
