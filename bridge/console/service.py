"""The console's asyncio driver: endpoint events into :class:`ConsoleState`, commands out.

:class:`ConsoleService` reads ``endpoint.events`` (the only reader: an application that also
runs a gateway on the same endpoint passes ``forward`` to get every event after the console has
seen it), feeds :class:`~bridge.console.state.ConsoleState` with ``now`` from its clock, and
wakes the watchers (the web sockets) after each change. Commands are one endpoint call each:

- :meth:`send_text`: a signed text message, shown at once as ``sending``, then ``delivered``
  once the relay has durably accepted it (or ``failed``);
- :meth:`emergency`: the signed declare (the endpoint's signed-emergency message, as a gateway
  sends it for a radio's alert) or the signed clear plus the relay's floor clear;
- :meth:`ptt` and :meth:`audio_frame`: push-to-talk and the microphone, through the channel's
  :class:`~bridge.console.audio.BrowserAdapter` and its gateway (which also plays the channel
  to the browsers); :meth:`incident`: channels opened, changed, ended
  (:mod:`bridge.console.incident`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any, Protocol

from bridge.console.audio import ConsoleAudio
from bridge.console.incident import IncidentDesk, IncidentError
from bridge.console.state import ConsoleState, Person
from bridge.endpoint import events as ev
from bridge.endpoint.emergency import KIND as EMERGENCY_KIND
from bridge.endpoint.emergency import body as emergency_body
from bridge.gateway import GatewayEndpoint
from crypto.errors import CrossbandError
from crypto.group import ChannelMember

__all__ = ["MAX_TEXT", "CommandError", "ConsoleEndpoint", "ConsoleService"]

log = logging.getLogger("crossband.console")
MAX_TEXT = 4000  # characters in one message typed at the console


class CommandError(Exception):
    """A console command that cannot be carried out (the message is safe to show)."""


class ConsoleEndpoint(GatewayEndpoint, Protocol):
    """What the console needs of :class:`bridge.endpoint.endpoint.Endpoint`."""

    connected: asyncio.Event

    @property
    def channels(self) -> dict[str, ChannelMember]: ...

    async def clear_emergency(self, ch: str) -> None: ...


class ConsoleService:
    def __init__(
        self,
        endpoint: ConsoleEndpoint,
        *,
        clock: Callable[[], float] = time.time,
        forward: Callable[[ev.Event], None] | None = None,
        desk: IncidentDesk | None = None,
    ) -> None:
        """``desk``: incident channels opened, changed and ended from the console."""
        self.endpoint = endpoint
        self.state = ConsoleState(endpoint.device)
        self._clock = clock
        self._forward = forward
        self.audio = ConsoleAudio(endpoint)  # push-to-talk and listening, per channel
        self.desk = desk
        self._watchers: set[asyncio.Event] = set()
        self._pump: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._talking: set[str] = set()  # channels push-to-talk is held on

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self.state.connected = self.endpoint.connected.is_set()
        for ch, member in self.endpoint.channels.items():  # channels joined before we started
            c = member.commit
            if c is not None:
                roster = {e.device: e.role for e in c.roster}
                self.handle(ev.ChannelUpdated(ch, c.name, c.epoch, roster, member.removed))
        self._pump = asyncio.get_running_loop().create_task(self._read_events())
        for ch, view in self.state.channels.items():
            if not view.removed:
                self._spawn(self.audio.ensure(ch))

    async def stop(self) -> None:
        tasks = [t for t in (self._pump, *self._tasks) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._pump = None
        await self.audio.stop()  # releases and seals a burst in progress
        self._talking.clear()

    def watch(self) -> asyncio.Event:
        """An event set after every change of the state (the caller clears it)."""
        e = asyncio.Event()
        self._watchers.add(e)
        return e

    def unwatch(self, e: asyncio.Event) -> None:
        self._watchers.discard(e)

    def _notify(self) -> None:
        for e in self._watchers:
            e.set()

    async def _read_events(self) -> None:
        while True:
            event = await self.endpoint.events.get()
            try:
                self.handle(event)
            except Exception as exc:  # one bad event must not stop the console
                log.error("event=console-event-failed error=%s", type(exc).__name__)
            self.audio.handle_event(event)
            if self._forward is not None:
                self._forward(event)

    def handle(self, event: ev.Event) -> None:
        before = self.state.version
        self.state.handle_event(event, self._clock())
        if isinstance(event, ev.ChannelUpdated):
            self._channel_info(event.channel)
            if self.desk is not None:
                self.desk.learn_channel(event.channel)
            if not event.removed and self._pump is not None:
                self._spawn(self.audio.ensure(event.channel))  # its audio, to listen to
        if self.state.version != before:
            self._notify()

    def _channel_info(self, ch: str) -> None:
        member = self.endpoint.channels.get(ch)
        commit = member.commit if member is not None else None
        if member is None or commit is None:
            return
        people = {}
        for entry in commit.roster:
            cred = member.credential(entry.device)
            if cred is not None:
                people[entry.device] = Person(cred.alias, cred.kind)
        self.state.set_channel_info(ch, commit.expires, people)

    # -- commands ------------------------------------------------------------------------------

    def _check_channel(self, ch: Any) -> str:
        if not isinstance(ch, str) or ch not in self.endpoint.channels:
            raise CommandError("not a channel of this console")
        view = self.state.channels.get(ch)
        if view is None or view.removed:
            raise CommandError("this console is not a member of the channel")
        return ch

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def send_text(self, ch: Any, text: Any) -> str:
        """Start sending ``text``; returns the local id it is shown under until delivered."""
        ch = self._check_channel(ch)
        if not isinstance(text, str) or not text.strip():
            raise CommandError("an empty message")
        if len(text) > MAX_TEXT:
            raise CommandError(f"a message is at most {MAX_TEXT} characters")
        local = "local-" + secrets.token_hex(8)
        self.state.message_sending(ch, local, text, self._clock())
        self._notify()
        self._spawn(self._deliver(ch, local, text))
        return local

    async def _deliver(self, ch: str, local: str, text: str) -> None:
        msg_id: str | None = None
        try:
            msg_id = await self.endpoint.send_text(ch, text)
        except (CrossbandError, TimeoutError) as exc:
            log.warning("event=console-send-failed channel=%s error=%s", ch, type(exc).__name__)
        self.state.message_result(local, msg_id)
        self._notify()

    def emergency(self, ch: Any, active: Any) -> None:
        ch = self._check_channel(ch)
        if not isinstance(active, bool):
            raise CommandError("active must be true or false")
        self._spawn(self._emergency(ch, active))

    async def _emergency(self, ch: str, active: bool) -> None:
        try:
            if active:
                await self.endpoint.send_text(ch, emergency_body(True), EMERGENCY_KIND)
            else:
                await self.endpoint.clear_emergency(ch)
        except (CrossbandError, TimeoutError) as exc:
            log.warning("event=console-emergency-failed channel=%s error=%s", ch, type(exc))
            return
        self.state.emergency_signed(ch, active, self.endpoint.device)
        self._notify()

    def ptt(self, ch: Any, down: Any) -> None:
        """Press (``down``) or release push-to-talk, through the channel's browser adapter:
        its gateway asks for the floor, sends the microphone's frames, then releases the floor
        and sends the signed burst seal; the floor's answers arrive as floor events."""
        ch = self._check_channel(ch)
        if not isinstance(down, bool):
            raise CommandError("down must be true or false")
        held = ch in self._talking
        if down and not held:
            self._talking.add(ch)
            self.state.floor_answer(ch, "requesting")
            self._notify()
            self._spawn(self._press(ch))
        elif not down and held:
            self._talking.discard(ch)
            adapter = self.audio.adapters.get(ch)
            if adapter is not None:
                adapter.release()
            view = self.state.channels.get(ch)
            if view is not None and view.my_floor in ("requesting", "granted", "queued"):
                self.state.floor_answer(ch, "idle")
                self._notify()

    async def _press(self, ch: str) -> None:
        adapter = await self.audio.ensure(ch)
        if ch in self._talking:  # not released while the gateway started
            adapter.press()

    def audio_frame(self, ch: str | None, pcm: bytes) -> None:
        """One 20 ms microphone frame for the channel this browser holds push-to-talk on."""
        self.audio.frame(ch, pcm)

    # -- incident channels ---------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        snap = self.state.snapshot()
        snap["incident"] = self.desk.as_json() if self.desk is not None else None
        return snap

    def incident(self, cmd: dict[str, Any]) -> None:
        """Open, add to, remove from or end a channel (``cmd["t"]``); the commit runs in the
        background, its outcome shown in the snapshot's ``incident.last``."""
        if self.desk is None:
            raise CommandError("this console does not open channels")
        try:
            op, ch, commit = self.desk.plan(cmd)
        except IncidentError as exc:
            raise CommandError(str(exc)) from None
        self._spawn(self._incident(op, ch, commit))

    async def _incident(self, op: str, ch: str, commit: Callable[[], Any]) -> None:
        assert self.desk is not None
        task = asyncio.get_running_loop().create_task(self.desk.run(op, ch, commit))
        await asyncio.sleep(0)  # shown as pending while the commit travels
        self.state.touch()
        self._notify()
        await task
        self.state.touch()
        self._notify()
