"""Post-quantum by policy: composite-signed roots, credentials, agreements, revocation lists
and commits; the trust bundle's ``min_signature: composite``; the migration from Ed25519-only
files; and the agreement's minimum KEM."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from crypto.agreement import (
    Agreement,
    RevocationList,
    verify_agreement,
    verify_revocation_list,
)
from crypto.channel import CommitBundle, create_commit, verify_commit
from crypto.composite import CompositeVerifyKey
from crypto.encoding import b64d, b64e, canonical
from crypto.errors import Refusal, VerificationError
from crypto.identity import (
    AgencyRoot,
    Credential,
    DeviceKeys,
    TrustBundle,
    issue_credential,
    verify_credential,
)
from crypto.keys import Kem

NOW = 1_800_000_000
DAY = 86400
PARTIES = {"us-cbp": ["dispatcher", "member"], "ca-rcmp": ["member"]}


def _flip(sig: bytes, where: int) -> bytes:
    return sig[:where] + bytes([sig[where] ^ 1]) + sig[where + 1 :]


ML_DSA_BYTE, ED25519_BYTE = 10, -3  # a byte inside each half of a composite signature


class PQ:
    """Two agencies with composite roots, a composite-only trust bundle, a hybrid-minimum
    agreement, a dispatcher with a composite statement key and a hybrid member."""

    def __init__(self, min_kem: Kem | None = Kem.MLKEM768_X25519) -> None:
        self.roots = {a: AgencyRoot.generate(a, composite=True) for a in PARTIES}
        self.trust = TrustBundle(
            {a: r.public for a, r in self.roots.items()}, min_signature="composite"
        )
        a = Agreement.create("pq", "PQ", dict(PARTIES), NOW - 60, NOW + 90 * DAY, min_kem=min_kem)
        for root in self.roots.values():
            a = a.add_signature(root)
        self.agreement = a
        self.serial = 0

    def device(
        self, agency: str, name: str, roles: tuple[str, ...], kem: Kem, *, composite: bool = False
    ) -> tuple[Credential, DeviceKeys]:
        keys = DeviceKeys.generate(kem, composite=composite)
        self.serial += 1
        cred = issue_credential(
            self.roots[agency], name, keys, roles=roles, not_before=NOW - 60,
            not_after=NOW + 30 * DAY, serial=self.serial,
        )  # fmt: skip
        return cred, keys

    def commit(
        self, issuer: tuple[Credential, DeviceKeys], members: list[tuple[Credential, str]]
    ) -> CommitBundle:
        bundle, _ = create_commit(
            issuer=issuer[0], issuer_keys=issuer[1], channel="inc", name="Incident",
            agreement=self.agreement, members=members, previous=None, expires=NOW + DAY,
            now=NOW,
        )  # fmt: skip
        return bundle


def _resign_field(cred: Credential, sig: bytes) -> Credential:
    return Credential.decode(canonical({"body": cred.body(), "sig": b64e(sig)}))


def test_composite_credential_verifies_and_either_half_broken_is_refused() -> None:
    w = PQ()
    cred, _ = w.device("ca-rcmp", "boat", ("member",), Kem.MLKEM768_X25519)
    assert verify_credential(cred, w.trust, NOW) is cred
    again = Credential.decode(cred.encode())
    assert again.encode() == cred.encode()  # round-trips byte-exactly
    for where in (ML_DSA_BYTE, ED25519_BYTE):
        broken = _resign_field(cred, _flip(cred.signature, where))
        with pytest.raises(VerificationError) as err:
            verify_credential(broken, w.trust, NOW)
        assert err.value.code is Refusal.BAD_SIGNATURE


def test_ed25519_only_statements_are_refused_under_a_composite_root() -> None:
    """The agency's old Ed25519 root (or its Ed25519 half alone) cannot vouch any more."""
    w = PQ()
    cred, keys = w.device("ca-rcmp", "boat", ("member",), Kem.MLKEM768_X25519)
    old_root = AgencyRoot.generate("ca-rcmp")
    legacy = issue_credential(
        old_root, "boat", keys, roles=("member",), not_before=NOW - 60,
        not_after=NOW + DAY, serial=99,
    )  # fmt: skip
    with pytest.raises(VerificationError) as err:
        verify_credential(legacy, w.trust, NOW)
    assert err.value.code is Refusal.BAD_SIGNATURE
    ed_half = cred.signature[-64:]
    with pytest.raises(VerificationError):
        verify_credential(_resign_field(cred, ed_half), w.trust, NOW)


