"""Commits each member can afford (issue 10, :mod:`crypto.commit_split`): a member's view of a
commit carries its own sealed secret, the roster against the commit it holds and only the
credentials it lacks; rebuilt, it verifies and opens exactly as the full bundle does, and a
view that differs from what the issuer signed is refused."""

from __future__ import annotations

import dataclasses

import pytest

from crypto.channel import CommitBundle
from crypto.commit_split import MemberView, member_view, rebuild
from crypto.errors import Refusal, VerificationError
from crypto.identity import Credential
from crypto.keys import Kem
from tests.world import Device, World, make_world

N = 40


@pytest.fixture
def w() -> World:
    w = make_world()
    w.device("us-cbp", "disp", ("dispatcher", "member"), Kem.MLKEM768_X25519)
    for i in range(N):
        w.device("ca-rcmp", f"m{i:02d}", ("member",), Kem.MLKEM768_X25519)
    return w


def everyone(w: World) -> list[tuple[Device, str]]:
    return [(d, "dispatcher" if d.id == "us-cbp/disp" else "member") for d in w.devices.values()]


def cache_of(bundle: CommitBundle) -> dict[str, Credential]:
    return {c.fingerprint: c for c in bundle.credentials.values()}


def chain(w: World, second: list[tuple[Device, str]]) -> tuple[CommitBundle, CommitBundle]:
    disp = w.devices["us-cbp/disp"]
    e1 = w.commit(disp, everyone(w), None)
    return e1, w.commit(disp, second, e1, now=w.now + 1)


def opened(w: World, name: str, e1: CommitBundle, e2: CommitBundle) -> int | None:
    """The epoch ``name`` reaches from e1 with its view of e2 (None: refused)."""
    device = w.devices[name]
    m = w.member(device)
    m.process_commit(e1, w.now + 2)
    view = MemberView.decode(
        member_view(e2, device.id, e1.commit, frozenset(cache_of(e1))).encode()
    )
    m.process_commit(rebuild(view, e1.commit, e1.agreement, cache_of(e1)), w.now + 2)
    return m.epoch


def test_a_rekey_view_carries_one_sealed_secret_and_no_credential(w: World) -> None:
    e1, e2 = chain(w, everyone(w))
    view = member_view(e2, "ca-rcmp/m07", e1.commit, frozenset(cache_of(e1)))
    data = view.encode()
    assert view.ops == ((0, N + 1),) and view.credentials == () and view.agreement is None
    assert view.sealed == e2.sealed["ca-rcmp/m07"]
    for other, sealed in e2.sealed.items():
        if other != "ca-rcmp/m07":
            assert sealed not in data
    assert len(data) * 20 < len(e2.encode())  # vs the full bundle every member gets today
    assert opened(w, "ca-rcmp/m07", e1, e2) == 2


def test_a_removal_and_an_addition_rebuild_the_signed_roster(w: World) -> None:
    newcomer = w.device("us-cbp", "late", ("member",), Kem.MLKEM768_X25519)
    second = [(d, r) for d, r in everyone(w) if d.id not in ("ca-rcmp/m03", newcomer.id)]
    e1 = w.commit(w.devices["us-cbp/disp"], second, None)
    third = [(d, r) for d, r in second if d.id != "ca-rcmp/m11"] + [(newcomer, "member")]
    e2 = w.commit(w.devices["us-cbp/disp"], third, e1, now=w.now + 1)
    view = member_view(e2, "ca-rcmp/m20", e1.commit, frozenset(cache_of(e1)))
    assert len(view.credentials) == 1  # only the newcomer's
    assert opened(w, "ca-rcmp/m20", e1, e2) == 2
    # the newcomer has no base: the whole roster and every credential, and it joins
    joiner = member_view(e2, newcomer.id, None)
    m = w.member(newcomer)
    m.process_commit(rebuild(joiner, None, None, {}), w.now + 2)
    assert m.epoch == 2


def test_a_view_unlike_what_the_issuer_signed_is_refused(w: World) -> None:
    e1, e2 = chain(w, [(d, r) for d, r in everyone(w) if d.id != "ca-rcmp/m05"])
    device = w.devices["ca-rcmp/m09"]
    honest = member_view(e2, device.id, e1.commit, frozenset(cache_of(e1)))
    # the relay keeps the removed member in: the whole base roster as one run
    kept = dataclasses.replace(honest, ops=((0, N + 1),))
    m = w.member(device)
    m.process_commit(e1, w.now + 2)
    with pytest.raises(VerificationError) as e:
        m.process_commit(rebuild(kept, e1.commit, e1.agreement, cache_of(e1)), w.now + 2)
    assert e.value.code is Refusal.BAD_SIGNATURE
    # against another base than the one it names
    other = w.commit(w.devices["us-cbp/disp"], everyone(w), None)
    with pytest.raises(VerificationError) as e:
        rebuild(honest, other.commit, other.agreement, cache_of(e1))
    assert e.value.code is Refusal.WRONG_PREVIOUS
    # a run beyond the base, and a credential withheld
    with pytest.raises(VerificationError) as e:
        rebuild(dataclasses.replace(honest, ops=((0, N + 5),)), e1.commit, e1.agreement, {})
    assert e.value.code is Refusal.MALFORMED
    with pytest.raises(VerificationError) as e:
        rebuild(honest, e1.commit, e1.agreement, {})
    assert e.value.code is Refusal.UNKNOWN_DEVICE
    assert m.epoch == 1


@pytest.mark.parametrize(
    "junk",
    [b"{}", b'{"v":2}', b'{"v":1,"ops":[[0,-1]]}', b"[]", b"\xff"],
)
def test_malformed_views_are_refused(junk: bytes) -> None:
    with pytest.raises(VerificationError) as e:
        MemberView.decode(junk)
    assert e.value.code is Refusal.MALFORMED
