"""Revocation that reaches the members (issue 10, item 1): a revocation list the relay adopts
is passed at once to every connected device (and given to every device at login), not only
used to refuse the revoked one's own connection."""

from __future__ import annotations

import json

from bridge.relay.core import RelayCore
from bridge.relay.memory_store import MemoryStore
from crypto.agreement import RevocationList
from tests.bridge.relay.helpers import NullAudit, login, run
from tests.world import NOW, make_world


def test_an_adopted_revocation_list_is_pushed_to_everyone_and_given_at_login() -> None:
    w = make_world()
    a = w.device("us-cbp", "disp", ("dispatcher", "member"))
    v = w.device("ca-rcmp", "vessel", ("member",))
    stolen = w.device("ca-rcmp", "stolen", ("member",))
    core = RelayCore(w.trust, MemoryStore(), NullAudit())
    sa, sv, ss = (login(core, d)[0] for d in (a, v, stolen))
    rl = RevocationList.create(w.roots["ca-rcmp"], 2, NOW, {stolen.cred.serial})
    out = run(core, core.apply_revocation(rl, NOW, reply_to=sv))
    pushed = {sid for sid, m in out if m["t"] == "revocation-list"}
    assert pushed == {sa}  # the publisher gets revocation-ok; the revoked one is closed
    assert (sv, "revocation-ok") in [(sid, m["t"]) for sid, m in out]
    assert (ss, "closed") in [(sid, m["t"]) for sid, m in out]
    msg = next(m for sid, m in out if sid == sa)
    got = RevocationList.decode(json.dumps(msg["list"]).encode())
    assert got.number == 2 and got.revokes(stolen.cred)
    late = w.device("us-cbp", "late", ("member",))
    _, sends = login(core, late)
    assert [m["number"] for _, m in sends if m["t"] == "revocation-list"] == [2]
