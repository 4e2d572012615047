"""The asyncio plumbing under :class:`~bridge.endpoint.endpoint.Endpoint`: it moves what the
sans-IO :class:`~bridge.endpoint.core.EndpointCore` produces to where it goes, and nothing else.

- Inputs: the :class:`~bridge.endpoint.link.RelayLink` calls :meth:`CoreDriver.on_welcome`,
  :meth:`~CoreDriver.on_text` and :meth:`~CoreDriver.on_media` (it is the link's handler); each
  feeds the core with ``now = time.time()``.
- After every input or API call, :meth:`CoreDriver._pump` drains the core: events onto the
  :attr:`events` queue, answers to the futures of pending calls, media frames to the link,
  commit verifications to a worker thread (the result goes back through ``job_done``), and one
  event-loop timer re-armed at :meth:`EndpointCore.get_timer`.
- Control messages leave through :meth:`CoreDriver._flush`, one sender at a time, in the order
  the core produced them; reading never waits for sending.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from bridge.endpoint import events as ev
from bridge.endpoint.core import EndpointCore
from bridge.endpoint.link import RelayLink
from bridge.endpoint.output import Answer, VerifyJob
from bridge.errors import RelayError
from crypto.errors import Refusal, VerificationError

log = logging.getLogger("crossband.endpoint")


class CoreDriver:
    def __init__(self, core: EndpointCore, link: RelayLink) -> None:
        self.core = core
        self.link = link
        self.events: asyncio.Queue[ev.Event] = asyncio.Queue(maxsize=10_000)
        self._waiters: dict[tuple[Any, ...], asyncio.Future[Any]] = {}
        self._epochs: dict[str, list[tuple[int, asyncio.Future[None]]]] = {}
        self._floor_answers: dict[str, asyncio.Queue[str]] = {}
        self._send_lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._pump()

    async def _start_driving(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.link.start()
        self._pump()

    async def _stop_driving(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.link.stop()
        self._loop = None

    def emit(self, event: ev.Event) -> None:
        try:
            self.events.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("event=events-overflow dropped=%s", type(event).__name__)

    # -- the link's callbacks ------------------------------------------------------------------

    async def on_welcome(self, welcome: dict[str, Any]) -> None:
        self.core.receive_welcome(welcome, time.time())
        self._pump()
        await self._flush(quiet=True)

    async def on_text(self, data: str) -> None:
        self.core.receive_control(data, time.time())
        self._pump()  # replies (acks) go out from a sender task: reading never waits on sending

    def on_media(self, channel_no: int, frame: bytes) -> None:
        self.core.receive_media(channel_no, frame, time.time())
        self._pump()

    # -- driving the core ----------------------------------------------------------------------

    def _pump(self) -> None:
        """Move everything the core produced to where it goes (controls: see _flush)."""
        for event in self.core.events_received():
            self.emit(event)
        for answer in self.core.answers():
            self._answer(answer)
        for no, frame in self.core.media_to_send():
            self.link.send_media(no, frame)
        if self._loop is None:
            return
        for job in self.core.jobs():
            self._spawn(self._run_job(job))
        if self.core.take_reconnect_request():
            self._spawn(self.link.drop())
        if self.core.has_data_to_send() and not self._send_lock.locked():
            self._spawn(self._flush(quiet=True))
        self._arm_timer()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_job(self, job: VerifyJob) -> None:
        """A commit verification off the loop (hundreds of credentials: ~100 ms), so voice
        playout does not stall; the core installs the result on the loop."""
        try:
            result = await asyncio.to_thread(job.run)
        except Exception:  # a bug below us must not wedge the delivery queue
            log.exception("event=commit-verification-failed")
            result = VerificationError(Refusal.MALFORMED, "commit could not be checked")
        self.core.job_done(job, result, time.time())
        self._pump()
        await self._flush(quiet=True)

    async def _flush(self, *, quiet: bool = False) -> None:
        """Send the core's control messages in order; raise RelayError if offline (unless
        ``quiet``: what matters is resent by the core after the next welcome)."""
        failed: RelayError | None = None
        async with self._send_lock:
            while (control := self.core.next_control()) is not None:
                try:
                    await self.link.send(control)
                except RelayError as exc:
                    failed = exc
        if failed is not None and not quiet:
            raise failed

    def _arm_timer(self) -> None:
        at = self.core.get_timer()
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = None, at
        if at is not None and self._loop is not None:
            self._timer = self._loop.call_later(max(0.0, at - time.time()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self.core.handle_timer(time.time())
        self._pump()

    def _answer(self, a: Answer) -> None:
        key = a.key
        if key[0] == "epoch":
            waiting = self._epochs.get(key[1], [])
            for epoch, reached in [w for w in waiting if w[0] <= a.value]:
                waiting.remove((epoch, reached))
                if not reached.done():
                    reached.set_result(None)
            return
        if key[0] == "floor":
            answers = self._floor_answers.get(key[1])
            if answers is not None:
                answers.put_nowait(a.value)
            return
        if key[0] == "commit" and key[2] is None:
            keys = [k for k in self._waiters if k[:2] == key[:2]]
        else:
            keys = [key]
        for k in keys:
            fut = self._waiters.pop(k, None)
            if fut is not None and not fut.done():
                if a.error is not None:
                    fut.set_exception(a.error)
                else:
                    fut.set_result(a.value)

    async def _request(self, key: tuple[Any, ...], timeout: float, *, quiet: bool = False) -> Any:
        """Register for the answer ``key`` (before sending), send, and wait for it."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters[key] = fut
        try:
            self._pump()
            await self._flush(quiet=quiet)
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._waiters.pop(key, None)

    async def _send(self, control: str) -> None:
        self.core.send_raw(control)
        await self._flush()
