"""Fault 4, sans-IO: with ``audit_fail_closed`` the relay refuses requests that must be
audited (``audit-unavailable``) while the audit log cannot be written; by default it serves
and shows the failure in its health."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.errors import ProtocolError
from bridge.relay.core import RelayCore
from bridge.relay.memory_store import MemoryStore
from bridge.relay.state import RelayConfig
from bridge.wire import control as p
from tests.bridge.relay.helpers import NullAudit, commit_msg, login, run
from tests.world import NOW, make_world


def _setup(fail_closed: bool) -> tuple[Any, RelayCore, NullAudit, dict[str, int]]:
    w = make_world()
    a = w.device("us-cbp", "disp", ("dispatcher", "member"))
    v = w.device("ca-rcmp", "vessel", ("member",))
    audit = NullAudit()
    core = RelayCore(w.trust, MemoryStore(), audit, RelayConfig(audit_fail_closed=fail_closed))
    sids = {d.id: login(core, d)[0] for d in (a, v)}
    run(
        core,
        core.handle(
            sids[a.id], commit_msg(w.commit(a, [(a, "dispatcher"), (v, "member")], None)), NOW
        ),
    )
    return w, core, audit, sids


def test_fail_closed_refuses_audited_requests_while_the_log_fails() -> None:
    w, core, audit, sids = _setup(fail_closed=True)
    sv = sids["ca-rcmp/vessel"]
    audit.failing = True
    assert core.health()["audit"] == "failing" and core.health()["ok"] is False
    request = {"t": "floor-request", "v": 1, "ch": "inc-1", "priority": "normal"}
    with pytest.raises(ProtocolError) as refused:
        core.handle(sv, request, NOW)
    assert refused.value.code == p.Codes.AUDIT_FAILED
    with pytest.raises(ProtocolError) as refused:  # nor can anybody new log in
        login(core, w.device("us-cbp", "late", ("member",)))
    assert refused.value.code == p.Codes.AUDIT_FAILED
    assert core.metrics.c["audit_refused"] == 2
    # A release (which ends activity) and pings still work; the log comes back, so do grants.
    assert run(core, core.handle(sv, {"t": "ping", "v": 1}, NOW)) == [(sv, {"t": "pong", "v": 1})]
    audit.failing = False
    granted = run(core, core.handle(sv, request, NOW))
    assert any(m.get("event") == "granted" for _, m in granted)


def test_fail_open_is_the_default_and_keeps_serving() -> None:
    _, core, audit, sids = _setup(fail_closed=False)
    audit.failing = True
    request = {"t": "floor-request", "v": 1, "ch": "inc-1", "priority": "normal"}
    granted = run(core, core.handle(sids["ca-rcmp/vessel"], request, NOW))
    assert any(m.get("event") == "granted" for _, m in granted)
    assert core.health()["ok"] is False  # but it shows
