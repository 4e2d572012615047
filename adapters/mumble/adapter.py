"""One Mumble channel as an adapter (``adapters.base``): Mumble voice and chat ↔ PCM, PTT, text.

* **Mumble → channel.** A Mumble user's voice (Opus, 48 kHz, decoded straight at the
  adapter's ``rate`` by libopus) becomes ``TalkStart(source)`` at the configured priority,
  20 ms ``Pcm`` frames and ``TalkEnd`` at the packet marked last — or after ``hang_time``
  without a packet, or when the talker leaves the channel or the connection drops. The
  source is ``mumble:<user name>``. One Mumble talker at a time: another user who talks
  meanwhile, or any while a Crossband talker is being played into the channel, is not
  relayed and is told so in the channel chat (once per burst). A gap in the sequence numbers
  of up to 100 ms is concealed (libopus PLC) so the burst keeps its timing.
* **channel → Mumble.** While Crossband talkers are announced (``talk_started``) the bridge
  user speaks: each ``play`` frame is one 20 ms Opus packet; after the last ``talk_ended``
  a silent packet marked last ends the transmission. The bridge user's comment shows who is
  speaking, then who spoke last and whether their burst seal verified.
* **Text.** Channel chat (HTML) becomes ``Text`` (tags stripped, entities decoded); ``post``
  and ``emergency`` become chat lines (escaped), an emergency saying whether it is signed or
  only the relay's claim.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
from collections import deque
from collections.abc import Callable
from typing import Protocol

from adapters.base import (
    Adapter,
    EmergencyState,
    EventSink,
    Pcm,
    SecurityAlarm,
    TalkEnd,
    TalkStart,
    Text,
)
from adapters.codecs.opus import OpusDecoder, OpusEncoder
from adapters.codecs.pcm import CodecError, frame_samples
from adapters.mumble.client import (
    MAX_TEXT,
    ClientConfig,
    Closed,
    Joined,
    MumbleEvent,
    TextReceived,
    UserLeft,
    VoiceReceived,
)
from adapters.mumble.config import MumbleConfig
from adapters.mumble.driver import MumbleDriver, ServerConfig

__all__ = ["MumbleAdapter", "MumbleLink", "html_to_text"]

log = logging.getLogger(__name__)
MAX_GAP_UNITS = 10  # sequence units (10 ms) of a gap that is concealed
OUTBOX = 100  # chat lines kept while the bridge is not in its channel


class MumbleLink(Protocol):
    """What the adapter needs of its driver (:class:`~adapters.mumble.driver.MumbleDriver`)."""

    sessions: int  # connections that reached ServerSync

    @property
    def ready(self) -> bool: ...
    async def start(self, timeout: float) -> None: ...
    async def stop(self) -> None: ...
    def send_text(self, message: str) -> None: ...
    def send_voice(self, opus: bytes, last: bool = False) -> bool: ...
    def set_comment(self, comment: str) -> None: ...


LinkFactory = Callable[[ServerConfig, ClientConfig, Callable[[MumbleEvent], None]], MumbleLink]


def html_to_text(body: str) -> str:
    """Mumble's HTML chat line as plain text."""
    text = re.sub(r"(?i)<br\s*/?>|</p>", "\n", body)
    return html.unescape(re.sub(r"<[^>]*>", "", text)).strip()


class _Burst:
    def __init__(self, session: int, source: str, rate: int) -> None:
        self.session = session
        self.source = source
        self.decoder = OpusDecoder(rate)
        self.pending = bytearray()
        self.next_sequence: int | None = None


