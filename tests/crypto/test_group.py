"""Channel membership in action: epochs, removal, grace, replay, attribution, counters."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.channel import CommitBundle
from crypto.counters import MemoryCounterStore, SendCounter
from crypto.errors import DecryptError, Refusal, VerificationError
from crypto.group import CONTEXT_DATA, NotPermittedError, split_kid
from crypto.keys import Kem
from crypto.messages import BurstHasher, BurstSeal
from crypto.sframe import decode_header
from tests.world import NOW, make_world


@pytest.fixture
def net():  # type: ignore[no-untyped-def]
    w = make_world()
    disp = w.device("us-cbp", "dispatch-1", ("dispatcher", "member"))
    boat = w.device("ca-rcmp", "vessel-1", ("member",), kem=Kem.MLKEM768_X25519)
    gw = w.device("us-cbp", "gw-1", ("member",))
    obs = w.device("mx-gn", "c4-1", ("observer",))
    b1 = w.commit(
        disp, [(disp, "dispatcher"), (boat, "member"), (gw, "member"), (obs, "observer")], None
    )
    members = {d.id: w.member(d) for d in (disp, boat, gw, obs)}
    for m in members.values():
        m.process_commit(CommitBundle.decode(b1.encode()), NOW)
    return w, (disp, boat, gw, obs), members, b1


def test_everyone_hears_a_member(net) -> None:  # type: ignore[no-untyped-def]
    w, (disp, boat, gw, obs), m, _ = net
    frame = m[gw.id].protect(b"opus-frame")
    for d in (disp, boat, obs):
        r = m[d.id].unprotect(frame, NOW)
        assert (r.payload, r.sender, r.epoch) == (b"opus-frame", gw.id, 1)


def test_observer_may_not_send(net) -> None:  # type: ignore[no-untyped-def]
    _, (_, _, _, obs), m, _ = net
    assert not m[obs.id].may_send()
    with pytest.raises(NotPermittedError):
        m[obs.id].protect(b"x")


def test_removed_member_cannot_read_next_epoch(net) -> None:  # type: ignore[no-untyped-def]
    w, (disp, boat, gw, obs), m, b1 = net
    b2 = w.commit(disp, [(disp, "dispatcher"), (boat, "member"), (obs, "observer")], b1)
    for d in (disp, boat, gw, obs):
        m[d.id].process_commit(CommitBundle.decode(b2.encode()), NOW + 1)
    assert m[gw.id].removed and not m[gw.id].may_send()
    assert gw.id not in b2.sealed
    frame = m[boat.id].protect(b"after removal")
    assert m[disp.id].unprotect(frame, NOW + 1).payload == b"after removal"
    with pytest.raises(DecryptError):
        m[gw.id].unprotect(frame, NOW + 1)
    # Its own frames from the old epoch stop opening for others once the grace period ends.
    with pytest.raises(NotPermittedError):
        m[gw.id].protect(b"still here?")


def test_old_epoch_grace_then_erased(net) -> None:  # type: ignore[no-untyped-def]
    w, (disp, boat, gw, obs), m, b1 = net
    late = [m[gw.id].protect(f"in flight {i}".encode()) for i in range(2)]
    b2 = w.commit(disp, [(disp, "dispatcher"), (boat, "member"), (gw, "member")], b1)
    m[boat.id].process_commit(b2, NOW + 10)
    assert m[boat.id].unprotect(late[0], NOW + 12).payload == b"in flight 0"
    assert m[boat.id].get_timer() == NOW + 10 + m[boat.id].grace
    with pytest.raises(DecryptError):  # after the grace period the old keys are gone
        m[boat.id].unprotect(late[1], NOW + 10 + m[boat.id].grace + 0.01)
    assert m[boat.id].get_timer() is None


def test_relay_substituted_secret_is_caught(net) -> None:  # type: ignore[no-untyped-def]
    w, (disp, boat, gw, obs), m, b1 = net
    b2 = w.commit(disp, [(disp, "dispatcher"), (boat, "member"), (gw, "member")], b1)
    from crypto.channel import seal_info

    info = seal_info(b2.commit.channel, b2.commit.epoch, b2.commit.hash)
    evil = replace(b2, sealed={**b2.sealed, boat.id: boat.cred.hpke_key.seal(b"r" * 32, info)})
    with pytest.raises(VerificationError) as e:
        m[boat.id].process_commit(evil, NOW + 1)
    assert e.value.code is Refusal.KEY_CONFIRMATION
    # Refusal changes nothing: the genuine commit is still accepted afterwards.
    assert m[boat.id].process_commit(b2, NOW + 1).epoch == 2


def test_replay_and_reorder(net) -> None:  # type: ignore[no-untyped-def]
    _, (disp, boat, gw, obs), m, _ = net
    frames = [m[gw.id].protect(bytes([i])) for i in range(200)]
    rx = m[boat.id]
    for i in (5, 3, 4, 0, 1, 2):  # reordering inside the window is fine
        assert rx.unprotect(frames[i], NOW).payload == bytes([i])
    with pytest.raises(DecryptError):
        rx.unprotect(frames[3], NOW)  # replay
    rx.unprotect(frames[199], NOW)
    with pytest.raises(DecryptError):
        rx.unprotect(frames[10], NOW)  # 189 behind: older than the 128-frame window
    assert rx.unprotect(frames[150], NOW).payload == bytes([150])


def test_forged_frame_does_not_advance_window(net) -> None:  # type: ignore[no-untyped-def]
    _, (disp, boat, gw, obs), m, _ = net
    good = m[gw.id].protect(b"good")
    kid, ctr, hlen = decode_header(good)
    forged = good[:-1] + bytes([good[-1] ^ 0x80])
    with pytest.raises(DecryptError):
        m[boat.id].unprotect(forged, NOW)
    assert m[boat.id].unprotect(good, NOW).payload == b"good"


@settings(max_examples=60, deadline=None)
@given(
    pos=st.integers(min_value=0),
    bit=st.integers(min_value=0, max_value=7),
    meta=st.binary(max_size=8),
)
def test_any_bit_flip_rejected(pos: int, bit: int, meta: bytes) -> None:
    w = make_world()
    a = w.device("us-cbp", "d", ("dispatcher", "member"))
    b = w.device("ca-rcmp", "v", ("member",))
    bundle = w.commit(a, [(a, "dispatcher"), (b, "member")], None)
    ma, mb = w.member(a), w.member(b)
    ma.process_commit(bundle, NOW)
    mb.process_commit(bundle, NOW)
    frame = bytearray(ma.protect(b"payload", metadata=meta))
    target = pos % (len(frame) + len(meta))
    if target < len(frame):
        frame[target] ^= 1 << bit
        meta2 = meta
    else:
        m2 = bytearray(meta)
        m2[target - len(frame)] ^= 1 << bit
        meta2 = bytes(m2)
    with pytest.raises(DecryptError):
        mb.unprotect(bytes(frame), NOW, metadata=meta2)


def test_signed_message_and_burst_seal(net) -> None:  # type: ignore[no-untyped-def]
    _, (disp, boat, gw, obs), m, _ = net
    msg, frame = m[boat.id].sign_message("m-1", "text", b"vessel at pier 4", NOW * 1000)
    r = m[obs.id].unprotect(frame, NOW)
    assert r.context == CONTEXT_DATA
    opened = m[obs.id].open_signed(r)
    assert opened == msg and opened.sender == boat.id
    # A talk burst: the talker hashes what it sends, the listener what it receives.
    tx, rx = BurstHasher(), BurstHasher()
    for i in range(25):
        f = m[gw.id].protect(bytes(80))
        tx.add(f, decode_header(f)[1])
        rx.add(f)
        m[disp.id].unprotect(f, NOW)
    seal = BurstSeal(
        m[gw.id].commit.channel,
        1,
        gw.id,
        "b-1",
        tx.count,
        tx.first_ctr or 0,
        tx.last_ctr or 0,
        tx.digest(),
    )
    _, sframe = m[gw.id].seal_burst(seal)
    got = m[disp.id].open_signed(m[disp.id].unprotect(sframe, NOW))
    assert isinstance(got, BurstSeal) and got.matches(rx) and got.sender == gw.id
    short = BurstHasher()
    short.add(b"only one")
    assert not got.matches(short)


def test_message_signed_by_someone_else_is_refused(net) -> None:  # type: ignore[no-untyped-def]
    _, (disp, boat, gw, obs), m, _ = net
    # gw encrypts a message that claims to come from boat (signed with gw's own key).
    from crypto.messages import SignedMessage

    fake = SignedMessage("m-2", "inc-1", boat.id, NOW * 1000, "text", b"x").signed(gw.keys.sign)
    frame = m[gw.id].protect(fake.encode(), CONTEXT_DATA)
    with pytest.raises(VerificationError) as e:
        m[disp.id].open_signed(m[disp.id].unprotect(frame, NOW))
    assert e.value.code is Refusal.BAD_SIGNATURE


def test_no_nonce_reuse_across_a_million_frames_and_restarts() -> None:
    """50 senders × 20,000 frames; every sender restarts (new state, same store) mid-way."""
    w = make_world()
    disp = w.device("us-cbp", "dispatch", ("dispatcher", "member"))
    senders = [
        w.device("us-cbp" if i % 2 else "ca-rcmp", f"s{i}", ("member",)) for i in range(49)
    ] + [disp]
    bundle = w.commit(disp, [(disp, "dispatcher")] + [(d, "member") for d in senders[:-1]], None)
    seen: set[tuple[int, int]] = set()
    total = 0
    for d in senders:
        store = MemoryCounterStore()
        for life in range(2):  # second life = after a crash: fresh object, same durable store
            member = w.member(d, store)
            member.process_commit(bundle, NOW)
            for _ in range(10_000):
                kid, ctr, _ = decode_header(member.protect(b"\x00" * 8))
                seen.add((kid, ctr))
                total += 1
        assert store.reservations <= 2 + 20_000 // 1024 + 1
    assert total == len(seen) == 1_000_000
    assert len({split_kid(k)[1] for k, _ in seen}) == 50


def test_counter_reserved_before_use() -> None:
    store = MemoryCounterStore()
    c = SendCounter(store, "k", block=10)
    used = [c.next() for _ in range(15)]
    assert used == list(range(15)) and store.load("k") == 20
    again = SendCounter(store, "k", block=10)  # restart: resumes past everything reserved
    assert again.next() == 20


def test_prepare_then_install_and_a_stale_preparation_is_refused(net) -> None:  # type: ignore[no-untyped-def]
    w, (disp, boat, gw, obs), m, b1 = net
    b2 = w.commit(disp, [(disp, "dispatcher"), (boat, "member")], b1)
    rx = m[boat.id]
    prepared = rx.prepare_commit(b2, NOW + 1)
    assert "secret" not in repr(prepared) and rx.epoch == 1  # nothing changed yet
    assert rx.install(prepared, NOW + 1).epoch == 2 and rx.epoch == 2
    with pytest.raises(VerificationError) as e:  # prepared against epoch 1, chain moved
        rx.install(prepared, NOW + 1)
    assert e.value.code is Refusal.WRONG_PREVIOUS
    out = m[gw.id].prepare_commit(b2, NOW + 1)
    assert out.secret is None
    m[gw.id].install(out, NOW + 1)
    assert m[gw.id].removed
