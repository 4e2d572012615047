"""Fuzzer for :func:`crypto.checkpoint.decode_checkpoint` (it parses what another member sent
in band): on any bytes it returns a Checkpoint or raises VerificationError(MALFORMED)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypto.checkpoint import Checkpoint, decode_checkpoint
from crypto.errors import Refusal, VerificationError

FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VALID = Checkpoint(
    "inc-1",
    b"\x01" * 32,
    7,
    3,
    b"\x02" * 32,
    100,
    tuple(bytes([i]) * 8 for i in range(10)),
    True,
    b"\x03" * 64,
).encode()


def _decodes_or_refuses(data: bytes) -> None:
    try:
        cp = decode_checkpoint(data)
    except VerificationError as exc:
        assert exc.code is Refusal.MALFORMED
        return
    assert isinstance(cp, Checkpoint) and cp.encode() == data


def test_the_valid_sample_decodes() -> None:
    assert decode_checkpoint(VALID).encode() == VALID


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    _decodes_or_refuses(data)


@FUZZ
@given(st.integers(0, len(VALID) - 1), st.integers(0, 255), st.integers(0, len(VALID)))
def test_one_byte_changed_then_cut(at: int, value: int, cut: int) -> None:
    data = bytearray(VALID)
    data[at] = value
    _decodes_or_refuses(bytes(data[:cut]) if cut < at else bytes(data))


@FUZZ
@given(st.binary(max_size=40), st.integers(0, len(VALID)))
def test_bytes_inserted(junk: bytes, at: int) -> None:
    _decodes_or_refuses(VALID[:at] + junk + VALID[at:])
