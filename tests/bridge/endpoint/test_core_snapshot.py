"""Issue 9, fault 4, through :class:`~bridge.endpoint.core.EndpointCore` on a fake clock: a
state file restored from a snapshot (a VM restore) or copied to a second device (a cloned
standby) never sends a (KID, CTR) twice, keeps talking, and a clone is alarmed at listeners.

Before: the restored file's counter reservations went back with the snapshot, so the endpoint
sent the same KIDs and counters under the same key again (30 of 30 pairs), and nothing noticed
two devices speaking as one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bridge.endpoint import events as ev
from crypto.channel import CommitBundle
from crypto.epoch import REORDER
from crypto.sframe import decode_header
from tests.bridge.endpoint.rig import CH, NO, Clock, Node
from tests.world import Device, World, make_world


def _world() -> tuple[World, Device, Device, CommitBundle]:
    w = make_world()
    disp = w.device("us-cbp", "disp", ("dispatcher", "member"))
    boat = w.device("ca-rcmp", "boat", ("member",))
    bundle = w.commit(disp, [(disp, "dispatcher"), (boat, "member")], None)
    return w, disp, boat, bundle


def _snapshot(src: Path, dst: Path) -> None:
    """Copy a closed state file (and any WAL beside it), as a VM snapshot would hold it."""
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{src}{suffix}").exists():
            shutil.copyfile(f"{src}{suffix}", f"{dst}{suffix}")


def _talk(node: Node, n: int, tag: bytes) -> list[bytes]:
    for i in range(n):
        node.core.send_voice(CH, tag + b" %d" % i, node.clock.advance(0.02))
    return [frame for no, frame in node.core.media_to_send() if no == NO]


def test_a_restored_state_file_never_reuses_a_nonce_and_keeps_talking(tmp_path: Path) -> None:
    w, disp, boat, bundle = _world()
    clock = Clock(w.now + 5)
    path, snap = tmp_path / "boat.db", tmp_path / "snapshot.db"
    talker = Node(w, boat, path, clock)
    listener = Node(w, disp, tmp_path / "disp.db", clock)
    try:
        talker.commit(bundle)
        listener.commit(bundle)
        talker.close()
        _snapshot(path, snap)  # the snapshot: joined, nothing sent yet
        wire: list[tuple[int, int]] = []
        heard = 0
        for boot in range(3):  # run, then restore the snapshot twice and keep talking
            if boot:
                _snapshot(snap, path)
            talker.start()
            frames = _talk(talker, 30, b"boot %d" % boot)
            assert len(frames) == 30
            wire += [decode_header(f)[:2] for f in frames]
            for f in frames:
                listener.core.receive_media(NO, f, clock.advance(0.02))
            listener.pump()
            heard += len(listener.take(ev.Voice))
            talker.close()
        assert len(wire) == len(set(wire)) == 90  # no (KID, CTR) on the wire twice
        assert heard == 90  # every boot was heard: restored devices stay on the air
        assert listener.take(ev.CloneAlarm) == []  # restarts, one after the other: no clone
    finally:
        talker.close()
        listener.close()


def test_a_cloned_device_is_alarmed_at_listeners(tmp_path: Path) -> None:
    w, disp, boat, bundle = _world()
    clock = Clock(w.now + 5)
    original = Node(w, boat, tmp_path / "boat.db", clock)
    original.commit(bundle)
    original.close()
    _snapshot(tmp_path / "boat.db", tmp_path / "standby.db")
    original.start()
    clone = Node(w, boat, tmp_path / "standby.db", clock)  # the cloned standby, also running
    listener = Node(w, disp, tmp_path / "disp.db", clock)
    try:
        listener.commit(bundle)
        wire: list[tuple[int, int]] = []
        for node in (original, clone, original):
            for f in _talk(node, 10, b"x"):
                wire.append(decode_header(f)[:2])
                listener.core.receive_media(NO, f, clock.now)
            clock.advance(REORDER)
        listener.pump()
        assert len(wire) == len(set(wire))  # even the clone reuses no nonce
        assert len(listener.take(ev.Voice)) == 30
        (alarm,) = listener.take(ev.CloneAlarm)
        assert alarm.channel == CH and alarm.sender == boat.id and alarm.epoch == 1
        assert len(set(alarm.generations)) == 2
        assert listener.core.stats["clone_alarms"] == 1
    finally:
        for n in (original, clone, listener):
            n.close()
