"""The incident desk's checks (before anything is sent) with the three-agency world."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.console.incident import IncidentDesk, IncidentError
from tests.console.fakes import Clock
from tests.world import NOW, make_world


class Ep:
    def __init__(self, cred: Any, trust: Any) -> None:
        self.cred, self.trust, self.channels, self.commits = cred, trust, {}, []

    async def commit(self, ch: str, members: list[Any], **kw: Any) -> None:
        self.commits.append((ch, [(c.device, r) for c, r in members], kw))

    async def lookup(self, devices: list[str]) -> dict[str, Any]:
        return {}


@pytest.fixture
def desk() -> tuple[IncidentDesk, Ep]:
    w = make_world()
    me = w.device("us-cbp", "dispatch-1", ("dispatcher", "member"))
    others = [
        w.device("ca-rcmp", "dispatch-2", ("dispatcher", "member"), alias="Surrey"),
        w.device("mx-gn", "obs-1", ("observer", "dispatcher")),
    ]
    ep = Ep(me.cred, w.trust)
    return IncidentDesk(ep, [w.agreement], [d.cred for d in others], clock=Clock(NOW)), ep


def spec(**kw: Any) -> dict[str, Any]:
    base = {
        "t": "open",
        "channel": "inc-7",
        "name": "Spill",
        "agreement": "shiprider-gl",
        "hours": 2,
        "members": [{"device": "ca-rcmp/dispatch-2", "role": "dispatcher"}],
    }
    return {**base, **kw}


async def test_open_commits_with_this_console_as_dispatcher(desk: tuple[IncidentDesk, Ep]) -> None:
    d, ep = desk
    op, ch, commit = d.plan(spec())
    await d.run(op, ch, commit)
    assert d.last == {"op": "open", "channel": "inc-7", "state": "done", "detail": ""}
    ((c, members, kw),) = ep.commits
    assert members == [("us-cbp/dispatch-1", "dispatcher"), ("ca-rcmp/dispatch-2", "dispatcher")]
    assert kw["expires"] == NOW + 7200 and kw["name"] == "Spill"
    snap = d.as_json()
    assert snap["may_open"] and [x["device"] for x in snap["directory"]] == [
        "ca-rcmp/dispatch-2",
        "mx-gn/obs-1",
    ]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"channel": "Bad Id"}, "a channel id"),
        ({"name": " "}, "needs a name"),
        ({"agreement": "other"}, "pick an agreement"),
        ({"hours": 0}, "hours away"),
        ({"members": []}, "at least one member"),
        ({"members": [{"device": "xx/unknown", "role": "member"}]}, "not in the directory"),
        ({"members": [{"device": "mx-gn/obs-1", "role": "dispatcher"}]}, "does not allow mx-gn"),
        ({"members": [{"device": "ca-rcmp/dispatch-2", "role": "observer"}]}, "does not hold"),
        ({"members": [{"device": "ca-rcmp/dispatch-2", "role": "member"}] * 2}, "twice"),
    ],
)
def test_refusals(desk: tuple[IncidentDesk, Ep], change: dict[str, Any], problem: str) -> None:
    d, ep = desk
    with pytest.raises(IncidentError, match=problem):
        d.plan(spec(**change))
    assert ep.commits == []


async def test_failed_commit_is_reported(desk: tuple[IncidentDesk, Ep]) -> None:
    d, _ = desk

    async def refused() -> None:
        raise ValueError("relay said no")

    await d.run("end", "inc-7", refused)
    assert d.last["state"] == "failed" and d.last["detail"] == "relay said no"
