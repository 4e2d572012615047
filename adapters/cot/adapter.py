"""The thin asyncio driver of the CoT adapter: UDP (unicast or the 239.2.3.1:6969 mesh) and a
TCP client to a TAK server, reconnecting with bounded backoff.

Incoming events go to the sink as ``Text`` (GeoChat), ``Position`` (PLI) and
``EmergencyAlert`` (``b-a-o-*``); our own uids are filtered out (multicast loops back what we
send). Outgoing, :meth:`CotAdapter.post` sends GeoChat, :meth:`CotAdapter.emergency` a 911
alert or its cancel, and :meth:`CotAdapter.show_position` a PLI tagged with the agency of the
device that signed it. Refused input is counted in ``refused`` (by code) and never logged with
its content.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from adapters.base import Adapter, EmergencyState, EventSink, Position
from adapters.cot.events import CotError, CotEvent, build_xml
from adapters.cot.mapping import chat_event, classify, emergency_event, position_event
from adapters.cot.proto import StreamSplitter, decode_datagram, encode_mesh, encode_stream
from adapters.errors import AdapterConfigError

__all__ = ["CotAdapter", "CotConfig"]

log = logging.getLogger(__name__)
MAX_WRITE_BUFFER = 256 * 1024  # a TAK server that does not read gets our events dropped


@dataclass(frozen=True, slots=True)
class CotConfig:
    """``udp``: send to/listen on ``host:port`` (multicast if ``host`` is one; ``bind_port``
    to listen on, default ``port``). ``tcp``: connect to the TAK server at ``host:port``.
    ``wire``: ``xml`` or ``proto`` (mesh on UDP, stream on TCP)."""

    transport: Literal["udp", "tcp"] = "udp"
    host: str = "239.2.3.1"
    port: int = 6969
    bind_host: str = ""  # "" = all interfaces
    bind_port: int | None = None
    wire: Literal["xml", "proto"] = "xml"
    agency: str | None = None
    group: str | None = None
    callsign: str = "Crossband"
    device_uid: str = ""
    backoff_initial: float = 0.2
    backoff_max: float = 10.0

    def __post_init__(self) -> None:
        if self.transport not in ("udp", "tcp"):
            raise AdapterConfigError("cot.transport", "must be udp or tcp")
        if self.wire not in ("xml", "proto"):
            raise AdapterConfigError("cot.wire", "must be xml or proto")
        if not 0 < self.port < 65536:
            raise AdapterConfigError("cot.port", "must be 1..65535")
        if not 0 < self.backoff_initial <= self.backoff_max:
            raise AdapterConfigError("cot.backoff_initial", "must be > 0 and <= backoff_max")


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, owner: CotAdapter) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            self.owner._incoming(decode_datagram(data))
        except CotError as exc:
            self.owner._refuse(exc)


class CotAdapter(Adapter):
    yields_audio = False
    plays_audio = False
    yields_positions = True
    takes_positions = True

    def __init__(self, config: CotConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.device_uid = config.device_uid or f"crossband-{uuid.uuid4().hex[:12]}"
        self.clock = clock
        self.refused: Counter[str] = Counter()
        self.dropped = 0  # events not sent: no TAK server connected, or it does not read
        self.attempts = 0  # TCP connection attempts
        self.connected = asyncio.Event()
        self._sink: EventSink | None = None
        self._own: set[str] = set()
        self._udp: asyncio.DatagramTransport | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, sink: EventSink) -> None:
        self._sink = sink
        loop = asyncio.get_running_loop()
        if self.config.transport == "udp":
            sock = self._udp_socket()
            transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), sock=sock)
            self._udp = transport  # type: ignore[assignment]
        else:
            self._task = asyncio.create_task(self._tcp_loop())

    @property
    def udp_port(self) -> int | None:
        """The local UDP port listened on (useful with ``bind_port=0``)."""
        if self._udp is None:
            return None
        port: int = self._udp.get_extra_info("sockname")[1]
        return port

    def _udp_socket(self) -> socket.socket:
        cfg = self.config
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        multicast = ipaddress.ip_address(cfg.host).is_multicast
        port = cfg.bind_port if cfg.bind_port is not None else cfg.port
        sock.bind(("" if multicast else cfg.bind_host, port))
        if multicast:
            iface = (
                socket.inet_aton(cfg.bind_host)
                if cfg.bind_host
                else struct.pack("!I", socket.INADDR_ANY)
            )
            mreq = socket.inet_aton(cfg.host) + iface
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            if cfg.bind_host:
                sock.setsockopt(
                    socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(cfg.bind_host)
                )
        sock.setblocking(False)
        return sock

    async def _tcp_loop(self) -> None:
        delay = self.config.backoff_initial
        while True:
            self.attempts += 1
            try:
                reader, writer = await asyncio.open_connection(self.config.host, self.config.port)
            except OSError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.config.backoff_max)
                continue
            delay = self.config.backoff_initial
            self._writer = writer
            self.connected.set()
            try:
                await self._read_stream(reader)
            except (OSError, CotError) as exc:
                if isinstance(exc, CotError):
                    self._refuse(exc)
            finally:
                self.connected.clear()
                self._writer = None
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            await asyncio.sleep(delay)

    async def _read_stream(self, reader: asyncio.StreamReader) -> None:
        splitter = StreamSplitter()
        while data := await reader.read(65536):
            for item in splitter.feed(data):
                if isinstance(item, CotError):
                    self._refuse(item)
                else:
                    self._incoming(item)

    async def stop(self) -> None:
        self._sink = None
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- incoming ------------------------------------------------------------------------
    def _refuse(self, exc: CotError) -> None:
        self.refused[exc.code] += 1
        log.debug("CoT input refused: %s", exc.code)

    def _incoming(self, event: CotEvent) -> None:
        if event.uid in self._own or event.sender_uid == self.device_uid or self._sink is None:
            return
        try:
            item = classify(event, self.clock())
        except CotError as exc:
            self._refuse(exc)
            return
        if item is not None:
            self._sink(item)

    # -- outgoing ------------------------------------------------------------------------
    def post(self, text: str, sender: str) -> None:
        try:
            event = chat_event(
                text,
                sender,
                device_uid=self.device_uid,
                agency=self.config.agency,
                now=self.clock(),
            )
        except (CotError, ValueError) as exc:
            self._refuse(exc if isinstance(exc, CotError) else CotError("field", "bad chat"))
            return
        self._send(event)

    def emergency(self, state: EmergencyState) -> None:
        """The channel's emergency, out as a 911 alert or its cancel; a Crossband device id
        (``"us-cbp/gw-blaine"``) names its own agency, so it is not tagged with ours."""
        device = state.by is not None and "/" in state.by
        self._send(
            emergency_event(
                state,
                device_uid=self.device_uid,
                callsign=state.by or self.config.callsign,
                agency=None if device else self.config.agency,
                now=self.clock(),
            )
        )

    def show_position(self, position: Position, sender: str) -> None:
        """A position from the channel, signed by ``sender``, out as a PLI event."""
        try:
            event = position_event(position, self.config.group, sender=sender)
        except CotError as exc:
            self._refuse(exc)
            return
        self._send(event)

    def _send(self, event: CotEvent) -> None:
        self._own.add(event.uid)
        if len(self._own) > 4096:
            self._own = {event.uid}
        cfg = self.config
        if self._udp is not None:
            data = encode_mesh(event) if cfg.wire == "proto" else build_xml(event)
            self._udp.sendto(data, (cfg.host, cfg.port))
        elif self._writer is not None and (
            self._writer.transport.get_write_buffer_size() < MAX_WRITE_BUFFER
        ):
            self._writer.write(encode_stream(event) if cfg.wire == "proto" else build_xml(event))
        else:
            self.dropped += 1
