"""Issue 9, fault 3, through :class:`~bridge.endpoint.core.EndpointCore` on a fake clock.

Before: replay windows lived in memory and texts were de-duplicated on the relay's outer id, so
after a listener restart 30 of 30 replayed voice frames played again and old signed texts showed
as new; and a genuine signed message re-encrypted into another channel or a later epoch was
accepted. Now: per-KID voice replay marks are persisted, signed items are de-duplicated on
(sender, inner id) in the state file, and signed items are bound to their channel and commit
(:class:`~bridge.endpoint.events.BindingRefused` elsewhere).
"""

from __future__ import annotations

import base64
from pathlib import Path

from bridge.endpoint import events as ev
from bridge.endpoint.state import EndpointState
from crypto.channel import CommitBundle
from crypto.checkpoint import Checkpointer
from crypto.counters import MemoryCounterStore
from crypto.group import CONTEXT_DATA, CONTEXT_VOICE, ChannelMember, make_kid
from crypto.messages import OTHER_CHANNEL, OTHER_COMMIT, BurstSeal
from crypto.sframe import decode_header
from tests.bridge.endpoint.rig import CH, NO, Clock, Node, checkpoint_for
from tests.world import Device, World, make_world

CH2 = "inc-2"


def _setup(tmp: Path) -> tuple[World, Device, Device, CommitBundle, Node, ChannelMember]:
    w = make_world()
    disp = w.device("us-cbp", "disp", ("dispatcher", "member"))
    boat = w.device("ca-rcmp", "boat", ("member",))
    bundle = w.commit(disp, [(disp, "dispatcher"), (boat, "member")], None)
    listener = Node(w, disp, tmp / "disp.db", Clock(w.now + 5))
    listener.commit(bundle)
    tx = w.member(boat)
    tx.process_commit(bundle, w.now)
    return w, disp, boat, bundle, listener, tx


def _deliver(node: Node, ch: str, frame: bytes, outer: str, kind: str = "msg") -> None:
    node.seq += 1
    body = base64.b64encode(frame).decode()
    node.relay("deliver", seq=node.seq, kind=kind, ch=ch, id=outer, body=body)


def _talk(tx: ChannelMember, n: int, label: bytes) -> list[bytes]:
    """A talker's burst as it goes on the wire: its frames, and after every 10th (200 ms)
    and at the end the signed checkpoint over them (crypto.checkpoint)."""
    out: list[bytes] = []
    cpr = None
    for i in range(n):
        frame = tx.protect(label + b" %d" % i)
        kid, ctr, _ = decode_header(frame)
        assert tx.last_commit is not None
        cpr = cpr or Checkpointer(CH, bytes.fromhex(tx.last_commit.hash), kid)
        out.append(frame)
        cp = cpr.add(ctr, frame, i * 0.02)
        if cp is not None:
            out.append(tx.sign_checkpoint(cp))
    last = cpr.close() if cpr is not None else None
    return out + ([tx.sign_checkpoint(last)] if last is not None else [])


def test_replayed_voice_does_not_play_again_after_a_listener_restart(tmp_path: Path) -> None:
    _, _, boat, _, listener, tx = _setup(tmp_path)
    try:
        frames = _talk(tx, 30, b"frame")
        for f in frames:
            listener.core.receive_media(NO, f, listener.clock.advance(0.02))
        listener.pump()
        assert len(listener.take(ev.Voice)) == 30
        listener.restart()  # a crash, or a reboot
        for f in frames:  # the relay (or anyone on the path) replays the burst
            listener.core.receive_media(NO, f, listener.clock.advance(0.02))
        listener.pump()
        assert listener.take(ev.Voice) == []  # before: 30 of 30 played again
        assert listener.core.stats["voice_undecryptable"] == 30  # the voice frames
        fresh = _talk(tx, 30, b"new")
        for f in fresh:
            listener.core.receive_media(NO, f, listener.clock.advance(0.02))
        listener.pump()
        played = listener.take(ev.Voice)
        assert len(played) >= 30 - 25 and all(v.sender == boat.id for v in played)
    finally:
        listener.close()


