"""Issue 9, faults 3 and 4 at the crypto layer: sender generations, clone detection, durable
replay marks, and signed items bound to their channel and commit.

Fault 4: a state file restored from a snapshot (here: a copy of the counter store taken before
the sender used it) used to send the same (KID, CTR) under the same key again. Now every
:class:`~crypto.group.ChannelMember` draws a fresh generation that is part of its KIDs.
Fault 3: a signed message re-encrypted into another channel or a later epoch was accepted.
"""

from __future__ import annotations

import copy

import pytest

from crypto.channel import CommitBundle
from crypto.counters import MemoryCounterStore
from crypto.epoch import REORDER, GenerationWatch, kid_generation, make_kid, split_kid
from crypto.errors import DecryptError, Refusal, VerificationError
from crypto.group import CONTEXT_DATA, CONTEXT_VOICE, ChannelMember
from crypto.messages import OTHER_CHANNEL, OTHER_COMMIT, BurstSeal
from crypto.replay import ReplayWindow
from crypto.sframe import decode_header
from tests.world import NOW, Device, World, make_world


def _pair(w: World) -> tuple[Device, Device, CommitBundle]:
    disp = w.device("us-cbp", "disp", ("dispatcher", "member"))
    boat = w.device("ca-rcmp", "boat", ("member",))
    return disp, boat, w.commit(disp, [(disp, "dispatcher"), (boat, "member")], None)


def _join(
    w: World, d: Device, bundle: CommitBundle, store: MemoryCounterStore | None = None
) -> ChannelMember:
    m = w.member(d, store or MemoryCounterStore())
    m.process_commit(CommitBundle.decode(bundle.encode()), NOW)
    return m


def test_kid_layout_keeps_context_index_epoch_for_the_relay() -> None:
    kid = make_kid(CONTEXT_DATA, 4095, 17, (1 << 47) - 1)
    assert split_kid(kid) == (CONTEXT_DATA, 4095, 17 & 15)
    assert kid_generation(kid) == (1 << 47) - 1 and kid < 1 << 64  # fits SFrame's 8 bytes
    assert split_kid(make_kid(CONTEXT_VOICE, 3, 2)) == (CONTEXT_VOICE, 3, 2)
    with pytest.raises(ValueError):
        make_kid(CONTEXT_VOICE, 0, 0, 1 << 47)


def test_a_restored_counter_store_never_reuses_a_kid_and_counter() -> None:
    w = make_world()
    disp, boat, bundle = _pair(w)
    store = MemoryCounterStore()
    _join(w, boat, bundle, store)  # joined: the state a snapshot would hold
    snapshot = copy.deepcopy(store)
    rx = _join(w, disp, bundle, MemoryCounterStore())
    seen: list[tuple[int, int]] = []
    for boot in range(3):  # the original, then two restores of the same snapshot
        tx = _join(w, boat, bundle, store if boot == 0 else copy.deepcopy(snapshot))
        for i in range(30):
            frame = tx.protect(b"boot %d frame %d" % (boot, i))
            kid, ctr, _ = decode_header(frame)
            seen.append((kid, ctr))
            assert rx.unprotect(frame, NOW + boot).payload == b"boot %d frame %d" % (boot, i)
        # data frames (texts, seals) too
        kid, ctr, _ = decode_header(tx.sign_message(f"m{boot}", "text", b"x", 1)[1])
        seen.append((kid, ctr))
    assert len(seen) == len(set(seen)) == 93  # before: 30 of 30 voice pairs reused per restore


def test_a_restart_is_no_clone_but_two_live_generations_are() -> None:
    w = make_world()
    disp, boat, bundle = _pair(w)
    rx = _join(w, disp, bundle, MemoryCounterStore())
    first = _join(w, boat, bundle, MemoryCounterStore())
    rx.unprotect(first.protect(b"a"), NOW)
    last_in_flight = first.protect(b"a late")
    restarted = _join(w, boat, bundle, MemoryCounterStore())
    rx.unprotect(restarted.protect(b"b"), NOW + 1)
    rx.unprotect(last_in_flight, NOW + 1 + REORDER / 2)  # in flight across the restart
    assert rx.take_clones() == []
    rx.unprotect(first.protect(b"a again"), NOW + 1 + REORDER)  # the old boot is still alive
    (alarm,) = rx.take_clones()
    assert alarm.sender == boat.id and alarm.epoch == 1 and alarm.channel == "inc-1"
    assert alarm.generations == (first.generation, restarted.generation)
    rx.unprotect(restarted.protect(b"b"), NOW + 3)
    rx.unprotect(first.protect(b"a"), NOW + 5)
    assert rx.take_clones() == []  # one alarm per pair


