"""The relay passes members' signed commit confirmations (issue 9, fault 2) to the channel's
other online members at once, and only between members."""

from __future__ import annotations

import base64

import pytest

from bridge.errors import ProtocolError
from bridge.relay.core import RelayCore
from bridge.relay.memory_store import MemoryStore
from bridge.wire import control as p
from crypto.confirm import Confirmation, decode_confirmation
from tests.bridge.relay.helpers import NullAudit, commit_msg, login, run
from tests.world import NOW, make_world


def test_confirmations_reach_the_other_members_only() -> None:
    w = make_world()
    a = w.device("us-cbp", "disp", ("dispatcher", "member"))
    v = w.device("ca-rcmp", "vessel", ("member",))
    o = w.device("mx-gn", "outsider", ("observer",))
    core = RelayCore(w.trust, MemoryStore(), NullAudit())
    sa, sv, so = (login(core, d)[0] for d in (a, v, o))
    bundle = w.commit(a, [(a, "dispatcher"), (v, "member")], None)
    run(core, core.handle(sa, commit_msg(bundle), NOW))
    statement = Confirmation("inc-1", 1, bundle.commit.hash, v.id, NOW).signed(v.keys.sign)
    text = base64.b64encode(statement.encode()).decode()
    out = run(
        core, core.handle(sv, {"t": "confirm", "v": 1, "ch": "inc-1", "statement": text}, NOW)
    )
    assert [(sid, m["t"]) for sid, m in out] == [(sa, "confirm")]
    got = decode_confirmation(base64.b64decode(out[0][1]["statement"])).verify(v.cred)
    assert got.commit == bundle.commit.hash and got.epoch == 1
    with pytest.raises(ProtocolError) as err:  # not a member: refused, passed to nobody
        core.handle(so, {"t": "confirm", "v": 1, "ch": "inc-1", "statement": text}, NOW)
    assert err.value.code == p.Codes.NOT_MEMBER
    with pytest.raises(ProtocolError) as err:
        core.handle(sv, {"t": "confirm", "v": 1, "ch": "inc-1", "statement": "A" * 4096}, NOW)
    assert err.value.code == p.Codes.TOO_LARGE