class MumbleAdapter(Adapter):
    """A Mumble channel as a Crossband talkgroup (see the module docstring)."""

    yields_audio = True
    plays_audio = True

    def __init__(
        self,
        config: MumbleConfig,
        *,
        driver: LinkFactory = MumbleDriver,
    ) -> None:
        self.config = config
        self._make_driver = driver
        self.rate = config.rate
        self.driver: MumbleLink | None = None
        self.stats = {"denied": 0, "decode_errors": 0, "frames_in": 0, "frames_out": 0,
                      "texts_dropped": 0}  # fmt: skip
        self._outbox: deque[str] = deque()
        self._comment = ""
        self._sink: EventSink | None = None
        self._burst: _Burst | None = None
        self._hang: asyncio.TimerHandle | None = None
        self._denied: set[int] = set()  # sessions told this burst
        self._remote: list[str] = []  # Crossband talkers being played, in order
        self._encoder: OpusEncoder | None = None
        self._frame_bytes = 2 * frame_samples(self.rate)

    async def start(self, sink: EventSink) -> None:
        self._sink = sink
        self.driver = self._make_driver(self.config.server, self.config.client, self._on_event)
        try:
            await self.driver.start(self.config.start_timeout)
        except BaseException:
            self.driver = None
            self._sink = None
            raise

    async def stop(self) -> None:
        self._end_burst()
        self._sink = None
        if self.driver is not None:
            if self._remote:
                self._send_end()
            await self.driver.stop()
            self.driver = None
        self._remote.clear()

    # -- Mumble → channel ---------------------------------------------------------------------

    def _on_event(self, event: MumbleEvent) -> None:
        if isinstance(event, VoiceReceived):
            self._voice(event)
        elif isinstance(event, TextReceived):
            body = html_to_text(event.message)
            if body and self._sink is not None:
                self._sink(Text(f"mumble:{event.name}", body))
        elif isinstance(event, UserLeft):
            if self._burst is not None and self._burst.session == event.session:
                self._end_burst()
        elif isinstance(event, Closed):
            self._end_burst()
        elif isinstance(event, Joined):  # (again, after a reconnect): what waited goes out
            if self._comment:
                self._set_comment(self._comment)
            while self._outbox and self.driver is not None and self.driver.ready:
                self.driver.send_text(self._outbox.popleft())

    def _voice(self, event: VoiceReceived) -> None:
        burst = self._burst
        if burst is None and not self._remote and event.session not in self._denied:
            burst = self._burst = _Burst(event.session, f"mumble:{event.name}", self.rate)
            self._emit(TalkStart(burst.source, self.config.priority))
        if burst is None or burst.session != event.session:
            self._deny(event)
            return
        self._decode(burst, event)
        if event.last:
            self._end_burst(flush=True)
        else:
            self._arm_hang()

    def _decode(self, burst: _Burst, event: VoiceReceived) -> None:
        expected = burst.next_sequence
        gap = 0 if expected is None else event.sequence - expected
        try:
            for _ in range(min(gap, MAX_GAP_UNITS) // 2 if gap > 0 else 0):
                burst.pending += burst.decoder.conceal()
            pcm = burst.decoder.decode(event.opus) if event.opus else b""
        except CodecError:
            self.stats["decode_errors"] += 1
            return
        units = len(pcm) // 2 * 100 // self.rate  # 10 ms units of this packet
        burst.next_sequence = event.sequence + max(units, 1)
        burst.pending += pcm
        while len(burst.pending) >= self._frame_bytes:
            frame = bytes(burst.pending[: self._frame_bytes])
            del burst.pending[: self._frame_bytes]
            self.stats["frames_in"] += 1
            self._emit(Pcm(burst.source, frame, self.rate))

    def _deny(self, event: VoiceReceived) -> None:
        if event.last:
            self._denied.discard(event.session)
        if event.session in self._denied or event.last:
            return
        self._denied.add(event.session)
        self.stats["denied"] += 1
        holder = self._remote[0] if self._remote else (self._burst.source if self._burst else "")
        line = f"{event.name}: not relayed to Crossband, the floor is held by {holder or 'another'}"
        self._chat(line, keep=False)

    def floor_denied(self, source: str, holder: str | None) -> None:
        """The channel's floor refused (or took back) the burst of ``source``; ``holder``
        has it (:meth:`adapters.base.Adapter.floor_denied`: the gateway calls it on a denied
        or revoked floor request). The Mumble talker is told in the chat, once per burst."""
        burst = self._burst
        if burst is None or burst.source != source or burst.session in self._denied:
            return
        self._denied.add(burst.session)
        self.stats["denied"] += 1
        name = source.removeprefix("mumble:")
        self._chat(f"{name}: not relayed to Crossband, the floor is held by {holder or 'another'}",
                   keep=False)  # fmt: skip

    def _arm_hang(self) -> None:
        if self._hang is not None:
            self._hang.cancel()
        self._hang = asyncio.get_running_loop().call_later(self.config.hang_time, self._end_burst)

    def _end_burst(self, flush: bool = False) -> None:
        if self._hang is not None:
            self._hang.cancel()
            self._hang = None
        burst, self._burst = self._burst, None
        self._denied.clear()
        if burst is None:
            return
        if flush and burst.pending:
            frame = bytes(burst.pending).ljust(self._frame_bytes, b"\0")
            self.stats["frames_in"] += 1
            self._emit(Pcm(burst.source, frame, self.rate))
        self._emit(TalkEnd(burst.source))

    def _emit(self, event: TalkStart | Pcm | TalkEnd | Text) -> None:
        if self._sink is not None:
            self._sink(event)

    # -- channel → Mumble ---------------------------------------------------------------------

    def talk_started(self, talker: str) -> None:
        if talker in self._remote:
            return
        if not self._remote:
            self._encoder = OpusEncoder(self.rate, self.config.voice_bitrate, fec=False)
        self._remote.append(talker)
        if self.driver is not None:
            self._set_comment(f"Crossband: {html.escape(talker)} speaking")

    def play(self, pcm: bytes, talkers: tuple[str, ...], *, at: float | None = None) -> None:
        if not self._remote or self._encoder is None or self.driver is None:
            return
        try:
            opus = self._encoder.encode(pcm)
        except CodecError:
            return
        if self.driver.send_voice(opus):
            self.stats["frames_out"] += 1

    def talk_ended(self, talker: str, verified: bool) -> None:
        if talker not in self._remote:
            return
        self._remote.remove(talker)
        if self.driver is None:
            return
        verdict = "seal verified" if verified else "NOT verified"
        if not self._remote:
            self._denied.clear()
            self._send_end()
            self._set_comment(f"Crossband: last {html.escape(talker)} ({verdict})")

    def _send_end(self) -> None:
        if self.driver is not None and self._encoder is not None:
            self.driver.send_voice(self._encoder.encode(bytes(self._frame_bytes)), last=True)
        self._encoder = None

    def post(self, text: str, sender: str) -> None:
        self._chat(f"<b>{html.escape(sender)}</b>: {html.escape(text)}")

    def emergency(self, state: EmergencyState) -> None:
        by = html.escape(state.by or "unknown")
        how = "signed" if state.verified else "relay's claim, unverified"
        what = f"EMERGENCY raised by {by}" if state.active else f"emergency cleared ({by})"
        self._chat(f"<b>{what}</b> [{how}]")

    def alarm(self, alarm: SecurityAlarm) -> None:
        self._chat(f"<b>{html.escape(alarm.describe())}</b>")

    def _chat(self, line: str, keep: bool = True) -> None:
        """A chat line now, or once the bridge is back in its channel (``keep``; at most
        :data:`OUTBOX` wait, the oldest dropped first and counted)."""
        line = line[:MAX_TEXT]
        if self.driver is not None and self.driver.ready:
            self.driver.send_text(line)
        elif keep:
            if len(self._outbox) >= OUTBOX:
                self._outbox.popleft()
                self.stats["texts_dropped"] += 1
            self._outbox.append(line)

    def _set_comment(self, comment: str) -> None:
        self._comment = comment
        if self.driver is not None:
            self.driver.set_comment(comment)
