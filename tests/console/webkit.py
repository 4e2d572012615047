"""The console's web app on aiohttp's test server (127.0.0.1) over a fake endpoint, with a fake
clock; login and WebSocket helpers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bridge.console.auth import Sessions
from bridge.console.service import ConsoleService
from bridge.console.web import ConsoleWeb
from tests.console.fakes import PASSWORD, USERS, Clock, FakeEndpoint

Rig = tuple[TestClient, FakeEndpoint, ConsoleService, Clock]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    clock = Clock()
    endpoint = FakeEndpoint()
    service = ConsoleService(endpoint, clock=clock)
    await service.start()
    web = ConsoleWeb(service, USERS, Sessions(ttl=3600, idle=600), clock=clock)
    client = TestClient(TestServer(web.app, host="127.0.0.1"))
    await client.start_server()
    try:
        yield client, endpoint, service, clock
    finally:
        await client.close()
        await web.stop()
        await service.stop()


async def login(client: TestClient, user: str = "alice", password: str = PASSWORD) -> Any:
    page = await client.get("/login")
    assert page.status == 200
    token = re.search(r'name="login_token" value="([^"]+)"', await page.text())
    assert token is not None
    form = {"login_token": token.group(1), "user": user, "password": password, "lang": "en"}
    return await client.post("/login", data=form, allow_redirects=False)


async def csrf_of_main(client: TestClient) -> str:
    page = await client.get("/")
    assert page.status == 200
    m = re.search(r'<meta name="csrf" content="([^"]+)">', await page.text())
    assert m is not None
    return m.group(1)


async def next_json(ws: Any, kind: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
    async def find() -> dict[str, Any]:
        while True:
            msg = await ws.receive_json()
            if msg.get("t") == kind and all(msg.get(k) == v for k, v in match.items()):
                return dict(msg)

    return await asyncio.wait_for(find(), timeout)


async def open_ws(client: TestClient) -> Any:
    await login(client)
    csrf = await csrf_of_main(client)
    origin = f"http://{client.host}:{client.port}"
    return await client.ws_connect(f"/ws?csrf={csrf}", headers={"Origin": origin})