def test_composite_bundle_refuses_ed25519_roots_and_round_trips() -> None:
    w = PQ()
    encoded = w.trust.encode()
    assert json.loads(encoded)["min_signature"] == "composite"
    assert TrustBundle.decode(encoded).encode() == encoded
    with pytest.raises(VerificationError, match="Ed25519-only"):
        w.trust.pin("mx-gn", AgencyRoot.generate("mx-gn").public)
    obj = json.loads(encoded)
    obj["roots"]["mx-gn"] = b64e(AgencyRoot.generate("mx-gn").public.raw)
    with pytest.raises(VerificationError, match="Ed25519-only"):
        TrustBundle.decode(canonical(obj))
    obj = json.loads(encoded)
    obj["min_signature"] = "rsa"
    with pytest.raises(VerificationError) as err:
        TrustBundle.decode(canonical(obj))
    assert err.value.code is Refusal.MALFORMED


def test_legacy_files_verify_unchanged_under_the_default_policy() -> None:
    """Migration: a bundle, credential and agreement of the earlier version (no
    min_signature, no statement_key, no min_kem) decode, re-encode byte-exactly and verify;
    a bundle may pin Ed25519 and composite roots side by side while partners move."""
    old = AgencyRoot.generate("us-cbp")
    new = AgencyRoot.generate("ca-rcmp", composite=True)
    bundle_bytes = canonical({"v": 1, "roots": {"us-cbp": b64e(old.public.raw)}})
    bundle = TrustBundle.decode(bundle_bytes)
    assert bundle.encode() == bundle_bytes and not bundle.requires_composite
    bundle.pin("ca-rcmp", new.public)
    assert isinstance(TrustBundle.decode(bundle.encode()).root("ca-rcmp"), CompositeVerifyKey)
    keys = DeviceKeys.generate()
    cred = issue_credential(
        old, "gw", keys, roles=("member",), not_before=NOW - 60, not_after=NOW + DAY, serial=1
    )
    assert "statement_key" not in json.loads(cred.encode())["body"]
    verify_credential(Credential.decode(cred.encode()), bundle, NOW)
    a = Agreement.create("mixed", "Mixed", dict(PARTIES), NOW - 60, NOW + DAY)
    a = a.add_signature(old).add_signature(new)
    assert "min_kem" not in json.loads(a.encode())["body"]
    assert Agreement.decode(a.encode()).encode() == a.encode()
    verify_agreement(Agreement.decode(a.encode()), bundle, NOW)
    assert a.minimum_kem is Kem.X25519


def test_agreement_and_revocation_list_carry_composite_signatures() -> None:
    w = PQ()
    a = Agreement.decode(w.agreement.encode())
    assert a.encode() == w.agreement.encode()
    verify_agreement(a, w.trust, NOW)
    sigs = dict(a.signatures)
    sigs["ca-rcmp"] = _flip(sigs["ca-rcmp"], ML_DSA_BYTE)
    with pytest.raises(VerificationError) as err:
        verify_agreement(replace(a, signatures=sigs), w.trust, NOW)
    assert err.value.code is Refusal.BAD_SIGNATURE
    rl = RevocationList.create(w.roots["ca-rcmp"], 1, NOW, {7})
    decoded = RevocationList.decode(rl.encode())
    assert decoded.encode() == rl.encode()
    verify_revocation_list(decoded, w.trust)
    with pytest.raises(VerificationError):
        verify_revocation_list(replace(rl, signature=_flip(rl.signature, ED25519_BYTE)), w.trust)


