"""Statement decoders refuse hostile input with ``VerificationError(MALFORMED)``.

Each case here leaked another exception, or was accepted, before the strict decoders: nesting
raised RecursionError (also inside a decrypted message, fault 5), a non-object credential and a
non-ASCII hash raised TypeError (the latter inside verify_commit, from any dispatcher), a lone
surrogate in a channel id raised UnicodeEncodeError when the epoch secret was opened, and a
trailing newline made a second spelling of a device id.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from crypto.agreement import Agreement, RevocationList
from crypto.channel import CommitBundle, create_commit, verify_commit
from crypto.encoding import b64d, b64e, canonical, parse
from crypto.errors import Refusal, VerificationError
from crypto.identity import Credential, TrustBundle, check_device_id
from crypto.keys import HpkePublicKey, Kem
from crypto.messages import decode_signed
from tests.crypto.forge import resigned
from tests.world import NOW, Device, World, make_world


@pytest.fixture(scope="module")
def net() -> tuple[World, Device, CommitBundle]:
    w = make_world()
    disp = w.device("us-cbp", "dispatch-1", ("dispatcher", "member"))
    boat = w.device("ca-rcmp", "vessel-1", ("member",))
    return w, disp, w.commit(disp, [(disp, "dispatcher"), (boat, "member")], None)


def malformed(decode: Any, data: Any) -> str:
    with pytest.raises(VerificationError) as e:
        decode(data)
    assert e.value.code is Refusal.MALFORMED
    return str(e.value)


@pytest.mark.parametrize("depth", [17, 3000, 100_000])
def test_deep_nesting_in_a_statement(depth: int) -> None:
    malformed(parse, b'{"body":' + b"[" * depth + b"]" * depth + b"}")
    malformed(CommitBundle.decode, b"[" * depth + b"]" * depth)


def test_deep_nesting_in_a_decrypted_message_body() -> None:
    # Fault 5: a validly encrypted message whose plaintext nests deeply.
    malformed(decode_signed, b'{"type":"message","x":' + b"[" * 5000 + b"]" * 5000 + b"}")


@pytest.mark.parametrize(
    "data",
    [
        b'{"v":1,"roots":{},"x":NaN}',
        b'{"v":1,"roots":{},"x":1.5}',  # canonical statements carry no floats
        b'{"v":1,"roots":{},"x":' + b"9" * 25 + b"}",
        b'{"v":1,"roots":{},"v":1}',
        b'{"v":1,"roots":{},"x":"\\ud800"}',
        b'{"v":1,"roots":{},"x":"\xff"}',
        '{"v":1,"roots":{}}'.encode("utf-16"),
    ],
)
def test_non_strict_json(data: bytes) -> None:
    malformed(TrustBundle.decode, data)


def test_non_object_credentials_in_a_bundle(net: tuple[World, Device, CommitBundle]) -> None:
    _, _, bundle = net
    obj = json.loads(bundle.encode())
    for junk in (None, 5, "body", ["body"], True):
        obj["credentials"] = [junk]
        malformed(CommitBundle.decode, canonical(obj))
    malformed(Credential.decode, "body")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "changes",
    [
        {"prev": "é" * 64},
        {"prev": "Z" * 64},
        {"agreement": {"id": "shiprider-gl", "digest": "é" * 32}},
        {"channel": "inc\ud8001"},
        {"channel": "inc-1\n"},
        {"channel": ""},
        {"suite": 1},  # DESIGN §4a: only AES-GCM suites in commits
        {"epoch": 2**64},
    ],
    ids=[
        "prev-non-ascii",
        "prev-not-hex",
        "digest-non-ascii",
        "channel-surrogate",
        "channel-newline",
        "channel-empty",
        "suite-ctr-hmac",
        "epoch-huge",
    ],
)
def test_signed_commit_with_bad_fields(
    net: tuple[World, Device, CommitBundle], changes: dict[str, Any]
) -> None:
    w, disp, bundle = net
    data = resigned(bundle, disp, **{"epoch": 2, "prev": bundle.commit.hash, **changes})
    # Before: decoded, then verify_commit raised TypeError (compare_digest on non-ASCII) or the
    # member's seal_info raised UnicodeEncodeError.
    malformed(CommitBundle.decode, data)


def test_non_ascii_roster_fingerprint(net: tuple[World, Device, CommitBundle]) -> None:
    _, disp, bundle = net
    roster = [{**e.body(), "cred": "é" * 32} for e in bundle.commit.roster]
    malformed(CommitBundle.decode, resigned(bundle, disp, roster=roster))


def test_a_resigned_commit_still_verifies(net: tuple[World, Device, CommitBundle]) -> None:
    w, disp, bundle = net  # the helper above builds valid commits when nothing is wrong
    good = CommitBundle.decode(resigned(bundle, disp))
    assert verify_commit(good, w.trust, NOW, previous=None).epoch == 1


def test_trailing_newline_is_not_a_device_id(net: tuple[World, Device, CommitBundle]) -> None:
    _, disp, _ = net
    malformed(check_device_id, "us-cbp/gw-1\n")
    obj = json.loads(disp.cred.encode())
    obj["body"]["device"] += "\n"
    malformed(Credential.decode, canonical(obj))


@pytest.mark.parametrize("text", ["AA==", "A!A", "AB", "AAA\n", "AAAA AAAA", "é"])
def test_base64url_has_one_spelling(text: str) -> None:
    malformed(b64d, text)


def test_base64url_round_trips() -> None:
    for n in range(10):
        assert b64d(b64e(bytes(range(n)))) == bytes(range(n))


def test_integers_are_64_bit(net: tuple[World, Device, CommitBundle]) -> None:
    w, disp, _ = net
    obj = json.loads(disp.cred.encode())
    obj["body"]["serial"] = 2**64
    malformed(Credential.decode, obj)  # the dict path (an auth message) is checked too
    rl = RevocationList.create(w.roots["us-cbp"], 1, NOW, {1})
    obj = json.loads(rl.encode())
    obj["body"]["serials"] = [1, 2**63]
    malformed(RevocationList.decode, obj)


def test_agreement_ids_and_names_are_printable() -> None:
    for field in ("id", "name"):
        with pytest.raises(VerificationError) as e:
            Agreement.create(
                **{"id": "a", "name": "n", field: "x\x1b[2J"},  # type: ignore[arg-type]
                parties={"us-cbp": ["member"]},
                not_before=0,
                not_after=1,
            )
        assert e.value.code is Refusal.MALFORMED


def test_trust_bundle_has_a_version() -> None:
    malformed(TrustBundle.decode, b'{"roots":{}}')


def test_messages_never_quote_long_input() -> None:
    message = malformed(check_device_id, "x" * 10_000)
    assert "xxxx" not in message


def test_a_member_key_that_cannot_be_sealed_to(net: tuple[World, Device, CommitBundle]) -> None:
    # An all-zero X25519 key decodes, but HPKE refuses it: this was a bare ValueError from
    # cryptography in create_commit, now a refusal that names the member.
    w, disp, _ = net
    boat = w.device("ca-rcmp", "vessel-9", ("member",))
    bad = replace(boat.cred, hpke_key=HpkePublicKey(Kem.X25519, bytes(32)))
    with pytest.raises(VerificationError) as e:
        create_commit(
            issuer=disp.cred,
            issuer_keys=disp.keys,
            channel="inc-2",
            name="",
            agreement=w.agreement,
            members=[(disp.cred, "dispatcher"), (bad, "member")],
            previous=None,
            expires=NOW + 60,
            now=NOW,
        )
    assert e.value.code is Refusal.MALFORMED and "ca-rcmp/vessel-9" in str(e.value)
