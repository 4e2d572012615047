"""The relay's I/O driver: aiohttp WebSocket + /metrics + /healthz, a UDP socket, the store thread.

Everything that decides anything lives in :mod:`bridge.relay.core`; this module moves bytes.
Each WebSocket connection is read by one task, so its control messages are handled in order,
and written by one task through a bounded queue (:mod:`bridge.relay.connection`), so nobody
waits for another member's socket. Store jobs run on one dedicated thread, in submission
order; their results go back to the core on the event loop. One timer, armed at the core's
:meth:`~bridge.relay.core.RelayCore.next_timer`, drives floor limits, channel expiry, the
authentication deadline and store expiry. Timers and rate limits see ``loop.time()``
(monotonic); validity checks see ``time.time()``.

Any exception while handling one message is answered with a coded error (``malformed`` if it
came from parsing, else ``internal``, logged without content) and never ends the connection;
before authentication a coded error is followed by a hang-up, as a refused login is.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import WSMsgType, web
from prometheus_client import Counter

from bridge.errors import ProtocolError
from bridge.relay.base import safe_rid
from bridge.relay.collector import Collector
from bridge.relay.connection import Connection, hang_up
from bridge.relay.core import RelayCore
from bridge.relay.jobs import Depth, Job, StoreFailure, execute
from bridge.relay.metrics import new_registry, render_metrics
from bridge.relay.state import Outcome
from bridge.relay.udp import UdpPort, UdpTarget
from bridge.relay.wsvoice import WsVoice
from bridge.wire import control as p

log = logging.getLogger("crossband.relay")
TIMER_RETRY = 1.0  # seconds before the timer runs again after handle_timer raised
HEALTH_PROBE_TIMEOUT = 1.0  # seconds /healthz waits for the store probe before saying failing


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
        # Commit verification: CPU-bound, off the loop (see bridge.relay.jobs.VerifyCommit).
        self._cpu_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify")
        self._conns: dict[int, Connection] = {}
        self._udp: UdpPort | None = None
        self._runner: web.AppRunner | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ws_out: WsVoice | None = None  # set by start()
        self._depth = 0
        self._collector: Collector | None = None  # set by start()
        self._loop: asyncio.AbstractEventLoop  # set by start()
        self.registry = new_registry(core.metrics, lambda: core.gauges(self._depth))
        self._udp_dropped = Counter(
            "crossband_udp_send_dropped",
            "UDP voice copies the kernel refused (send buffer full or error), dropped",
            registry=self.registry,
        )

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
        loop = self._loop = asyncio.get_running_loop()
        if self.udp_port is not None:
            self._udp = UdpPort.open(
                self.host, self.udp_port, loop, self.on_datagram, self._udp_send_dropped
            )
            self.udp_port = self._udp.port
            self.core.config.udp_port = self.udp_port
        await self.apply(self.core.handle_timer(*self._clock()))  # first sweep, old channels
        self._ws_out = WsVoice(loop, self.core.metrics)
        self._collector = Collector(loop, self.core.metrics)
        self._collector.start()  # what exists now lives as long as the relay
        log.info("event=relay-started host=%s port=%s udp=%s", self.host, self.port, self.udp_port)

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._ws_out is not None:
            self._ws_out.stop()
        if self._collector is not None:
            self._collector.stop()
        await asyncio.gather(*(conn.shutdown() for conn in list(self._conns.values())))
        if self._udp is not None:
            self._udp.close()
        if self._runner:
            await self._runner.cleanup()
        for task in list(self._tasks):
            task.cancel()
        self._store_thread.shutdown(wait=True)
        self._cpu_thread.shutdown(wait=True)

    @property
    def url(self) -> str:
        scheme = "wss" if self.ssl_context else "ws"
        return f"{scheme}://{self.host}:{self.port}/ws"

    @property
    def timer_deadline(self) -> float | None:
        """When the armed timer fires (``loop.time()``), or None: the core's next timer."""
        return self._timer_at

    def _clock(self) -> tuple[float, float]:
        return self._loop.time(), time.time()

    # -- outcomes ------------------------------------------------------------------------------

    async def apply(self, outcome: Outcome) -> None:
        """Send and close now (never waiting on a peer), then run the jobs in order."""
        for sid, message in outcome.sends:
            conn = self._conns.get(sid)
            if conn is not None:
                conn.send(message)
        for sid, code in outcome.close:
            conn = self._conns.get(sid)
            if conn is not None:
                conn.close(code)
        for job in outcome.jobs:
            await self.apply(await self._run_job(job))
        self._arm()

    async def _run_job(self, job: Job) -> Outcome:
        loop = asyncio.get_running_loop()
        try:
            pool = self._cpu_thread if getattr(job.op, "cpu", False) else self._store_thread
            result = await loop.run_in_executor(pool, execute, job.op, self.core.store)
        except RuntimeError:  # the store thread is shut down: the relay is stopping
            result = StoreFailure("RuntimeError")
        try:
            return self.core.complete(job, result, loop.time())
        except Exception as exc:  # a bug in a continuation: contain it to this job
            self.core.metrics.c["internal_errors"] += 1
            log.error("event=job-failed op=%s error=%s", type(job.op).__name__, type(exc).__name__)
            return Outcome()

    def _spawn(self, outcome: Outcome) -> None:
        if not (outcome.sends or outcome.close or outcome.jobs):
            self._arm()
            return
        task = asyncio.get_running_loop().create_task(self._apply_logged(outcome))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _apply_logged(self, outcome: Outcome) -> None:
        try:
            await self.apply(outcome)
        except Exception as exc:
            log.error("event=apply-failed error=%s", type(exc).__name__)

    # -- timer ---------------------------------------------------------------------------------

    def _arm(self) -> None:
        at = self.core.next_timer()
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = None if at is None else self._loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        now, wall = self._clock()
        try:
            outcome = self.core.handle_timer(now, wall)
        except Exception as exc:  # a bug: try again in a second rather than spin
            self.core.metrics.c["internal_errors"] += 1
            log.error("event=timer-failed error=%s", type(exc).__name__)
            self._timer_at = now + TIMER_RETRY
            self._timer = self._loop.call_at(self._timer_at, self._on_timer)
            return
        self._spawn(outcome)

    # -- websocket -----------------------------------------------------------------------------

    async def _ws_handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=p.MAX_CONTROL, compress=False)
        await ws.prepare(request)
        now, _ = self._clock()
        try:
            sid, challenge = self.core.connect(now)
        except ProtocolError as exc:  # over a connection cap
            await ws.send_str(p.error(exc.code, exc.detail))
            await hang_up(ws, request.transport, exc.code)
            return ws
        conn = Connection(
            sid, ws, request.transport, self.core.config.send_queue_limit, self._slow_reader
        )
        self._conns[sid] = conn
        if request.transport is not None:
            self._ws_transport(sid, request.transport)
        conn.send(challenge)
        self._arm()  # the authentication deadline
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    pause = await self._on_text(sid, conn, msg.data)
                    if pause:  # over its budget: not read (aiohttp stops the socket) for a while
                        await asyncio.sleep(pause)
                elif msg.type == WSMsgType.BINARY:
                    self._on_binary(sid, msg.data)
                else:
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._conns.pop(sid, None)
            self._ws_transport(sid, None)
            conn.stop()
            if self._collector is not None:
                self._collector.disconnected()
            try:
                await self.apply(self.core.disconnect(sid, *self._clock()))
            except Exception as exc:
                log.error("event=disconnect-failed session=%s error=%s", sid, type(exc).__name__)
        return ws

    def _slow_reader(self, sid: int) -> None:
        self.core.metrics.c["slow_readers"] += 1
        log.warning("event=slow-reader session=%s", sid)

    async def _on_text(self, sid: int, conn: Connection, data: str) -> float:
        """Handle one control message; returns how long not to read this session (seconds)."""
        now, wall = self._clock()
        msg: dict[str, Any] | None = None
        try:
            self.core.admit(sid, len(data), now)
            msg = p.parse_control(data)
            outcome = self.core.handle(sid, msg, now, wall)
        except ProtocolError as exc:
            unparsed = msg is None and exc.code in (p.Codes.RATE_LIMITED, p.Codes.TOO_LARGE)
            if unparsed and len(data) <= p.MAX_SMALL_CONTROL:
                msg = self._parse_for_rid(data)  # cheap at this size: the refusal names it
            self._refuse(sid, conn, exc.code, exc.detail, msg)
            if unparsed and self.core.banned(sid, now):
                conn.close(exc.code, notify=False)  # flooding: out, and not back for a while
            return self.core.read_pause(sid, len(data), now) if unparsed else 0.0
        except Exception as exc:  # a bug, or a parser that raised what it should not
            code = p.Codes.MALFORMED if msg is None else p.Codes.INTERNAL
            self.core.metrics.c["internal_errors"] += 1
            log.error("event=control-failed session=%s error=%s", sid, type(exc).__name__)
            log.debug("event=control-failed session=%s", sid, exc_info=True)
            self._refuse(sid, conn, code, "", msg)
            return 0.0
        await self.apply(outcome)
        if msg["t"] == "auth" and self._collector is not None:
            self._collector.authenticated()  # frozen with its batch, out of full collections
        return 0.0

    @staticmethod
    def _parse_for_rid(data: str) -> dict[str, Any] | None:
        try:
            return p.parse_control(data)
        except ProtocolError:
            return None

    def _refuse(
        self, sid: int, conn: Connection, code: str, detail: str, msg: dict[str, Any] | None
    ) -> None:
        self.core.metrics.c["protocol_errors"] += 1
        rid = safe_rid(msg) if isinstance(msg, dict) else None
        conn.send(p.error(code, detail, rid=rid))
        session = self.core.sessions.get(sid)
        if session is not None and session.device is None and code != p.Codes.RATE_LIMITED:
            conn.close(code, notify=False)  # before authentication a refusal ends it

    def _on_binary(self, sid: int, data: bytes) -> None:
        try:
            self._media(sid, data)
        except Exception as exc:  # never lets one frame end the connection
            self.core.metrics.drop("malformed")
            log.error("event=media-failed session=%s error=%s", sid, type(exc).__name__)

    def _media(self, sid: int, data: bytes) -> None:
        try:
            kind, channel_no, frame = p.parse_ws_media(data)
        except ProtocolError:
            self.core.metrics.drop("malformed")
            return
        s = self.core.sessions.get(sid)
        if s is None or kind != p.WS_MEDIA_UP:
            self.core.metrics.drop("malformed")
            return
        targets = self.core.route(s, channel_no, frame, self._loop.time())
        if targets is not None:
            self._fan_out(channel_no, frame, targets[0], targets[1])

    # -- udp -----------------------------------------------------------------------------------

    def on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        routed = self.core.udp_datagram(data, addr, self._loop.time())
        if routed is None:
            return
        frame, udp, ws = routed
        channel_no = int.from_bytes(data[2 + p.TOKEN_LEN : 6 + p.TOKEN_LEN], "big")
        self._fan_out(channel_no, frame, udp, ws)

    def _fan_out(self, channel_no: int, frame: bytes, udp: list[UdpTarget], ws: list[int]) -> None:
        if udp and self._udp is not None:
            self._udp.send(p.udp_media_down(channel_no, frame), udp)
        if ws:
            # One unmasked binary WebSocket frame (RFC 6455 §5.2), built once for every
            # listener: compression is off on these connections, so it is valid for all.
            payload = p.ws_media(p.WS_MEDIA_DOWN, channel_no, frame)
            n = len(payload)
            head = bytes((0x82, n)) if n < 126 else bytes((0x82, 126)) + n.to_bytes(2, "big")
            if self._ws_out is not None:
                self._ws_out.queue(head + payload, ws)

    def _ws_transport(self, sid: int, transport: asyncio.Transport | None) -> None:
        if self._ws_out is not None:
            self._ws_out.transport(sid, transport)

    def _udp_send_dropped(self) -> None:
        self._udp_dropped.inc()
        self.core.metrics.drop("udp-send")

    # -- http ----------------------------------------------------------------------------------

    async def _metrics(self, request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        depth = await loop.run_in_executor(self._store_thread, execute, Depth(), self.core.store)
        if not isinstance(depth, StoreFailure):
            self._depth = depth
        return web.Response(body=render_metrics(self.registry), content_type="text/plain")

    async def _health(self, request: web.Request) -> web.Response:
        if self.core.store_failing:  # has the store come back? one small write tells
            try:  # a store that hangs (busy, slow disk) is still failing: answer in time
                await asyncio.wait_for(
                    self.apply(Outcome(jobs=[self.core.probe_job()])), HEALTH_PROBE_TIMEOUT
                )
            except TimeoutError:
                pass
        health = self.core.health()
        return web.json_response(health, status=200 if health["ok"] else 503)