def test_composite_commit_verifies_and_a_broken_half_is_refused() -> None:
    w = PQ()
    disp = w.device("us-cbp", "d1", ("dispatcher", "member"), Kem.MLKEM768_X25519, composite=True)
    boat = w.device("ca-rcmp", "boat", ("member",), Kem.MLKEM768_X25519)
    bundle = CommitBundle.decode(
        w.commit(disp, [(disp[0], "dispatcher"), (boat[0], "member")]).encode()
    )
    assert bundle.encode() == CommitBundle.decode(bundle.encode()).encode()
    assert verify_commit(bundle, w.trust, NOW, previous=None) == bundle.commit
    for where in (ML_DSA_BYTE, ED25519_BYTE):
        forged = replace(bundle.commit, signature=_flip(bundle.commit.signature, where))
        with pytest.raises(VerificationError) as err:
            verify_commit(replace(bundle, commit=forged), w.trust, NOW, previous=None)
        assert err.value.code is Refusal.BAD_SIGNATURE


def test_composite_policy_refuses_a_commit_signed_ed25519_only() -> None:
    """A dispatcher without a composite statement key signs with Ed25519 alone: refused."""
    w = PQ()
    disp = w.device("us-cbp", "d1", ("dispatcher", "member"), Kem.MLKEM768_X25519)
    bundle = w.commit(disp, [(disp[0], "dispatcher")])
    with pytest.raises(VerificationError, match="no composite statement key") as err:
        verify_commit(bundle, w.trust, NOW, previous=None)
    assert err.value.code is Refusal.BAD_SIGNATURE
    relaxed = TrustBundle(dict(w.trust.roots))  # the default policy accepts it
    assert verify_commit(bundle, relaxed, NOW, previous=None) == bundle.commit


def test_commit_sealing_to_an_x25519_member_under_hybrid_minimum_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = PQ()
    disp = w.device("us-cbp", "d1", ("dispatcher", "member"), Kem.MLKEM768_X25519, composite=True)
    gw = w.device("ca-rcmp", "gw", ("member",), Kem.X25519)
    members = [(disp[0], "dispatcher"), (gw[0], "member")]
    with pytest.raises(VerificationError, match="weaker than agreement") as err:
        w.commit(disp, members)
    assert err.value.code is Refusal.ROLE_NOT_ALLOWED
    # A dispatcher whose software skips the check: every member refuses the commit.
    monkeypatch.setattr(Agreement, "check_kem", lambda self, device, kem: None)
    bundle = w.commit(disp, members)
    monkeypatch.undo()
    with pytest.raises(VerificationError, match="ca-rcmp/gw") as err:
        verify_commit(bundle, w.trust, NOW, previous=None)
    assert err.value.code is Refusal.ROLE_NOT_ALLOWED
    # An agreement that says x25519 allows it.
    lax = PQ(min_kem=Kem.X25519)
    d2 = lax.device("us-cbp", "d1", ("dispatcher", "member"), Kem.X25519, composite=True)
    g2 = lax.device("ca-rcmp", "gw", ("member",), Kem.X25519)
    ok = lax.commit(d2, [(d2[0], "dispatcher"), (g2[0], "member")])
    assert verify_commit(ok, lax.trust, NOW, previous=None) == ok.commit


def test_min_kem_is_signed_and_strictly_decoded() -> None:
    w = PQ()
    obj = json.loads(w.agreement.encode())
    assert obj["body"]["min_kem"] == "mlkem768x25519"
    obj["body"]["min_kem"] = "x25519"  # downgraded by whoever relays it
    with pytest.raises(VerificationError) as err:
        verify_agreement(Agreement.decode(canonical(obj)), w.trust, NOW)
    assert err.value.code is Refusal.BAD_SIGNATURE
    obj["body"]["min_kem"] = "rot13"
    with pytest.raises(VerificationError) as err:
        Agreement.decode(canonical(obj))
    assert err.value.code is Refusal.MALFORMED
    bad = json.loads(w.agreement.encode())
    bad["body"]["min_kem"] = 1
    with pytest.raises(VerificationError):
        Agreement.decode(canonical(bad))
    assert b64d(b64e(b"x")) == b"x"
