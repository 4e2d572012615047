"""One call's RTP, over one UDP socket (symmetric RTP, RFC 4961): a thin asyncio driver around
the RTP adapter's sans-IO :class:`~adapters.rtp.retimer.RetimedReceiver` (decode, resample,
conceal loss, re-time onto the 20 ms clock) and :class:`~adapters.rtp.sender.RtpSender`.

Datagrams of the negotiated ``telephone-event`` payload type go to a
:class:`~adapters.sip.floor.DtmfDetector` instead (the digit goes to ``on_digit``); the rest
to the receiver, whose 20 ms frames go to ``on_frame``. Audio sent goes to the address of the
peer's SDP. While the peer holds the call (``sendonly``/``inactive`` offer, RFC 3264 §8.4) we
send nothing. Socket errors are counted, logged by type only.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from adapters.errors import AdapterError
from adapters.rtp.config import RtpReceiverConfig, RtpSenderConfig
from adapters.rtp.packet import RtpParseError, is_rtcp, parse_rtp
from adapters.rtp.receiver import Audio
from adapters.rtp.retimer import RetimedReceiver
from adapters.rtp.sender import RtpSender
from adapters.sip.floor import DtmfDetector
from adapters.sip.sdp import Negotiated

__all__ = ["CallMedia"]

log = logging.getLogger(__name__)
JITTER_MARGIN = 0.03  # seconds the re-timer starts with: phones' RTP comes with some jitter


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, media: CallMedia) -> None:
        self.media = media

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.media._datagram(data, addr)  # noqa: SLF001

    def error_received(self, exc: Exception) -> None:
        log.warning("sip media: socket error %s", type(exc).__name__)
        self.media.errors += 1


class CallMedia:
    """The RTP of one call (module docstring)."""

    def __init__(
        self,
        negotiated: Negotiated,
        rate: int,
        on_frame: Callable[[bytes], None],
        on_digit: Callable[[str], None],
        *,
        host: str = "127.0.0.1",
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.rate = rate
        self.host = host
        self.errors = 0
        self.digits = DtmfDetector()
        self._on_frame = on_frame
        self._on_digit = on_digit
        self._transport: asyncio.DatagramTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tx_timer: asyncio.TimerHandle | None = None
        self._clock = clock
        self.sending = False
        self.update(negotiated)

    def update(self, negotiated: Negotiated) -> None:
        """New media from offer/answer (first, or a re-INVITE)."""
        self.negotiated = negotiated
        self.remote = negotiated.remote
        old = getattr(self, "receiver", None)
        if old is None or old.config.payloads[0] != negotiated.payload:
            self.receiver = RetimedReceiver(
                RtpReceiverConfig((negotiated.payload,), rate=self.rate, hang_time=0.5),
                base_delay=JITTER_MARGIN,
            )
            self.sender = RtpSender(
                RtpSenderConfig(
                    negotiated.payload,
                    rate=self.rate,
                    ptime_ms=negotiated.ptime,
                    rtcp_interval=None,
                )
            )
            self.sending = False
        if not self.may_send and self.sending:
            self.end_burst()

    @property
    def may_send(self) -> bool:
        n = self.negotiated
        return n.direction in ("sendrecv", "sendonly") and n.remote[0] != "0.0.0.0"  # noqa: S104

    async def open(self) -> tuple[str, int]:
        """Bind the RTP socket; returns its address (for our SDP)."""
        self._loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET,
                             socket.SOCK_DGRAM)  # fmt: skip
        try:
            sock.bind((self.host, 0))
            sock.setblocking(False)
            self._transport, _ = await self._loop.create_datagram_endpoint(
                lambda: _Protocol(self), sock=sock
            )
        except OSError as exc:
            sock.close()
            raise AdapterError(f"cannot open an RTP socket: {exc.strerror}")
        host, port = self._transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _wall(self) -> float:
        return self._clock() if self._clock is not None else self._now()

    def _datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        dtmf = self.negotiated.dtmf_pt
        if dtmf is not None and not is_rtcp(data):
            try:
                packet = parse_rtp(data)
            except RtpParseError:
                packet = None
            if packet is not None and packet.payload_type == dtmf:
                digit = self.digits.packet(packet.timestamp, packet.payload)
                if digit is not None:
                    self._on_digit(digit)
                return
        self.receiver.receive_datagram(data, addr, self._now())
        self._dispatch()

    def _on_timer(self) -> None:
        self._timer = None
        self.receiver.handle_timer(self._now())
        self._dispatch()

    def _dispatch(self) -> None:
        for event in self.receiver.events_received():
            if isinstance(event, Audio):
                self._on_frame(event.pcm)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        when = self.receiver.get_timer()
        if when is not None and self._loop is not None and self._transport is not None:
            self._timer = self._loop.call_at(when, self._on_timer)

    # --- sending ---------------------------------------------------------------------------
    def start_burst(self) -> None:
        if self.may_send and not self.sending:
            self.sender.start_burst(self._wall())
            self.sending = True

    def send_audio(self, pcm: bytes) -> None:
        if self.sending:
            self.sender.send_audio(pcm, self._wall())
            self._flush()

    def end_burst(self) -> None:
        if self.sending:
            self.sender.end_burst(self._wall())
            self.sending = False
            self._flush()

    def _flush(self) -> None:
        for kind, data in self.sender.datagrams_to_send():
            if kind != "rtp" or self._transport is None:
                continue
            try:
                self._transport.sendto(data, self.remote)
            except OSError as exc:
                log.warning("sip media: send failed: %s", type(exc).__name__)
                self.errors += 1
        if self._tx_timer is not None:
            self._tx_timer.cancel()
            self._tx_timer = None
        when = self.sender.get_timer()
        if when is not None and self._loop is not None:
            self._tx_timer = self._loop.call_later(max(when - self._wall(), 0.0), self._tx_tick)

    def _tx_tick(self) -> None:
        self._tx_timer = None
        self.sender.handle_timer(self._wall())
        self._flush()

    def close(self) -> None:
        for timer in (self._timer, self._tx_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._tx_timer = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None
