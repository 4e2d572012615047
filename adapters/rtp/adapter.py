"""One RTP channel mapping as an adapter (``adapters.base``): radio streams ↔ PCM + PTT events.

For a :class:`~adapters.rtp.mapping.ChannelMapping`:

* **input** (radio → channel): an :class:`~adapters.rtp.driver.RtpReceiverDriver` turns the
  radio side's stream into push-to-talk bursts; ``BurstStart`` becomes
  ``TalkStart(source, priority)`` at the mapping's priority, each 20 ms ``Audio`` a ``Pcm``
  frame at the mapping's rate (G.711 is decoded and resampled there, and every frame is
  re-timed onto the 20 ms clock, :mod:`adapters.rtp.retimer`), ``BurstEnd`` a
  ``TalkEnd``. The source names the stream and the SSRC the burst is locked to,
  ``rtp:<port>/<ssrc>``;
* **output** (channel → radio): an :class:`~adapters.rtp.driver.RtpSenderDriver` sends one RTP
  burst while anybody talks — key-up at the first ``talk_started``, ``play`` frames as RTP,
  key-down when the last talker's ``talk_ended`` comes (the gateway sends it once the
  talker's burst seal has been checked, so the stream may stay keyed, silent, that long).

Text and emergencies have no RTP form and are ignored. Everything RTP-specific of the gateway
is here; the gateway (``bridge.gateway``) sees only the adapter interface.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from adapters.base import Adapter, EventSink, Pcm, TalkEnd, TalkStart
from adapters.errors import AdapterError
from adapters.rtp.driver import RtpReceiverDriver, RtpSenderDriver
from adapters.rtp.mapping import ChannelMapping
from adapters.rtp.receiver import Audio, BurstEnd, BurstStart, RtpEvent
from adapters.rtp.retimer import RetimedReceiver
from adapters.rtp.sender import RtpSender

__all__ = ["RtpAdapter"]


class RtpAdapter(Adapter):
    """The RTP input and/or output of one channel mapping (see the module docstring)."""

    def __init__(self, mapping: ChannelMapping, *, clock: Callable[[], float] = time.time) -> None:
        self.mapping = mapping
        self.rate = mapping.rate
        self.yields_audio = mapping.input is not None
        self.plays_audio = mapping.output is not None
        self.rx: RtpReceiverDriver | None = None
        self.tx: RtpSenderDriver | None = None
        self._clock = clock  # wall-clock: it goes into RTCP sender reports
        self._sink: EventSink | None = None
        self._source: str | None = None  # the burst in progress on the input
        self._talkers: set[str] = set()  # remote talkers being played on the output

    @property
    def input_address(self) -> tuple[str, int]:
        """Where the RTP input listens (useful with ``port: 0``)."""
        if self.rx is None:
            raise AdapterError(f"channel {self.mapping.channel} has no RTP input listening")
        return self.rx.local_address

    @property
    def keyed(self) -> bool:
        """The output is sending an RTP burst."""
        return bool(self._talkers)

    async def start(self, sink: EventSink) -> None:
        self._sink = sink
        m = self.mapping
        try:
            if m.input is not None:
                self.rx = RtpReceiverDriver(
                    RetimedReceiver(m.input.receiver), m.input.transport, self._on_rtp
                )
                await self.rx.start()
            if m.output is not None:
                self.tx = RtpSenderDriver(
                    RtpSender(m.output.sender), m.output.transport, self._clock
                )
                await self.tx.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        if self.rx is not None:
            self.rx.close()
            self.rx = None
        if self.tx is not None:
            if self._talkers:
                self.tx.end_burst()
            self.tx.close()
            self.tx = None
        self._talkers.clear()
        self._source = None
        self._sink = None

    def _on_rtp(self, event: RtpEvent) -> None:
        sink = self._sink
        if sink is None:
            return
        if isinstance(event, BurstStart):
            port = self.rx.local_address[1] if self.rx else 0
            self._source = f"rtp:{port}/{event.ssrc:08x}"
            sink(TalkStart(self._source, self.mapping.priority))
        elif self._source is None:
            return
        elif isinstance(event, Audio):
            sink(Pcm(self._source, event.pcm, self.rate))
        elif isinstance(event, BurstEnd):
            sink(TalkEnd(self._source))
            self._source = None

    def talk_started(self, talker: str) -> None:
        if self.tx is None:
            return
        if not self._talkers:
            self.tx.start_burst()
        self._talkers.add(talker)

    def play(self, pcm: bytes, talkers: tuple[str, ...], *, at: float | None = None) -> None:
        if self.tx is not None and self._talkers:  # the gateway announces talkers first
            self.tx.send_audio(pcm, at=at)

    def talk_ended(self, talker: str, verified: bool) -> None:
        if self.tx is None or talker not in self._talkers:
            return
        self._talkers.discard(talker)
        if not self._talkers:
            self.tx.end_burst()
