"""The relay's I/O driver: aiohttp WebSocket + /metrics, a UDP socket, timers, the store thread.

Everything that decides anything lives in :mod:`bridge.relay.core`; this module moves bytes. Each
WebSocket connection is read by one task, so a connection's control messages are handled in
order. Store calls (fsync-heavy) run on one dedicated thread, in submission order, and their
continuations come back to the event loop. A malformed or unknown message gets a coded error;
an exception in the handling of one connection is logged (without content) and answered with
``internal``, and never reaches another connection.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import ssl
import time
from concurrent.futures import ThreadPoolExecutor

from aiohttp import WSMsgType, web

from bridge.errors import ProtocolError
from bridge.relay.core import Job, Outcome, RelayCore
from bridge.wire import control as p
from crypto.errors import CrossbandError

log = logging.getLogger("crossband.relay")
WS_BACKLOG = 256 * 1024  # bytes queued to a WebSocket listener before its voice is dropped


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: RelayServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.server.on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("event=udp-error errno=%s", getattr(exc, "errno", None))


class RelayServer:
    def __init__(
        self,
        core: RelayCore,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        udp_port: int | None = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.core = core
        self.host, self.port, self.udp_port = host, port, udp_port
        self.ssl_context = ssl_context
        self._store_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._ws: dict[int, web.WebSocketResponse] = {}
        self._transports: dict[int, asyncio.Transport] = {}
        self._udp: _Udp | None = None
        self._runner: web.AppRunner | None = None
        self._timer: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=p.MAX_CONTROL)
        app.router.add_get("/ws", self._ws_handler)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._health)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        loop = asyncio.get_running_loop()
        if self.udp_port is not None:
            _, proto = await loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=(self.host, self.udp_port)
            )
            self._udp = proto
            assert proto.transport is not None
            self.udp_port = proto.transport.get_extra_info("sockname")[1]
            self.core.config.udp_port = self.udp_port
        self._timer = asyncio.create_task(self._tick())
        # Everything built so far lives as long as the relay: keep the collector off it
        # (full collections over it cost tens of ms of voice latency).
        gc.collect()
        gc.freeze()
        log.info("event=relay-started host=%s port=%s udp=%s", self.host, self.port, self.udp_port)

    async def stop(self) -> None:
        if self._timer:
            self._timer.cancel()
        for ws in list(self._ws.values()):
            await ws.close(code=1001, message=b"relay shutting down")
        if self._udp and self._udp.transport:
            self._udp.transport.close()
        if self._runner:
            await self._runner.cleanup()
        self._store_thread.shutdown(wait=True)

    @property
    def url(self) -> str:
        scheme = "wss" if self.ssl_context else "ws"
        return f"{scheme}://{self.host}:{self.port}/ws"

    # -- outcomes ------------------------------------------------------------------------------

    async def apply(self, outcome: Outcome) -> None:
        while True:
            for sid, message in outcome.sends:
                ws = self._ws.get(sid)
                if ws is not None and not ws.closed:
                    try:
                        await ws.send_str(message)
                    except (ConnectionError, RuntimeError):
                        pass
            for sid, code in outcome.close:
                ws = self._ws.get(sid)
                if ws is not None and not ws.closed:
                    try:
                        await ws.send_str(p.error(code))
                    except (ConnectionError, RuntimeError):
                        pass
                    await ws.close(code=4000, message=code.encode())
            job = outcome.job
            if job is None:
                return
            outcome = await self._run_job(job)

    async def _run_job(self, job: Job) -> Outcome:
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._store_thread, job.fn)
        return job.then(result)

    # -- websocket -----------------------------------------------------------------------------

    async def _ws_handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=p.MAX_CONTROL, compress=False)
        await ws.prepare(request)
        sid, challenge = self.core.connect(time.time())
        self._ws[sid] = ws
        if request.transport is not None:
            self._transports[sid] = request.transport
        try:
            await ws.send_str(challenge)
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_text(sid, ws, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self._on_binary(sid, msg.data)
                else:
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._ws.pop(sid, None)
            self._transports.pop(sid, None)
            try:
                await self.apply(self.core.disconnect(sid, time.time()))
            except Exception:
                log.exception("event=disconnect-failed session=%s", sid)
        return ws

    async def _on_text(self, sid: int, ws: web.WebSocketResponse, data: str) -> None:
        now = time.time()
        rid = None
        try:
            msg = p.parse_control(data)
            rid = msg.get("rid")
            outcome = self.core.handle(sid, msg, now)
        except ProtocolError as exc:
            self.core.metrics.c["protocol_errors"] += 1
            await ws.send_str(p.error(exc.code, exc.detail, rid=rid))
            session = self.core.sessions.get(sid)
            if session is not None and session.device is None and exc.code != p.Codes.RATE_LIMITED:
                await ws.close(code=4001, message=exc.code.encode())  # refused auth: hang up
            return
        except (CrossbandError, ValueError, KeyError, TypeError):
            log.exception("event=control-failed session=%s", sid)
            await ws.send_str(p.error(p.Codes.INTERNAL, rid=rid))
            return
        await self.apply(outcome)

    def _on_binary(self, sid: int, data: bytes) -> None:
        try:
            kind, channel_no, frame = p.parse_ws_media(data)
        except ProtocolError:
            self.core.metrics.drop("malformed")
            return
        s = self.core.sessions.get(sid)
        if s is None or kind != p.WS_MEDIA_UP:
            self.core.metrics.drop("malformed")
            return
        targets = self.core.route(s, channel_no, frame, time.time())
        if targets is not None:
            self._fan_out(channel_no, frame, targets[0], targets[1])

    # -- udp -----------------------------------------------------------------------------------

    def on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        routed = self.core.udp_datagram(data, addr, time.time())
        if routed is None:
            return
        frame, udp, ws = routed
        channel_no = int.from_bytes(data[2 + p.TOKEN_LEN : 6 + p.TOKEN_LEN], "big")
        self._fan_out(channel_no, frame, udp, ws)

    def _fan_out(
        self, channel_no: int, frame: bytes, udp: list[tuple[str, int]], ws: list[int]
    ) -> None:
        if udp and self._udp and self._udp.transport:
            out = p.udp_media_down(channel_no, frame)
            sendto = self._udp.transport.sendto
            for addr in udp:
                sendto(out, addr)
        if ws:
            # One unmasked binary WebSocket frame (RFC 6455 §5.2), built once and written to
            # every listener's transport: no task and no copy per listener. aiohttp writes its
            # own frames synchronously too, so frames never interleave. Compression is off
            # on these connections, so the frame is valid for all of them.
            payload = p.ws_media(p.WS_MEDIA_DOWN, channel_no, frame)
            n = len(payload)
            head = bytes((0x82, n)) if n < 126 else bytes((0x82, 126)) + n.to_bytes(2, "big")
            data = head + payload
            for sid in ws:
                transport = self._transports.get(sid)
                if transport is None or transport.is_closing():
                    continue
                if transport.get_write_buffer_size() > WS_BACKLOG:
                    self.core.metrics.drop("ws-backlog")  # a stalled listener loses voice
                    continue
                transport.write(data)

    # -- http ----------------------------------------------------------------------------------

    async def _metrics(self, request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        depth = await loop.run_in_executor(self._store_thread, self.core.store.depth)
        return web.Response(text=self.core.metrics_text(depth), content_type="text/plain")

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "channels": len(self.core.channels)})

    # -- timers --------------------------------------------------------------------------------

    async def _tick(self) -> None:
        last_expire = 0.0
        while True:
            await asyncio.sleep(0.05)
            now = time.time()
            try:
                await self.apply(self.core.handle_timer(now))
                if now - last_expire > 60:
                    last_expire = now
                    await self._run_job(
                        Job(functools.partial(self.core.store.expire, now), lambda _n: Outcome())
                    )
            except Exception:
                log.exception("event=timer-failed")
