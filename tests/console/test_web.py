"""The console's HTTP side against aiohttp's test server on 127.0.0.1: login, nothing before
login, session expiry (fake clock), CSRF, and WebSocket commands and state pushes."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import WSMsgType

from bridge.console.web import COOKIE
from bridge.endpoint import events as ev
from tests.console.fakes import CH, PASSWORD
from tests.console.webkit import Rig, csrf_of_main, login, next_json, open_ws, rig

__all__ = ["rig"]  # the fixture, imported


async def test_nothing_before_login(rig: Rig) -> None:
    client = rig[0]
    for path in ("/", "/static/console.js", "/static/i18n.json", "/static/console.css"):
        r = await client.get(path, allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == "/login", path
    assert (await client.get("/ws")).status == 401
    assert (await client.post("/logout")).status == 401
    r = await client.get("/login")
    assert r.status == 200 and "script" not in (await r.text())
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp


async def test_wrong_password_and_unknown_user_refused(rig: Rig) -> None:
    client = rig[0]
    for user, pw in (("alice", "wrong"), ("mallory", PASSWORD), ("alice", "")):
        r = await login(client, user, pw)
        assert r.status == 401 and "Wrong user name or password." in await r.text()
        assert COOKIE not in {c.key for c in client.session.cookie_jar}
        assert (await client.get("/", allow_redirects=False)).status == 303


async def test_login_without_the_form_token_refused(rig: Rig) -> None:
    client = rig[0]
    form = {"user": "alice", "password": PASSWORD, "login_token": "forged"}
    r = await client.post("/login", data=form, allow_redirects=False)
    assert r.status == 403


async def test_login_accepted_cookie_flags_and_main_page(rig: Rig) -> None:
    client = rig[0]
    r = await login(client)
    assert r.status == 303 and r.headers["Location"] == "/"
    header = next(h for h in r.headers.getall("Set-Cookie") if h.startswith(COOKIE + "="))
    assert "HttpOnly" in header and "SameSite=Strict" in header and "Path=/" in header
    await csrf_of_main(client)
    js = await client.get("/static/console.js")
    assert js.status == 200 and "WebSocket" in await js.text()
    assert (await client.get("/static/..%2Fweb.py")).status == 404


async def test_login_throttled_after_failures(rig: Rig) -> None:
    client, _, _, clock = rig
    for _ in range(10):
        assert (await login(client, "alice", "nope")).status == 401
    assert (await login(client)).status == 429  # even the right password, for a minute
    clock.t += 61
    assert (await login(client)).status == 303


async def test_session_expires_idle_and_absolute(rig: Rig) -> None:
    client, _, _, clock = rig
    await login(client)
    clock.t += 599
    assert (await client.get("/", allow_redirects=False)).status == 200
    clock.t += 601
    r = await client.get("/", allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/login"
    await login(client)
    for _ in range(7):  # in use every 500 s for 3500 s: alive
        clock.t += 500
        assert (await client.get("/", allow_redirects=False)).status == 200
    clock.t += 500  # 4000 s after login: past the 3600 s absolute limit
    assert (await client.get("/", allow_redirects=False)).status == 303


async def test_logout_needs_csrf(rig: Rig) -> None:
    client = rig[0]
    await login(client)
    csrf = await csrf_of_main(client)
    assert (await client.post("/logout", data={"csrf": "bad"})).status == 403
    assert (await client.get("/", allow_redirects=False)).status == 200
    r = await client.post("/logout", data={"csrf": csrf}, allow_redirects=False)
    assert r.status == 303
    assert (await client.get("/", allow_redirects=False)).status == 303


async def test_websocket_refused_without_csrf_or_from_another_origin(rig: Rig) -> None:
    client = rig[0]
    await login(client)
    csrf = await csrf_of_main(client)
    origin = f"http://{client.host}:{client.port}"
    r = await client.get("/ws", headers={"Origin": origin})
    assert r.status == 403
    r = await client.get(f"/ws?csrf={csrf}x", headers={"Origin": origin})
    assert r.status == 403
    r = await client.get(f"/ws?csrf={csrf}", headers={"Origin": "http://evil.example"})
    assert r.status == 403


async def test_websocket_commands_reach_the_endpoint(rig: Rig) -> None:
    client, endpoint, _, _ = rig
    ws = await open_ws(client)
    state = await next_json(ws, "state")
    assert [c["channel"] for c in state["channels"]] == [CH]
    assert state["channels"][0]["roster"][0]["alias"] == "Dispatch 1"
    await ws.send_json({"t": "send", "channel": CH, "text": "Intercept", "ref": 1})
    assert (await next_json(ws, "ok"))["ref"] == 1
    await endpoint.wait_calls(1)
    assert endpoint.calls[0] == ("send_text", CH, "Intercept", "text")

    def msg_state(s: dict[str, Any]) -> list[str]:
        return [m["state"] for m in s["channels"][0]["messages"]]

    st = await next_json(ws, "state")
    while msg_state(st) != ["delivered"]:
        st = await next_json(ws, "state")
    await ws.send_json({"t": "emergency", "channel": CH, "active": True, "ref": 2})
    await endpoint.wait_calls(2)
    assert endpoint.calls[1][0] == "send_text" and endpoint.calls[1][3] == "emergency"
    st = await next_json(ws, "state")
    while not st["channels"][0]["emergency"]["active"]:
        st = await next_json(ws, "state")
    assert st["channels"][0]["emergency"]["verified"] is True  # signed by this console
    await ws.send_json({"t": "emergency", "channel": CH, "active": False, "ref": 3})
    await ws.send_json({"t": "ptt", "channel": CH, "down": True, "ref": 4})
    await endpoint.wait_calls(4)
    await ws.send_json({"t": "ptt", "channel": CH, "down": False, "ref": 5})
    await endpoint.wait_calls(5)
    assert [c[0] for c in endpoint.calls[2:]] == ["clear_emergency", "start_burst", "end_burst"]
    await ws.close()


async def test_websocket_refuses_bad_commands(rig: Rig) -> None:
    client, endpoint, _, _ = rig
    ws = await open_ws(client)
    for cmd, detail in (
        ({"t": "send", "channel": "other", "text": "x", "ref": 1}, "not a channel"),
        ({"t": "send", "channel": CH, "text": "  ", "ref": 2}, "empty"),
        ({"t": "send", "channel": CH, "text": "x" * 5000, "ref": 3}, "at most"),
        ({"t": "emergency", "channel": CH, "active": "yes", "ref": 4}, "true or false"),
        ({"t": "launch", "ref": 5}, "unknown command"),
    ):
        await ws.send_json(cmd)
        err = await next_json(ws, "error", ref=cmd["ref"])
        assert detail in err["detail"]
    await ws.send_str("{not json")
    assert (await next_json(ws, "error"))["detail"] == "not JSON"
    assert endpoint.calls == []
    await ws.close()


async def test_state_pushed_on_endpoint_events(rig: Rig) -> None:
    client, endpoint, _, clock = rig
    ws = await open_ws(client)
    await next_json(ws, "state")
    endpoint.events.put_nowait(ev.TalkerChanged(CH, "ca-rcmp/gw-1", "normal", "granted"))
    st = await next_json(ws, "state")
    while st["channels"][0]["talker"] is None:
        st = await next_json(ws, "state")
    assert st["channels"][0]["talker"]["device"] == "ca-rcmp/gw-1"
    await ws.close()


async def test_websocket_closed_when_the_session_expires(rig: Rig) -> None:
    client, endpoint, _, clock = rig
    ws = await open_ws(client)
    await next_json(ws, "state")
    clock.t += 4000
    await ws.send_json({"t": "ptt", "channel": CH, "down": True})
    msg = await asyncio.wait_for(ws.receive(), 5)
    while msg.type not in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING):
        msg = await asyncio.wait_for(ws.receive(), 5)
    assert ws.close_code == 4401
    assert endpoint.calls == []  # the command after expiry was not carried out
