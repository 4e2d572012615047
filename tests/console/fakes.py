"""A stand-in endpoint for the console's web tests (the browser tests use real ones)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from bridge.console.auth import hash_password
from bridge.endpoint import events as ev

ME = "us-cbp/dispatch-1"
CH = "inc-1"
PASSWORD = "correct horse battery"
USERS = {"alice": hash_password(PASSWORD, log_n=10)}


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class FakeMember:
    removed = False

    def __init__(self) -> None:
        roster = [SimpleNamespace(device=ME, role="dispatcher")]
        self.commit = SimpleNamespace(name="Incident 1", epoch=1, roster=roster, expires=9999)

    def credential(self, device: str) -> Any:
        return SimpleNamespace(alias="Dispatch 1", kind="console")


@dataclass
class FakeEndpoint:
    device: str = ME
    events: asyncio.Queue[ev.Event] = field(default_factory=asyncio.Queue)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    channels: dict[str, Any] = field(default_factory=lambda: {CH: FakeMember()})
    called: asyncio.Event = field(default_factory=asyncio.Event)
    voice: list[tuple[str, bytes]] = field(default_factory=list)

    def _note(self, *call: Any) -> None:
        self.calls.append(call)
        self.called.set()

    async def send_text(
        self, ch: str, body: bytes | str, kind: str = "text", timeout: float = 30.0
    ) -> str:
        self._note("send_text", ch, body, kind)
        return f"m-{len(self.calls)}"

    async def clear_emergency(self, ch: str) -> None:
        self._note("clear_emergency", ch)

    async def start_burst(self, ch: str, priority: str = "normal", timeout: float = 5.0) -> bool:
        self._note("start_burst", ch, priority)
        return True

    async def end_burst(self, ch: str, timeout: float = 5.0) -> None:
        self._note("end_burst", ch)

    def send_voice(self, ch: str, payload: bytes) -> None:
        self.voice.append((ch, payload))

    async def wait_calls(self, n: int, timeout: float = 5.0) -> None:
        async def enough() -> None:
            while len(self.calls) < n:
                self.called.clear()
                await self.called.wait()

        await asyncio.wait_for(enough(), timeout)
