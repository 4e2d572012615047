"""The console's web side (aiohttp): login, the main page, its files, and the WebSocket ``/ws``.

- Nothing but ``/login`` is served without a session: any other GET is sent to ``/login``, any
  other request refused with 401.
- Login: a scrypt check (:mod:`bridge.console.auth`, on a worker thread: the event loop keeps
  carrying voice) of a local user's password; the login form carries a token matching a
  short-lived cookie (login CSRF); failures are throttled. The session cookie is ``HttpOnly``,
  ``SameSite=Strict``, ``Path=/`` (and ``Secure`` when the request came over TLS).
- Every state-changing request carries its session's CSRF token: the logout form as a field,
  the WebSocket handshake as ``?csrf=`` (and its ``Origin`` must be this host). Commands over
  the WebSocket are then tied to the session, which is checked again on every command.
- ``/ws`` pushes ``{"t": "state", ...}`` (:meth:`ConsoleState.snapshot`) after every change and
  takes commands ``{"t": "send"|"emergency"|"ptt", "channel", ..., "ref"}``, answered
  ``{"t": "ok"|"error", "ref"}``, and, while its push-to-talk is held, binary messages of
  microphone PCM (:mod:`bridge.console.audio`); a socket that closes lets go of the floor.
  When the session ends the socket is closed (code 4401).
- Every response has a strict Content-Security-Policy (no inline script) and ``no-store``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable

from aiohttp import WSMsgType, web

from bridge.console.auth import Session, Sessions, csrf_ok, verify_password
from bridge.console.commands import run_command
from bridge.console.conn import Connection
from bridge.console.i18n import STATIC, pick_language
from bridge.console.pages import login_page, main_page
from bridge.console.service import CommandError, ConsoleService

__all__ = ["COOKIE", "ConsoleWeb"]

log = logging.getLogger("crossband.console")
COOKIE = "cb_session"
LOGIN_COOKIE = "cb_login"
STATIC_FILES = {"console.js": "text/javascript", "console.css": "text/css"}
STATIC_FILES["i18n.json"] = "application/json"
STATIC_FILES["mic-worklet.js"] = "text/javascript"
FAILURES_PER_MINUTE = 10
WS_MAX_MESSAGE = 64 * 1024
SESSION_ENDED = 4401
NONCE = web.RequestKey("nonce", str)
SESSION = web.RequestKey("session", Session)
LANG = web.RequestKey("lang", str)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ConsoleWeb:
    def __init__(
        self,
        service: ConsoleService,
        users: dict[str, str],
        sessions: Sessions | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``users``: name -> scrypt password hash."""
        self.service = service
        self.users = dict(users)
        self.sessions = sessions if sessions is not None else Sessions()
        self.clock = clock
        self._failures: deque[float] = deque()
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self.app = web.Application(middlewares=[self._headers, self._guard])
        self.app.add_routes(
            [
                web.get("/login", self.get_login),
                web.post("/login", self.post_login),
                web.post("/logout", self.post_logout),
                web.get("/", self.get_main),
                web.get("/static/{name}", self.get_static),
                web.get("/ws", self.get_ws),
            ]
        )

    # -- serving -------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0]
        return str(bound[0]), int(bound[1])

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- middlewares ---------------------------------------------------------------------------

    @web.middleware
    async def _headers(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        nonce = secrets.token_urlsafe(16)
        request[NONCE] = nonce
        try:
            resp = await handler(request)
        except web.HTTPException as exc:
            resp = exc
        if not resp.prepared:
            resp.headers["Content-Security-Policy"] = (
                f"default-src 'none'; script-src 'self'; style-src 'self' 'nonce-{nonce}'; "
                "connect-src 'self'; img-src 'self' data:; form-action 'self'; "
                "frame-ancestors 'none'; base-uri 'none'"
            )
            resp.headers["X-Content-Type-Options"] = "nosniff"
            resp.headers["Referrer-Policy"] = "no-referrer"
            resp.headers["Cache-Control"] = "no-store"
        if isinstance(resp, web.HTTPException):
            raise resp
        return resp

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/login":
            return await handler(request)
        if request.path == "/favicon.ico":  # browsers ask; nothing to show
            raise web.HTTPNoContent()
        session = self.sessions.get(request.cookies.get(COOKIE), self.clock())
        if session is None:
            if request.method == "GET" and request.path != "/ws":
                raise web.HTTPSeeOther("/login")
            raise web.HTTPUnauthorized(text="sign in first")
        request[SESSION] = session
        return await handler(request)

    # -- login and logout ----------------------------------------------------------------------

    def _lang(self, request: web.Request, asked: str | None = None) -> str:
        return pick_language(
            asked or request.query.get("lang"), request.headers.get("Accept-Language")
        )

    def _login_form(self, request: web.Request, message: str | None, status: int) -> web.Response:
        # Kept while it lives: a second GET /login (a favicon sent there) must not change it.
        token = request.cookies.get(LOGIN_COOKIE, "")
        if not re.fullmatch(r"[A-Za-z0-9_-]{32}", token):
            token = secrets.token_urlsafe(24)
        lang = self._lang(request, request.get(LANG) or None)
        html = login_page(lang, token, request[NONCE], message)
        resp = web.Response(text=html, content_type="text/html", status=status)
        resp.set_cookie(
            LOGIN_COOKIE, token, max_age=600, httponly=True, samesite="Strict", path="/login"
        )
        return resp

    async def get_login(self, request: web.Request) -> web.Response:
        message = "login.expired" if request.query.get("expired") else None
        return self._login_form(request, message, 200)

    async def post_login(self, request: web.Request) -> web.Response:
        form = await request.post()
        request[LANG] = str(form.get("lang", ""))
        expected = request.cookies.get(LOGIN_COOKIE, "")
        given = str(form.get("login_token", ""))
        if not expected or not hmac.compare_digest(expected.encode(), given.encode()):
            return self._login_form(request, "login.failed", 403)
        now = self.clock()
        while self._failures and self._failures[0] < now - 60:
            self._failures.popleft()
        if len(self._failures) >= FAILURES_PER_MINUTE:
            return self._login_form(request, "login.busy", 429)
        user, password = str(form.get("user", "")), str(form.get("password", ""))
        stored = self.users.get(user)
        loop = asyncio.get_running_loop()
        ok = await loop.run_in_executor(None, verify_password, password, stored)
        if not ok:
            self._failures.append(now)
            log.warning("event=console-login-refused")
            return self._login_form(request, "login.failed", 401)
        token, _ = self.sessions.open(user, self.clock())
        log.info("event=console-login user=%s", user)
        resp = web.HTTPSeeOther("/")
        resp.set_cookie(
            COOKIE,
            token,
            max_age=int(self.sessions.ttl),
            httponly=True,
            samesite="Strict",
            path="/",
            secure=request.secure,
        )
        resp.del_cookie(LOGIN_COOKIE, path="/login")
        raise resp

    async def post_logout(self, request: web.Request) -> web.Response:
        session = request[SESSION]
        form = await request.post()
        if not csrf_ok(session, str(form.get("csrf", "")) or request.headers.get("X-CSRF-Token")):
            raise web.HTTPForbidden(text="missing or wrong CSRF token")
        self.sessions.close(request.cookies.get(COOKIE))
        resp = web.HTTPSeeOther("/login")
        resp.del_cookie(COOKIE, path="/")
        raise resp

    # -- the page and its files ----------------------------------------------------------------

    async def get_main(self, request: web.Request) -> web.Response:
        session = request[SESSION]
        html = main_page(session.csrf, session.user, self._lang(request))
        return web.Response(text=html, content_type="text/html")

    async def get_static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        kind = STATIC_FILES.get(name)
        if kind is None:
            raise web.HTTPNotFound()
        return web.Response(body=(STATIC / name).read_bytes(), content_type=kind)

    # -- the WebSocket -------------------------------------------------------------------------

    async def get_ws(self, request: web.Request) -> web.WebSocketResponse:
        session = request[SESSION]
        if not csrf_ok(session, request.query.get("csrf")):
            raise web.HTTPForbidden(text="missing or wrong CSRF token")
        origin = request.headers.get("Origin")
        if origin not in (f"http://{request.host}", f"https://{request.host}"):
            raise web.HTTPForbidden(text="cross-origin WebSocket refused")
        token = request.cookies.get(COOKIE)
        ws = web.WebSocketResponse(max_msg_size=WS_MAX_MESSAGE, heartbeat=20)
        await ws.prepare(request)
        self._sockets.add(ws)
        loop = asyncio.get_running_loop()
        pusher = loop.create_task(self._push(ws, token))
        conn = Connection()
        audio = self.service.audio
        player = loop.create_task(conn.send_audio(ws))
        if audio is not None:
            audio.listeners.add(conn.listener)
        try:
            await ws.send_json({"t": "hello", "user": session.user})
            async for msg in ws:
                if self.sessions.get(token, self.clock()) is None:
                    await ws.close(code=SESSION_ENDED, message=b"session ended")
                    break
                if msg.type == WSMsgType.TEXT:
                    await ws.send_json(run_command(self.service, msg.data, conn))
                elif msg.type == WSMsgType.BINARY:  # microphone frames while PTT is held
                    self.service.audio_frame(conn.held, msg.data)
        finally:
            if audio is not None:
                audio.listeners.discard(conn.listener)
            if conn.held is not None:  # a browser that goes away lets go of the floor
                with contextlib.suppress(CommandError):
                    self.service.ptt(conn.held, False)
            for task in (pusher, player):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._sockets.discard(ws)
        return ws

    async def _push(self, ws: web.WebSocketResponse, token: str | None) -> None:
        """The state after every change (at most every 50 ms); closes when the session ends."""
        changed = self.service.watch()
        sent = -1
        try:
            while not ws.closed:
                if self.sessions.get(token, self.clock(), touch=False) is None:
                    await ws.close(code=SESSION_ENDED, message=b"session ended")
                    return
                changed.clear()
                state = self.service.state
                if state.version != sent:
                    sent = state.version
                    await ws.send_json({"t": "state", **self.service.snapshot()})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), 1.0)
                await asyncio.sleep(0.05)
        except ConnectionError:
            return
        finally:
            self.service.unwatch(changed)