def test_generation_watch_rules() -> None:
    watch = GenerationWatch()
    assert watch.changed(1, 10, 0.0) is None  # first seen
    assert watch.changed(1, 11, 5.0) is None  # restart
    assert watch.changed(1, 12, 9.0) is None  # and another
    assert watch.changed(1, 10, 9.5) == (10, 12)  # the first boot came back
    assert watch.changed(2, 10, 9.5) is None  # another sender


def test_a_replay_floor_refuses_what_came_before_a_restart() -> None:
    w = ReplayWindow(64, floor=100)
    assert not w.check(0) and not w.check(99) and w.check(100)
    w.update(130)
    assert not w.check(99) and w.check(100)
    with pytest.raises(ValueError):
        ReplayWindow(64, floor=-1)


def test_durable_marks_refuse_frames_heard_before_a_restart() -> None:
    w = make_world()
    disp, boat, bundle = _pair(w)
    tx = _join(w, boat, bundle, MemoryCounterStore())
    marks = MemoryCounterStore()
    rx = ChannelMember(disp.id, disp.keys, w.trust, MemoryCounterStore(), marks=marks)
    rx.process_commit(CommitBundle.decode(bundle.encode()), NOW)
    frames = [tx.protect(b"%d" % i) for i in range(30)]
    for f in frames:
        rx.unprotect(f, NOW)
    assert marks.reservations == 2  # a block of marks at a time, not a write per frame
    again = ChannelMember(disp.id, disp.keys, w.trust, MemoryCounterStore(), marks=marks)
    again.process_commit(CommitBundle.decode(bundle.encode()), NOW)
    for f in frames:
        with pytest.raises(DecryptError):
            again.unprotect(f, NOW + 1)
    later = [tx.protect(b"later") for _ in range(30)]
    assert sum(1 for f in later if _opens(again, f)) >= 30 - 25  # at most one block lost


def _opens(m: ChannelMember, frame: bytes) -> bool:
    try:
        m.unprotect(frame, NOW + 2)
    except DecryptError:
        return False
    return True


def test_a_signed_message_moved_to_another_channel_or_epoch_is_refused() -> None:
    w = make_world()
    disp, boat, bundle = _pair(w)
    other = w.commit(disp, [(disp, "dispatcher"), (boat, "member")], None, channel="inc-2")
    tx, rx = _join(w, boat, bundle), _join(w, disp, bundle)
    tx2, rx2 = _join(w, boat, other), _join(w, disp, other)
    msg, frame = tx.sign_message("m-1", "text", b"genuine", 1)
    assert msg.commit == bundle.commit.hash
    assert rx.open_signed(rx.unprotect(frame, NOW)) == msg  # where it was signed: fine
    moved = tx2.protect(msg.encode(), CONTEXT_DATA)  # an insider re-encrypts it into inc-2
    with pytest.raises(VerificationError) as e:
        rx2.open_signed(rx2.unprotect(moved, NOW))
    assert (e.value.code, e.value.detail) == (Refusal.WRONG_CHANNEL, OTHER_CHANNEL)
    seal, _ = tx.seal_burst(BurstSeal("inc-1", 1, boat.id, "b1", 1, 0, 0, bytes(32)))
    b2 = w.commit(disp, [(disp, "dispatcher"), (boat, "member")], bundle)
    for m in (tx, rx):
        m.process_commit(CommitBundle.decode(b2.encode()), NOW + 1)
    for item in (msg, seal):
        later = tx.protect(item.encode(), CONTEXT_DATA)  # into epoch 2, same channel
        with pytest.raises(VerificationError) as e:
            rx.open_signed(rx.unprotect(later, NOW + 1))
        assert (e.value.code, e.value.detail) == (Refusal.WRONG_CHANNEL, OTHER_COMMIT)
