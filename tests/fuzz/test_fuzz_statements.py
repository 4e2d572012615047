"""Fuzzers for the statement decoders of :mod:`crypto`: each raises VerificationError (and, for a
decoder, only ``Refusal.MALFORMED``) on any input; anything else fails the test.

Inputs: random bytes; random JSON; deep nesting; and the encoding of a valid statement with
one value somewhere inside it replaced by random JSON (the most productive: it reaches every
field check with every wrong type). Decoders that take a parsed object (from a control message) get
that too. A decoded commit bundle is then given to ``verify_commit``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.errors import RemoteProtocolError
from bridge.wire import control as p
from crypto.agreement import Agreement, RevocationList
from crypto.channel import CommitBundle, verify_commit
from crypto.confirm import Confirmation, decode_confirmation
from crypto.encoding import canonical, parse
from crypto.errors import Refusal, VerificationError
from crypto.identity import Credential, TrustBundle
from tests.world import NOW, make_world

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

W = make_world()
DISP = W.device("us-cbp", "dispatch-1", ("dispatcher", "member"))
BOAT = W.device("ca-rcmp", "vessel-1", ("member",), kind="vessel")
OBS = W.device("mx-gn", "c4-1", ("observer",))
BUNDLE1 = W.commit(DISP, [(DISP, "dispatcher"), (BOAT, "member"), (OBS, "observer")], None)
BUNDLE2 = W.commit(DISP, [(DISP, "dispatcher"), (BOAT, "member")], BUNDLE1)
REVOCATIONS = RevocationList.create(W.roots["us-cbp"], 2, NOW, {7, 9})

SAMPLES: dict[str, tuple[bytes, Callable[[bytes], object]]] = {
    "credential": (DISP.cred.encode(), Credential.decode),
    "agreement": (W.agreement.encode(), Agreement.decode),
    "revocation": (REVOCATIONS.encode(), RevocationList.decode),
    "trust": (W.trust.encode(), TrustBundle.decode),
    "bundle": (BUNDLE2.encode(), CommitBundle.decode),
    "statement": (BUNDLE1.encode(), parse),
    "confirmation": (
        Confirmation("inc-1", 2, "a" * 64, BOAT.id, NOW).signed(BOAT.keys.sign).encode(),
        decode_confirmation,
    ),
}

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=16),
    st.sampled_from(["us-cbp", "us-cbp/x\n", "dispatcher", "\ud800", "é" * 64, "0" * 64, ""]),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)


@st.composite
def mutated(draw: st.DrawFn, sample: bytes) -> bytes:
    """``sample`` with one value (found by a random walk from the top) replaced."""
    root = json.loads(sample)
    node: Any = root
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            break
        key = draw(st.sampled_from(keys))
        child = node[key]
        if not isinstance(child, dict | list) or draw(st.integers(0, 3)) == 0:
            node[key] = draw(JSON)
            break
        node = child
    if draw(st.booleans()):
        try:
            return canonical(root)
        except ValueError:  # a float: canonical() refuses to write one
            pass
    return json.dumps(root).encode("utf-8", "surrogatepass")


def inputs(sample: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=300),
        JSON.map(lambda v: json.dumps(v).encode("utf-8", "surrogatepass")),
        st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n),
        st.integers(1, 5000).map(lambda n: b'{"body":' + b"[" * n + b"]" * n + b"}"),
        mutated(sample),
        mutated(sample),
        mutated(sample),
    )


def decodes_or_malformed(decode: Callable[[bytes], object], data: bytes) -> object | None:
    try:
        return decode(data)
    except VerificationError as exc:
        assert exc.code is Refusal.MALFORMED, exc
        return None


# The decoders that also take an already parsed object: what the relay passes on from an
# ``auth`` or ``revocation`` control message, parsed by the wire's rules (floats allowed).
FROM_CONTROL = {"credential", "agreement", "revocation"}


def _fuzzer(name: str) -> Callable[[], None]:
    sample, decode = SAMPLES[name]

    @FUZZ
    @given(inputs(sample))
    def test(data: bytes) -> None:
        decodes_or_malformed(decode, data)
        if name in FROM_CONTROL:
            try:
                obj = p.parse_json(data)
            except RemoteProtocolError:
                return
            decodes_or_malformed(decode, obj)

    test.__name__ = f"test_{name}_decode_raises_only_malformed"
    return test


test_credential_decode = _fuzzer("credential")
test_agreement_decode = _fuzzer("agreement")
test_revocation_list_decode = _fuzzer("revocation")
test_trust_bundle_decode = _fuzzer("trust")
test_canonical_parse = _fuzzer("statement")
test_confirmation_decode = _fuzzer("confirmation")


@FUZZ
@given(inputs(BUNDLE2.encode()), st.booleans())
def test_commit_bundle_decode_and_verify_raise_only_verification_errors(
    data: bytes, with_previous: bool
) -> None:
    bundle = decodes_or_malformed(CommitBundle.decode, data)
    if bundle is None:
        return
    assert isinstance(bundle, CommitBundle)
    previous = BUNDLE1.commit if with_previous else None
    try:
        verify_commit(bundle, W.trust, NOW, previous=previous, revocations={"us-cbp": REVOCATIONS})
    except VerificationError:
        pass


def test_the_samples_are_valid() -> None:
    for name, (sample, decode) in SAMPLES.items():
        assert decode(sample) is not None, name
    verify_commit(CommitBundle.decode(BUNDLE2.encode()), W.trust, NOW, previous=BUNDLE1.commit)
