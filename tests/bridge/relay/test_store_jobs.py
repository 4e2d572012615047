"""Fault 3, sans-IO: the core never calls the store itself, and a store that fails is answered
with ``store-failed`` and leaves memory exactly as disk."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.relay.core import RelayCore
from bridge.wire import control as p
from crypto.agreement import RevocationList
from crypto.group import CONTEXT_DATA
from tests.bridge.relay.helpers import GuardedStore, NullAudit, commit_msg, login, run
from tests.world import NOW, Device, World, make_world


@pytest.fixture
def world() -> World:
    w = make_world()
    w.device("us-cbp", "disp", ("dispatcher", "member"))
    w.device("ca-rcmp", "vessel", ("member",))
    return w


def devices(w: World) -> tuple[Device, Device]:
    return w.devices["us-cbp/disp"], w.devices["ca-rcmp/vessel"]


def new_core(w: World, store: GuardedStore) -> RelayCore:
    core = RelayCore(w.trust, store, NullAudit())
    store.open = False  # from here on, only jobs may touch the store
    return core


def text(ch: str, vm: Any, rid: str = "m1") -> dict[str, Any]:
    return {
        "t": "msg",
        "v": 1,
        "ch": ch,
        "id": rid,
        "frame": p.b64(vm.protect(b"x", CONTEXT_DATA)),
        "rid": rid,
    }


def member(w: World, d: Device, bundle: Any) -> Any:
    from crypto.counters import MemoryCounterStore
    from crypto.group import ChannelMember

    m = ChannelMember(d.id, d.keys, w.trust, MemoryCounterStore())
    m.process_commit(bundle, NOW)
    return m


def test_every_store_call_is_a_job(world: World) -> None:
    a, v = devices(world)
    store = GuardedStore()
    core = new_core(world, store)
    sa, sv = login(core, a)[0], login(core, v)[0]
    bundle = world.commit(a, [(a, "dispatcher"), (v, "member")], None)
    assert any(
        m["t"] == "commit-ok" for _, m in run(core, core.handle(sa, commit_msg(bundle), NOW))
    )
    am = member(world, a, bundle)
    assert [m["t"] for _, m in run(core, core.handle(sa, text("inc-1", am), NOW))] == [
        "accepted",
        "deliver",
    ]
    run(core, core.handle(sv, {"t": "ack", "v": 1, "seq": core.sessions[sv].delivered}, NOW))
    # A relay restarted on the same store knows no credential in memory: the directory is
    # read through a job, never on the event loop.
    store.open = True
    again = new_core(world, store)
    sid = login(again, a)[0]
    found = run(
        again, again.handle(sid, {"t": "lookup", "v": 1, "devices": [v.id], "rid": "r"}, NOW)
    )
    assert [m["credentials"][0]["body"]["device"] for _, m in found] == [v.id]
    rl = RevocationList.create(world.roots["ca-rcmp"], 1, NOW, set())
    out = run(again, again.apply_revocation(rl, NOW, reply_to=sid))
    assert [m["t"] for _, m in out] == ["revocation-ok"]
    run(again, again.handle_timer(NOW + 10 * 86400))  # channel expiry, store sweep
    assert {"enqueue", "ack", "pending", "get_state", "put_state", "expire"} <= set(store.calls)


def test_failed_enqueue_is_answered_store_failed_and_nothing_is_accepted(world: World) -> None:
    a, v = devices(world)
    store = GuardedStore()
    core = new_core(world, store)
    sa, sv = login(core, a)[0], login(core, v)[0]
    bundle = world.commit(a, [(a, "dispatcher"), (v, "member")], None)
    run(core, core.handle(sa, commit_msg(bundle), NOW))
    am = member(world, a, bundle)
    store.fail_writes = True
    out = run(core, core.handle(sa, text("inc-1", am, "m1"), NOW))
    assert [(sid, m["t"], m.get("code"), m.get("rid"), m.get("id")) for sid, m in out] == [
        (sa, "error", p.Codes.STORE_FAILED, "m1", "m1")
    ]
    assert core.metrics.c["store_failures"] == 1 and core.metrics.c["messages_accepted"] == 0
    assert core.store_failing and core.health()["ok"] is False
    assert core.sessions[sv].delivered == 1  # the commit only: the message never went out
    # The store recovers: the sender's retry is accepted and delivered, health is back.
    store.fail_writes = False
    out = run(core, core.handle(sa, text("inc-1", am, "m1"), NOW))
    assert [(sid, m["t"]) for sid, m in out] == [(sa, "accepted"), (sv, "deliver")]
    assert not core.store_failing and core.health()["ok"] is True


def test_failed_commit_write_leaves_memory_as_disk(world: World) -> None:
    a, v = devices(world)
    store = GuardedStore()
    core = new_core(world, store)
    sa = login(core, a)[0]
    bundle = world.commit(a, [(a, "dispatcher"), (v, "member")], None)
    store.fail_writes = True
    out = run(core, core.handle(sa, commit_msg(bundle), NOW))
    assert [(m["code"], m["ch"], m["epoch"]) for _, m in out] == [
        (p.Codes.STORE_FAILED, "inc-1", 1)
    ]
    assert "inc-1" not in core.channels and not core.by_no  # memory did not run ahead
    store.open = True
    assert store.get_state("channels") is None and store.get_state("channel:inc-1") is None
    store.open = False
    # Once the store works, the same commit is accepted (not told to rebase).
    store.fail_writes = False
    out = run(core, core.handle(sa, commit_msg(bundle), NOW))
    assert any(m["t"] == "commit-ok" for _, m in out)
    assert core.channels["inc-1"].head.epoch == 1


def test_backlog_the_store_refuses_is_retried_from_the_timer(world: World) -> None:
    a, v = devices(world)
    store = GuardedStore()
    core = new_core(world, store)
    sa = login(core, a)[0]
    bundle = world.commit(a, [(a, "dispatcher"), (v, "member")], None)
    run(core, core.handle(sa, commit_msg(bundle), NOW))
    store.fail_writes = True  # the login's directory write fails: so does its backlog job
    sv, sends = login(core, v)
    assert [m["t"] for _, m in sends][:1] == ["welcome"]
    assert sends[-1][1]["code"] == p.Codes.STORE_FAILED
    retry = core.next_timer()
    assert retry is not None and retry <= NOW + 1.0
    assert run(core, core.handle_timer(NOW + 0.5)) == []  # not yet
    store.fail_writes = False
    sends = run(core, core.handle_timer(NOW + 1.0))
    assert [(sid, m["t"], m.get("kind")) for sid, m in sends] == [(sv, "deliver", "commit")]
    assert core.sessions[sv].synced