def test_replayed_texts_are_not_shown_again_after_a_listener_restart(tmp_path: Path) -> None:
    _, _, boat, _, listener, tx = _setup(tmp_path)
    try:
        sent = [tx.sign_message(f"inner-{i}", "text", b"text %d" % i, 1) for i in range(30)]
        for i, (_, frame) in enumerate(sent):
            _deliver(listener, CH, frame, f"relay-{i}")
        assert len(listener.take(ev.Message)) == 30
        listener.restart()
        for i, (_, frame) in enumerate(sent):  # the same frames under new relay ids
            _deliver(listener, CH, frame, f"replayed-{i}")
        for msg, _ in sent[:5]:  # an insider re-encrypts genuine texts into fresh frames
            _deliver(listener, CH, tx.protect(msg.encode(), CONTEXT_DATA), f"again-{msg.id}")
        assert listener.take(ev.Message) == []  # before: 30 of 30 shown as new
        assert listener.core.stats["messages_replayed"] == 35
        _deliver(listener, CH, tx.sign_message("inner-new", "text", b"new", 1)[1], "relay-new")
        (new,) = listener.take(ev.Message)
        assert (new.id, new.sender) == ("inner-new", boat.id)
    finally:
        listener.close()


def test_a_message_moved_into_another_channel_or_epoch_is_refused(tmp_path: Path) -> None:
    w, disp, boat, bundle, listener, tx = _setup(tmp_path)
    try:
        other = w.commit(disp, [(disp, "dispatcher"), (boat, "member")], None, channel=CH2)
        _deliver(listener, CH2, other.encode(), "c2", kind="commit")
        tx2 = w.member(boat)
        tx2.process_commit(other, w.now)
        msg, frame = tx.sign_message("m-1", "text", b"genuine", 1)
        _deliver(listener, CH, frame, "genuine")
        assert [m.id for m in listener.take(ev.Message)] == ["m-1"]
        # An insider (any member of inc-2) re-encrypts the genuine inc-1 message into inc-2.
        _deliver(listener, CH2, tx2.protect(msg.encode(), CONTEXT_DATA), "moved-channel")
        (refused,) = listener.take(ev.BindingRefused)
        assert (refused.channel, refused.sender, refused.kind) == (CH2, boat.id, "message")
        assert refused.reason == OTHER_CHANNEL
        # A seal of epoch 1, and the message, re-encrypted into epoch 2 of inc-1.
        seal, _ = tx.seal_burst(BurstSeal(CH, 1, boat.id, "b1", 1, 0, 0, bytes(32)))
        b2 = w.commit(disp, [(disp, "dispatcher"), (boat, "member")], bundle)
        listener.commit(b2)
        tx.process_commit(b2, w.now + 1)
        _deliver(listener, CH, tx.protect(msg.encode(), CONTEXT_DATA), "moved-epoch")
        _deliver(listener, CH, tx.protect(seal.encode(), CONTEXT_DATA), "moved-seal")
        refused_later = listener.take(ev.BindingRefused)
        assert [(r.kind, r.reason) for r in refused_later] == [
            ("message", OTHER_COMMIT),
            ("seal", OTHER_COMMIT),
        ]
        assert listener.take(ev.Message) == [] and listener.take(ev.BurstSealed) == []
        assert listener.core.stats["messages_misbound"] == 3
    finally:
        listener.close()


def test_a_frame_at_the_top_counter_is_put_on_record_without_breaking(tmp_path: Path) -> None:
    """A counter of 2**64 - 1 is past what SQLite stores: the mark is kept as its largest
    integer, and the listener neither fails nor plays the frame again after a restart."""
    w, _, boat, bundle, listener, _ = _setup(tmp_path)
    try:
        index = bundle.commit.entry(boat.id).index  # type: ignore[union-attr]
        store = MemoryCounterStore()
        store.marks[f"{bundle.commit.hash[:32]}/{make_kid(CONTEXT_VOICE, index or 0, 1)}"] = (
            2**64 - 1
        )
        tx = w.member(boat, store)
        tx.process_commit(bundle, w.now)
        top = tx.protect(b"top")
        listener.core.receive_media(NO, top, listener.clock.now)
        listener.core.receive_media(NO, checkpoint_for(tx, [top]), listener.clock.now)
        listener.pump()
        assert [v.ctr for v in listener.take(ev.Voice)] == [2**64 - 1]
        listener.restart()
        listener.core.receive_media(NO, top, listener.clock.now)
        listener.pump()
        assert listener.take(ev.Voice) == [] and listener.take(ev.Error) == []
    finally:
        listener.close()


def test_replay_marks_only_rise_and_span_every_counter(tmp_path: Path) -> None:
    state = EndpointState(tmp_path / "s.db")
    try:
        marks = state.replay_marks
        assert marks.load("k") == 0
        marks.reserve("k", 50)
        marks.reserve("k", 30)  # never lowered (nor does it touch the send counters)
        assert marks.load("k") == 50 and state.load("k") == 0
        marks.reserve("k", 2**64)
        marks.reserve("k", 9 * 10**18)  # fewer digits: still compared as a number
        assert marks.load("k") == 2**64
    finally:
        state.close()
