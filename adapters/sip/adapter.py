"""SIP lines as adapters (``adapters.base``): a call to a line's extension is a member of the
line's channel.

:func:`sip_adapters` builds one :class:`SipAdapter` per configured line, all sharing one
:class:`SipEndpoint` (one user agent on one UDP port, started with the first line and
stopped with the last). For each call:

* **caller → channel**: the call's RTP (:mod:`adapters.sip.media`: decoded, resampled to the
  adapter's ``rate``, re-timed onto the 20 ms clock) goes through the line's
  :class:`~adapters.sip.floor.CallerFloor` — DTMF ``*``/``#`` (RFC 4733, or SIP INFO) or voice
  activity — which makes ``TalkStart(source, priority)``, ``Pcm`` and ``TalkEnd``; the
  source is ``sip:<caller user>/<n>`` (n counts calls), so two calls from one phone differ.
  A burst in progress ends when the call does (BYE, CANCEL, hold, stop);
* **channel → caller**: while any remote talker talks (``talk_started`` … ``talk_ended``) the
  channel's audio is sent to every answered call not on hold, as one RTP burst.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
from collections import deque
from dataclasses import dataclass

from adapters.base import Adapter, EventSink, Pcm, TalkEnd, TalkStart
from adapters.sip.config import SipConfig, SipLine
from adapters.sip.dialog import uri_user
from adapters.sip.driver import SipDriver
from adapters.sip.events import (
    CallConfirmed,
    CallEnded,
    CallUpdated,
    DtmfInfo,
    IncomingCall,
    Registered,
    RegistrationFailed,
    UaEvent,
)
from adapters.sip.floor import CallerFloor, FloorOutput
from adapters.sip.media import CallMedia
from adapters.sip.ua import UaConfig, UserAgent

__all__ = ["SipAdapter", "SipEndpoint", "sip_adapters"]

log = logging.getLogger(__name__)
_SAFE = re.compile(r"[^A-Za-z0-9_.+\-]")


@dataclass
class _Caller:
    call_id: str
    source: str
    floor: CallerFloor
    media: CallMedia | None = None
    answered: bool = False
    confirmed: bool = False
    on_hold: bool = False
    ended: bool = False


class SipEndpoint:
    """The user agent and its socket, shared by the lines (module docstring)."""

    def __init__(self, config: SipConfig) -> None:
        self.config = config
        exts = tuple(line.extension for line in config.lines)
        self.ua = UserAgent(UaConfig(config.host, config.port, exts, config.codecs, config.user))
        self.driver = SipDriver(self.ua, self._on_event)
        self.lines: dict[str, SipAdapter] = {}
        self.calls: dict[str, SipAdapter] = {}
        self._running = 0
        self.registered = False
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> tuple[str, int]:
        return self.driver.local_address

    async def acquire(self, line: SipAdapter) -> None:
        if self._running == 0:
            await self.driver.start()
            if self.config.register is not None:
                self.ua.register(self.config.register, self.driver.now())
                self.driver.flush()
        self._running += 1
        self.lines[line.line.extension] = line

    async def release(self, line: SipAdapter) -> None:
        self.lines.pop(line.line.extension, None)
        self._running -= 1
        if self._running == 0:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self.driver.close()

    def _on_event(self, event: UaEvent) -> None:
        if isinstance(event, IncomingCall):
            line = self.lines.get(event.user)
            if line is None:
                self.driver.reject(event.call_id, 404)
                return
            self.calls[event.call_id] = line
            task = asyncio.get_running_loop().create_task(line._answer(event))  # noqa: SLF001
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif isinstance(event, Registered | RegistrationFailed):
            self.registered = isinstance(event, Registered)
            if isinstance(event, RegistrationFailed):  # the status and a fixed reason only
                log.warning("sip: registration failed (%d %s)", event.status, event.reason)
        elif isinstance(event, CallConfirmed | CallEnded | CallUpdated | DtmfInfo):
            owner = self.calls.get(event.call_id)
            if isinstance(event, CallEnded):
                self.calls.pop(event.call_id, None)
            if owner is not None:
                owner._on_call_event(event)  # noqa: SLF001


class SipAdapter(Adapter):
    """One SIP line: calls to its extension are members of its channel (module docstring)."""

    yields_audio = True
    plays_audio = True

    def __init__(self, endpoint: SipEndpoint, line: SipLine) -> None:
        self.endpoint = endpoint
        self.line = line
        self.rate = endpoint.config.rate
        self.callers: dict[str, _Caller] = {}
        self._sink: EventSink | None = None
        self._talkers: set[str] = set()
        self._numbers = itertools.count(1)
        self.recent: deque[tuple[str, str]] = deque(maxlen=32)  # (source, codec) answered

    async def start(self, sink: EventSink) -> None:
        self._sink = sink
        await self.endpoint.acquire(self)

    async def stop(self) -> None:
        for caller in list(self.callers.values()):
            self.endpoint.driver.hangup(caller.call_id)
            self._finish(caller)
        self._sink = None
        self._talkers.clear()
        await self.endpoint.release(self)

    async def _answer(self, event: IncomingCall) -> None:
        user = _SAFE.sub("_", uri_user(event.caller))[:32] or "anonymous"
        caller = _Caller(event.call_id, f"sip:{user}/{next(self._numbers)}",
                         CallerFloor(self.line.floor))  # fmt: skip
        self.callers[event.call_id] = caller
        media = CallMedia(
            event.negotiated,
            self.rate,
            lambda pcm: self._floor(caller, caller.floor.frame(pcm, self._now())),
            lambda digit: self._floor(caller, caller.floor.digit(digit, self._now())),
            host=self.endpoint.config.rtp_host,
        )
        try:
            rtp = await media.open()
        except Exception:
            self.callers.pop(event.call_id, None)
            self.endpoint.driver.reject(event.call_id, 503)
            raise
        if caller.ended:  # cancelled while the socket opened
            media.close()
            return
        caller.media = media
        if self.line.answer_after > 0:
            self.endpoint.driver.ring(event.call_id)
            await asyncio.sleep(self.line.answer_after)
            if caller.ended:
                return
        caller.answered = True
        self.recent.append((caller.source, event.negotiated.payload.name))
        self.endpoint.driver.answer(event.call_id, rtp)
        if self._talkers:
            media.start_burst()

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _floor(self, caller: _Caller, outputs: list[FloorOutput]) -> None:
        sink = self._sink
        if sink is None:
            return
        for out in outputs:
            if out.kind == "start":
                sink(TalkStart(caller.source, self.line.priority))
            elif out.kind == "audio":
                sink(Pcm(caller.source, out.pcm, self.rate))
            else:
                sink(TalkEnd(caller.source))

    def _on_call_event(self, event: CallConfirmed | CallEnded | CallUpdated | DtmfInfo) -> None:
        caller = self.callers.get(event.call_id)
        if caller is None:
            return
        if isinstance(event, CallConfirmed):
            caller.confirmed = True
        elif isinstance(event, CallEnded):
            self._finish(caller)
        elif isinstance(event, DtmfInfo):
            self._floor(caller, caller.floor.digit(event.digit, self._now()))
        else:
            caller.on_hold = event.on_hold
            if event.on_hold:
                self._floor(caller, caller.floor.hangup())
            if caller.media is not None:
                caller.media.update(event.negotiated)
                if self._talkers:
                    caller.media.start_burst()

    def _finish(self, caller: _Caller) -> None:
        caller.ended = True
        self._floor(caller, caller.floor.hangup())
        if caller.media is not None:
            caller.media.close()
        self.callers.pop(caller.call_id, None)

    def talk_started(self, talker: str) -> None:
        self._talkers.add(talker)
        for caller in self.callers.values():
            if caller.media is not None and caller.answered:
                caller.media.start_burst()

    def play(self, pcm: bytes, talkers: tuple[str, ...], *, at: float | None = None) -> None:
        if not self._talkers:
            return
        for caller in self.callers.values():
            if caller.media is not None and caller.answered:
                caller.media.send_audio(pcm)

    def talk_ended(self, talker: str, verified: bool) -> None:
        self._talkers.discard(talker)
        if not self._talkers:
            for caller in self.callers.values():
                if caller.media is not None:
                    caller.media.end_burst()


def sip_adapters(config: SipConfig) -> list[tuple[str, SipAdapter]]:
    """(channel, adapter) for each line, sharing one endpoint (what the CLI calls)."""
    endpoint = SipEndpoint(config)
    return [(line.channel, SipAdapter(endpoint, line)) for line in config.lines]
