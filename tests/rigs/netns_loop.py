"""An asyncio event loop on a thread that lives in a test's network namespace.

A socket belongs to the network namespace of the thread that created it. Code that makes its
own sockets (aiohttp's WebSocket client, ``loop.create_datagram_endpoint``: an endpoint and
its RTP adapters) therefore runs inside a :class:`~tests.rigs.netns.LossyNamespace` when it
runs on a thread that joined it: :class:`NamespaceLoop` starts such a thread with an event
loop of its own, and the test hands it coroutines::

    with lossy_namespace(loss_in=5, loss_out=5) as ns, NamespaceLoop(ns) as inside:
        ep = await inside.run(make_endpoint(...))     # its sockets are in the namespace
        await inside.run(ep.wait_connected(15))

:meth:`NamespaceLoop.run` waits (on the caller's loop) for the coroutine to finish on the
namespace's loop; cancelling the caller cancels it there. Objects made on that loop (queues,
events, transports) are used only from coroutines run on it. Threads the loop starts
(``asyncio.to_thread``) are born in the namespace too. Leaving the block cancels what still
runs there, stops the loop and joins the thread (before the namespace is deleted).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from tests.rigs.netns import LossyNamespace

T = TypeVar("T")


class NamespaceLoop:
    def __init__(self, ns: LossyNamespace) -> None:
        self.ns = ns
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failed: BaseException | None = None

    def start(self) -> NamespaceLoop:
        self._thread = threading.Thread(target=self._main, name=f"loop-{self.ns.name}")
        self._thread.start()
        if not self._ready.wait(10.0):
            raise TimeoutError(f"the event loop in {self.ns.name} did not start")
        if self._failed is not None:
            raise self._failed
        return self

    def _main(self) -> None:
        try:
            self.ns.join_thread()
            loop = asyncio.new_event_loop()
        except BaseException as exc:  # handed to start()
            self._failed = exc
            self._ready.set()
            return
        self.loop = loop
        asyncio.set_event_loop(loop)
        self._ready.set()
        try:
            loop.run_forever()
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the namespace's loop; its result or exception, here."""
        assert self.loop is not None, "start() first"
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    async def call(self, fn: Callable[[], T]) -> T:
        """Call ``fn()`` on the namespace's loop (to read state that lives there)."""

        async def call() -> T:
            return fn()

        return await self.run(call())

    def close(self) -> None:
        if self.loop is not None and self._thread is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread is not None:
            self._thread.join(30.0)
            if self._thread.is_alive():
                raise RuntimeError(f"the event loop in {self.ns.name} did not stop")
        self.loop = None

    def __enter__(self) -> NamespaceLoop:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
