"""``crypto.encoding.parse`` raises only ``VerificationError(MALFORMED)``, so no decoder built on
it needs a RecursionError catch of its own; and what a member encrypted is never quoted back.

Before: a RecursionError from any reader under ``parse`` escaped it (``decode_signed`` caught it
itself, every other decoder did not), and ``decode_signed`` quoted the unknown payload type and
the bad sender id of decrypted content into its error (and so into whatever logs it).
"""

from __future__ import annotations

from typing import Any

import pytest

import crypto.encoding
from crypto.agreement import Agreement, RevocationList
from crypto.channel import CommitBundle
from crypto.encoding import canonical, parse
from crypto.errors import Refusal, VerificationError
from crypto.identity import Credential, TrustBundle
from crypto.messages import decode_signed
from crypto.strict_json import JsonRefused, loads

DECODERS = [
    parse,
    CommitBundle.decode,
    TrustBundle.decode,
    Credential.decode,
    Agreement.decode,
    RevocationList.decode,
    decode_signed,
]
DEEP = [b"[" * n + b"]" * n for n in (17, 1_000, 100_000)] + [
    b'{"a":' * n + b"1" + b"}" * n for n in (17, 1_000, 100_000)
]


def recursing(*args: Any, **kwargs: Any) -> Any:
    raise RecursionError("maximum recursion depth exceeded")


@pytest.mark.parametrize("decode", DECODERS)
def test_a_recursion_error_below_parse_is_a_refusal(
    decode: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(crypto.encoding, "loads", recursing)
    with pytest.raises(VerificationError) as e:
        decode(b'{"type":"message"}')
    assert e.value.code is Refusal.MALFORMED


@pytest.mark.parametrize("data", DEEP)
def test_strict_json_never_raises_recursion_error(data: bytes) -> None:
    with pytest.raises(JsonRefused):
        loads(data)
    for decode in DECODERS:
        with pytest.raises(VerificationError):
            decode(data)


def refusal(data: dict[str, Any]) -> str:
    with pytest.raises(VerificationError) as e:
        decode_signed(canonical(data))
    assert e.value.code is Refusal.MALFORMED
    return str(e.value)


def test_decrypted_content_is_never_quoted_in_a_refusal() -> None:
    secret = "rendezvous at pier 9"
    assert secret not in refusal({"type": secret})
    common = {"id": "m1", "channel": "inc-1", "ts": 1, "kind": "text", "body": "", "sig": ""}
    message = refusal({"type": "message", **common, "sender": secret})
    assert secret not in message and "sender" in message
    seal = {"type": "seal", "channel": "inc-1", "epoch": 1, "sender": "Pier 9/now"}
    assert "Pier 9" not in refusal(seal)
