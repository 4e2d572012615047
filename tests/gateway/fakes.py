"""A recording adapter and a scriptable endpoint for the gateway tests (no network)."""

from __future__ import annotations

import asyncio
from typing import Any

from adapters.base import Adapter, EmergencyState, EventSink, SecurityAlarm
from bridge.endpoint import events as ev


class FakeEndpoint:
    """Grants every floor request at once (or as ``grant`` says); records what is sent."""

    def __init__(self, device: str = "us-cbp/gw-1", grant: bool = True) -> None:
        self.device = device
        self.events: asyncio.Queue[ev.Event] = asyncio.Queue()
        self.grant = grant
        self.log: list[tuple[Any, ...]] = []
        self.voice: list[bytes] = []
        self.texts: list[str] = []
        self.text_gate: asyncio.Event | None = None  # set: send_text waits for it
        self.text_error: BaseException | None = None

    async def start_burst(self, ch: str, priority: str = "normal", timeout: float = 5.0) -> bool:
        self.log.append(("floor", ch, priority))
        return self.grant

    def send_voice(self, ch: str, payload: bytes) -> None:
        self.voice.append(payload)

    async def end_burst(self, ch: str) -> None:
        self.log.append(("end", ch, len(self.voice)))

    async def send_text(
        self, ch: str, body: bytes | str, kind: str = "text", timeout: float = 30.0
    ) -> str:
        if self.text_gate is not None:
            await self.text_gate.wait()
        if self.text_error is not None:
            raise self.text_error
        self.texts.append(str(body))
        return f"id{len(self.texts)}"


class FakeAdapter(Adapter):
    """Records every call the gateway makes; ``emit`` plays the native side."""

    def __init__(self, rate: int = 16000, *, audio_in: bool = True, audio_out: bool = True) -> None:
        self.rate = rate
        self.yields_audio = audio_in
        self.plays_audio = audio_out
        self.sink: EventSink | None = None
        self.calls: list[tuple[Any, ...]] = []
        self.fail_on_play = False

    async def start(self, sink: EventSink) -> None:
        self.sink = sink
        self.calls.append(("start",))

    async def stop(self) -> None:
        self.sink = None
        self.calls.append(("stop",))

    def emit(self, event: Any) -> None:
        assert self.sink is not None, "not started"
        self.sink(event)

    def play(self, pcm: bytes, talkers: tuple[str, ...], *, at: float | None = None) -> None:
        if self.fail_on_play:
            raise RuntimeError("adapter bug")
        self.calls.append(("play", pcm, talkers))

    def talk_started(self, talker: str) -> None:
        self.calls.append(("started", talker))

    def talk_ended(self, talker: str, verified: bool) -> None:
        self.calls.append(("ended", talker, verified))

    def post(self, text: str, sender: str) -> None:
        self.calls.append(("post", text, sender))

    def emergency(self, state: EmergencyState) -> None:
        self.calls.append(("emergency", state))

    def alarm(self, alarm: SecurityAlarm) -> None:
        self.calls.append(("alarm", alarm))

    def floor_denied(self, source: str, holder: str | None) -> None:
        self.calls.append(("floor_denied", source, holder))

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == kind]
