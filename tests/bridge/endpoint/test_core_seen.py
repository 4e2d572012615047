"""The endpoint's table of handled message ids is pruned by a core timer, on a fake clock.

Before, ``EndpointState.forget_seen`` existed but nothing called it: every message id ever
received stayed in the state file for good. Now an id is forgotten once the relay can no longer
redeliver it (its ``message_ttl``, 7 days by default), within PRUNE_SLACK of that moment.
The table's own timer is read (``core.seen``): the core's also has the freshness deadlines.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from bridge.endpoint import events as ev
from bridge.endpoint.seen import PRUNE_SLACK, SEEN_TTL
from bridge.errors import StoreError
from crypto.group import ChannelMember
from tests.bridge.endpoint.rig import CH, Clock, Node
from tests.world import World, make_world


def channel(tmp: Path, **node_options: Any) -> tuple[World, Node, ChannelMember]:
    w = make_world()
    disp = w.device("us-cbp", "disp", ("dispatcher", "member"))
    boat = w.device("ca-rcmp", "boat", ("member",))
    bundle = w.commit(disp, [(disp, "dispatcher"), (boat, "member")], None)  # lives a day
    node = Node(w, boat, tmp / "boat.db", Clock(w.now + 5), **node_options)
    node.commit(bundle)
    tx = w.member(disp)
    tx.process_commit(bundle, w.now)
    return w, node, tx


def deliver(node: Node, tx: ChannelMember, msg_id: str, body: bytes) -> None:
    """A text from ``tx`` delivered as relay message ``msg_id`` (the same id on redelivery)."""
    node.seq += 1
    frame = tx.sign_message(f"inner-{msg_id}", "text", body, 1)[1]
    b64 = base64.b64encode(frame).decode()
    node.relay("deliver", seq=node.seq, kind="msg", ch=CH, id=msg_id, body=b64)


def test_ids_are_forgotten_when_the_relay_can_no_longer_redeliver_them(tmp_path: Path) -> None:
    _, node, tx = channel(tmp_path)
    clock, core = node.clock, node.core
    try:
        assert core.seen.get_timer() is None  # nothing seen yet: nothing to forget
        first = clock.now
        deliver(node, tx, "a", b"first")
        assert core.seen.get_timer() == first + SEEN_TTL + PRUNE_SLACK
        second = clock.advance(3600)
        deliver(node, tx, "b", b"second")
        assert [m.body for m in node.take(ev.Message)] == [b"first", b"second"]
        deliver(node, tx, "a", b"first")  # a redelivery within the TTL is dropped
        assert node.take(ev.Message) == []
        node.restart()  # the timer comes back from the state file
        core = node.core
        assert core.seen.get_timer() == first + SEEN_TTL + PRUNE_SLACK
        core.handle_timer(first + SEEN_TTL + PRUNE_SLACK - 0.5)  # not yet due
        assert "a" in core.seen and "b" in core.seen
        core.handle_timer(first + SEEN_TTL + PRUNE_SLACK)
        assert "a" not in core.seen and "b" in core.seen  # "b" is younger than the TTL
        assert node.state.oldest_seen() == second
        assert core.seen.get_timer() == second + SEEN_TTL + PRUNE_SLACK
        core.handle_timer(second + SEEN_TTL + PRUNE_SLACK)
        assert "b" not in core.seen and core.seen.get_timer() is None
    finally:
        node.close()


def test_the_ttl_follows_a_relay_configured_longer(tmp_path: Path) -> None:
    ttl = 30 * 86400.0
    _, node, tx = channel(tmp_path, seen_ttl=ttl)
    try:
        deliver(node, tx, "a", b"x")
        assert node.core.seen.get_timer() == node.clock.now + ttl + PRUNE_SLACK
        node.core.handle_timer(node.clock.now + SEEN_TTL + PRUNE_SLACK)
        assert "a" in node.core.seen  # the default TTL would have forgotten it
    finally:
        node.close()


def test_a_failed_prune_is_retried_later_and_raises_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, node, tx = channel(tmp_path)
    try:
        deliver(node, tx, "a", b"x")
        due = node.core.seen.get_timer()
        assert due is not None

        def failing(before: float) -> None:
            raise StoreError("endpoint state: OperationalError")

        monkeypatch.setattr(node.state, "forget_seen", failing)
        node.core.handle_timer(due)  # must not escape into the driver's timer callback
        assert node.core.seen.get_timer() == due + PRUNE_SLACK
        monkeypatch.undo()
        node.core.handle_timer(due + PRUNE_SLACK)
        assert node.state.oldest_seen() is None and node.core.seen.get_timer() is None
    finally:
        node.close()
