"""One adapter ↔ one endpoint channel: bursts ↔ floor, PCM ↔ the audio path, text ↔ messages.

:class:`ChannelGateway` knows the adapter only through ``adapters.base``:

* **native side → channel** (the adapter's events, :meth:`~ChannelGateway.on_adapter_event`):
  ``TalkStart`` → :meth:`TalkSender.start` (a floor request at its priority), ``Pcm`` →
  :meth:`TalkSender.send` (Opus, or L16 passthrough), ``TalkEnd`` → :meth:`TalkSender.stop`
  (floor release + burst seal), ``Text`` → :meth:`Endpoint.send_text`, one at a time in order
  (at most ``max_texts`` wait; more are dropped and counted); ``Position`` → a signed ``data``
  message, coalesced and paced (:mod:`bridge.gateway.positions`); ``EmergencyAlert`` → the
  signed emergency declare or clear (:mod:`bridge.endpoint.emergency`), sent only when it
  changes the channel's signed state as last seen (a TAK device repeats its alert);
* **channel → native side** (endpoint events, :meth:`~ChannelGateway.handle_event`, and the
  20 ms :meth:`~ChannelGateway.tick`): ``Voice`` goes to the channel's
  :class:`~bridge.audio.mixer.ListenMixer`, whose output becomes ``talk_started`` / ``play`` /
  ``talk_ended``; text messages from other devices → ``post``; ``Emergency`` (the relay's claim)
  and ``EmergencySigned`` (a member's signature) → ``emergency``, ``verified`` saying which;
  ``data`` messages holding a position → ``show_position`` with the verified sender, if the
  adapter ``takes_positions`` (a refused body is counted by its code and delivers nothing; a
  stale report, or one older than the last from that sender for that uid, is dropped).

**The burst verdict.** ``talk_ended(talker, verified)`` reports whether the talker's signed
burst seal matched what was heard (``BurstSealed.verified``). The seal travels the message
path after the floor release, so it may come a little after the talker's audio has played
out: the gateway waits up to ``seal_grace`` seconds for it, then reports ``verified=False``.
A seal counts only once the floor has left the talker (their release or a preemption), the
order in which an honest talker sends them, so that a seal cannot vouch for a burst that
began after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from adapters.base import (
    AdapterEvent,
    EmergencyAlert,
    EmergencyState,
    Pcm,
    Position,
    SecurityAlarm,
    TalkEnd,
    TalkStart,
    Text,
)
from bridge.audio.mixer import ListenMixer, PlayoutFrame, TalkerStarted, TalkerStopped
from bridge.audio.sender import TalkSender, VoiceEndpoint
from bridge.endpoint import events as ev
from bridge.endpoint.emergency import KIND as EMERGENCY_KIND
from bridge.endpoint.emergency import body as emergency_body
from bridge.errors import RemoteProtocolError
from bridge.gateway.binding import Binding
from bridge.gateway.position_sender import DATA_KIND, PositionSender
from bridge.gateway.positions import decode_position
from crypto.errors import CrossbandError

__all__ = ["SEAL_GRACE", "ChannelGateway", "GatewayEndpoint", "GatewayStats"]

log = logging.getLogger("crossband.gateway")

SEAL_GRACE = 1.0  # seconds; the endpoint itself waits up to 0.5 s for frames a seal overtook


class GatewayEndpoint(VoiceEndpoint, Protocol):
    """What the gateway needs of :class:`bridge.endpoint.endpoint.Endpoint`."""

    device: str
    events: asyncio.Queue[ev.Event]

    async def send_text(
        self, ch: str, body: bytes | str, kind: str = "text", timeout: float = 30.0
    ) -> str:
        """Sign, encrypt and send a message; its id once the relay has accepted it."""


@dataclass(slots=True)
class GatewayStats:
    texts_sent: int = 0
    text_errors: int = 0  # send_text failed (not a member, relay refused, timeout)
    texts_dropped: int = 0  # more than max_texts waiting
    posted: int = 0  # messages handed to the adapter
    undecodable: int = 0  # text messages that are not UTF-8
    unexpected: int = 0  # adapter events this binding has no path for (wrong rate, …)
    adapter_errors: int = 0  # the adapter raised when called
    positions_shown: int = 0  # positions handed to the adapter
    positions_refused: Counter[str] = field(default_factory=Counter)  # by code
    positions_dropped: int = 0  # stale, or older than one already shown
    alerts_sent: int = 0  # native emergencies signed onto the channel
    alerts_repeated: int = 0  # native emergencies that changed nothing
    alert_errors: int = 0
    alarms: int = 0  # security alarms handed to the adapter
    floor_denied: int = 0  # our bursts the floor refused or took back (the adapter is told)


@dataclass(slots=True)
class _Talk:
    released: bool  # the floor has left this talker: its seal may come now
    stopped_at: float | None = None  # its audio has played out
    verified: bool | None = None  # its seal's verdict


class ChannelGateway:
    """The live objects of one :class:`Binding` (see the module docstring)."""

    def __init__(
        self,
        endpoint: GatewayEndpoint,
        binding: Binding,
        *,
        seal_grace: float = SEAL_GRACE,
        max_texts: int = 64,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.channel = binding.channel
        self.adapter = binding.adapter
        self.stats = GatewayStats()
        self._endpoint = endpoint
        self._seal_grace = seal_grace
        audio, rate = binding.audio, binding.adapter.rate
        self.sender: TalkSender | None = None
        self.mixer: ListenMixer | None = None
        if self.adapter.yields_audio:
            self.sender = TalkSender(
                endpoint,
                self.channel,
                rate,
                codec=audio.codec,
                bitrate=audio.bitrate,
                on_denied=self._floor_denied,
            )
        if self.adapter.plays_audio:
            self.mixer = ListenMixer(
                self.channel,
                rate,
                audio.codec,
                self_device=endpoint.device,
                min_delay_ms=audio.jitter_min_ms,
                max_delay_ms=audio.jitter_max_ms,
            )
        self._floor: str | None = None  # who holds the channel's floor, as last reported
        self._talk_source: str | None = None  # the native talker of our current burst
        self._talks: dict[str, _Talk] = {}
        self._texts: asyncio.Queue[str] = asyncio.Queue(max_texts)
        self._text_task: asyncio.Task[None] | None = None
        self._wall = wall
        self.positions: PositionSender | None = None
        if self.adapter.yields_positions:
            self.positions = PositionSender(endpoint, self.channel, binding.positions, wall=wall)
        self._shown: dict[tuple[str, str], float] = {}  # (sender, uid) → time last shown
        self._signed_emergency: bool | None = None  # the channel's, as last seen or sent
        self._alerts: asyncio.Queue[bool] = asyncio.Queue()
        self._alert_task: asyncio.Task[None] | None = None

    # -- native side → channel -------------------------------------------------------------

    def on_adapter_event(self, event: AdapterEvent) -> None:
        """The adapter's sink: one event from the native side."""
        s = self.sender
        if isinstance(event, Text):  # the bridge signs: the alias says so (adapters.base.Text)
            self._queue_text(f"{event.source} via {self._endpoint.device}: {event.body}")
        elif isinstance(event, Position) and self.positions is not None:
            self.positions.offer(event)
        elif isinstance(event, EmergencyAlert):
            self._native_emergency(event.active)
        elif isinstance(event, Position) or s is None:
            self.stats.unexpected += 1
        elif isinstance(event, Pcm) and event.rate != s.rate:
            self.stats.unexpected += 1
        elif isinstance(event, TalkStart):
            self._talk_source = event.source
            s.start(event.priority)
        elif isinstance(event, Pcm):
            s.send(event.frame)
        elif isinstance(event, TalkEnd):
            s.stop()

    def _floor_denied(self) -> None:
        if self._talk_source is not None:
            self.stats.floor_denied += 1
            self.adapter.floor_denied(self._talk_source, self._floor)

    def _queue_text(self, body: str) -> None:
        try:
            self._texts.put_nowait(body)
        except asyncio.QueueFull:
            self.stats.texts_dropped += 1
            return
        if self._text_task is None:
            self._text_task = asyncio.get_running_loop().create_task(self._send_texts())

    async def _send_texts(self) -> None:
        while True:
            body = await self._texts.get()
            try:
                await self._endpoint.send_text(self.channel, body)
            except (CrossbandError, KeyError, TimeoutError, OSError) as exc:
                self.stats.text_errors += 1
                log.warning("event=text-send-failed channel=%s error=%s", self.channel, type(exc))
            else:
                self.stats.texts_sent += 1

    def _native_emergency(self, active: bool) -> None:
        if active == self._signed_emergency:
            self.stats.alerts_repeated += 1
            return
        self._signed_emergency = active
        self._alerts.put_nowait(active)
        if self._alert_task is None:
            self._alert_task = asyncio.get_running_loop().create_task(self._send_alerts())

    async def _send_alerts(self) -> None:
        while True:
            active = await self._alerts.get()
            try:
                await self._endpoint.send_text(
                    self.channel, emergency_body(active), kind=EMERGENCY_KIND
                )
            except (CrossbandError, KeyError, TimeoutError, OSError) as exc:
                self.stats.alert_errors += 1
                self._signed_emergency = None  # not known: the next alert is sent again
                log.warning("event=alert-send-failed channel=%s error=%s", self.channel, type(exc))
            else:
                self.stats.alerts_sent += 1

    # -- channel → native side -------------------------------------------------------------

    def handle_event(self, event: ev.Event, now: float) -> None:
        """One endpoint event of this channel."""
        if isinstance(event, ev.Voice):
            if self.mixer is not None:
                self.mixer.voice(event.sender, event.ctr, event.payload, now)
        elif isinstance(event, ev.TalkerChanged):
            self._floor = event.talker
            if self.mixer is not None:
                self.mixer.floor_moved(event.talker)
            for talker, talk in self._talks.items():
                talk.released = talk.released or talker != event.talker
        elif isinstance(event, ev.BurstSealed):
            if self.mixer is not None:
                self.mixer.burst_sealed(event.sender)
                self._sealed(event.sender, event.verified)
            elif self.adapter.wants_talk_notices and event.sender != self._endpoint.device:
                self.adapter.talk_ended(event.sender, event.verified)
        elif isinstance(event, ev.FloorEvent):
            if event.event == "revoked" and event.device == self._endpoint.device and self.sender:
                self.sender.revoked()
        elif isinstance(event, ev.Emergency):  # the relay's claim
            self.adapter.emergency(EmergencyState(event.active, event.by, verified=False))
        elif isinstance(event, ev.EmergencySigned):  # what a member signed
            self._signed_emergency = event.active
            self.adapter.emergency(EmergencyState(event.active, event.by, verified=True))
        elif isinstance(event, ev.Message):
            self._message(event)
        elif isinstance(event, ev.FreshnessAlarm):
            self.stats.alarms += 1
            self.adapter.alarm(SecurityAlarm(event.kind, event.detail))
        elif isinstance(event, ev.EmergencyUnsigned):
            self.stats.alarms += 1
            detail = f"no signed declaration within {event.bound:g} s"
            self.adapter.alarm(SecurityAlarm("emergency-unsigned", detail, event.by))

    def _message(self, msg: ev.Message) -> None:
        if msg.kind == DATA_KIND and msg.sender != self._endpoint.device:
            self._position(msg)
        if msg.kind != "text" or msg.sender == self._endpoint.device:
            return
        try:
            text = msg.body.decode("utf-8")
        except UnicodeDecodeError:
            self.stats.undecodable += 1
            return
        self.stats.posted += 1
        self.adapter.post(text, msg.sender)

    def _position(self, msg: ev.Message) -> None:
        if not self.adapter.takes_positions:
            return
        try:
            pos = decode_position(msg.body)
        except RemoteProtocolError as exc:
            self.stats.positions_refused[exc.code] += 1
            log.info("event=position-refused channel=%s code=%s", self.channel, exc.code)
            return
        key = (msg.sender, pos.uid)
        if pos.stale <= self._wall() or pos.time < self._shown.get(key, 0.0):
            self.stats.positions_dropped += 1
            return
        if len(self._shown) >= 4096 and key not in self._shown:
            self._shown.clear()  # bounded; only the ordering of very old reports is forgotten
        self._shown[key] = pos.time
        self.stats.positions_shown += 1
        self.adapter.show_position(pos, msg.sender)

    def tick(self, now: float) -> None:
        """One playout tick (every 5 ms; each mixer keeps its own 20 ms frame periods)."""
        if self.mixer is not None:
            for out in self.mixer.tick(now):
                if isinstance(out, TalkerStarted):
                    self._started(out.sender)
                elif isinstance(out, PlayoutFrame):
                    self.adapter.play(out.pcm, out.talkers, at=out.at)
                elif isinstance(out, TalkerStopped):
                    self._stopped(out.sender, now)
        for talker, talk in list(self._talks.items()):
            if talk.stopped_at is not None and now - talk.stopped_at >= self._seal_grace:
                self._finish(talker)

    def _started(self, talker: str) -> None:
        if talker in self._talks:  # a new burst before the last one's verdict: unverified
            self._finish(talker)
        self._talks[talker] = _Talk(released=self._floor != talker)
        self.adapter.talk_started(talker)

    def _stopped(self, talker: str, now: float) -> None:
        talk = self._talks.get(talker)
        if talk is not None:
            talk.stopped_at = now
            if talk.verified is not None:
                self._finish(talker)

    def _sealed(self, talker: str, verified: bool) -> None:
        talk = self._talks.get(talker)
        if talk is None or not (talk.released or talk.stopped_at is not None):
            return  # no burst of theirs is ending here: the seal vouches for nothing we play
        if talk.verified is None:
            talk.verified = verified
        if talk.stopped_at is not None:
            self._finish(talker)

    def _finish(self, talker: str) -> None:
        talk = self._talks.pop(talker)
        self.adapter.talk_ended(talker, bool(talk.verified))

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the adapter, with this channel as its event sink."""
        await self.adapter.start(self.on_adapter_event)

    async def aclose(self, timeout: float = 5.0) -> None:
        """End the talks being played, stop the adapter, then end a burst in progress
        (floor release + seal, at most ``timeout`` s) and stop sending texts."""
        for talker in list(self._talks):
            self._finish(talker)
        try:
            await self.adapter.stop()
        finally:
            if self.sender is not None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.sender.aclose(), timeout)
            if self.positions is not None:
                await self.positions.aclose()
            for task in (self._text_task, self._alert_task):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            self._text_task = self._alert_task = None
