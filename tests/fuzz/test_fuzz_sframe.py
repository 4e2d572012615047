"""Fuzzers for SFrame (RFC 9605) on garbage: ``decode_header``, ``SFrameKey.unprotect`` and
``unprotect_body`` and one-shot ``unprotect`` raise the one opaque DecryptError and nothing
else, for random bytes, for a valid header of this key's KID followed by random bytes (which
reaches the AEAD), and for a real frame with bytes cut, appended or changed.

(tests/crypto/test_sframe_properties.py fuzzes plain random bytes; these reach further.)
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypto.errors import DecryptError
from crypto.sframe import MAX_VALUE, CipherSuite, SFrameKey, decode_header, encode_header, unprotect

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BASE_KEY = bytes(range(32))
KID = 300
KEYS = {s: SFrameKey(s, BASE_KEY, KID) for s in CipherSuite}
suites = st.sampled_from(list(CipherSuite))
counters = st.integers(0, MAX_VALUE)


@st.composite
def garbage_frames(draw: st.DrawFn, suite: CipherSuite) -> bytes:
    kind = draw(st.integers(0, 2))
    if kind == 0:
        return draw(st.binary(max_size=80))
    if kind == 1:  # our KID, any CTR, random body: the AEAD itself sees garbage
        return encode_header(KID, draw(counters)) + draw(st.binary(max_size=64))
    frame = bytearray(KEYS[suite].protect(draw(counters), draw(st.binary(max_size=32))))
    at = draw(st.integers(0, len(frame) - 1))
    edit = draw(st.integers(0, 2))  # one edit: two could undo each other
    if edit == 0:
        del frame[at:]
    elif edit == 1:
        frame += draw(st.binary(min_size=1, max_size=8))
    else:
        frame[at] ^= draw(st.integers(1, 255))
    return bytes(frame)


@FUZZ
@given(suites, st.data(), st.binary(max_size=8))
def test_unprotect_garbage_raises_only_decrypt_error(
    suite: CipherSuite, data: st.DataObject, metadata: bytes
) -> None:
    frame = data.draw(garbage_frames(suite))
    key = KEYS[suite]
    for view in (frame, bytearray(frame), memoryview(frame)):
        with pytest.raises(DecryptError):
            key.unprotect(view, metadata)  # type: ignore[arg-type]
    with pytest.raises(DecryptError):
        unprotect(suite, BASE_KEY, frame, metadata)


@FUZZ
@given(suites, st.binary(max_size=20), st.integers(-(2**70), 2**70), st.binary(max_size=40))
def test_unprotect_body_garbage_raises_only_decrypt_error(
    suite: CipherSuite, header: bytes, ctr: int, body: bytes
) -> None:
    with pytest.raises(DecryptError):
        KEYS[suite].unprotect_body(header, ctr, body)


@FUZZ
@given(st.binary(max_size=20))
def test_decode_header_on_any_bytes_like(data: bytes) -> None:
    results: list[tuple[int, int, int] | None] = []
    for view in (data, bytearray(data), memoryview(data)):
        try:
            results.append(decode_header(view))  # type: ignore[arg-type]
        except DecryptError:
            results.append(None)
    assert results[0] == results[1] == results[2]
    if results[0] is not None:
        kid, ctr, length = results[0]
        assert 1 <= length <= len(data) and 0 <= kid <= MAX_VALUE and 0 <= ctr <= MAX_VALUE
        assert decode_header(data[:length]) == results[0]  # the header alone parses the same
