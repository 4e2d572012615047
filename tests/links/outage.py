"""A vessel's link down for 30 s, and what comes back: the scenario behind
``test_outage.py`` and ``bench/bad_links.py``.

Dispatch (``us-cbp/gw-blaine``) stays on the relay; the vessel (``ca-rcmp/gw-sarnia``) reaches
it through an :class:`~tests.rigs.link.ImpairedLink` whose WebSocket proxy resets every
connection when the switch goes down and every one made while it is down (a NAT or modem
that lost its state), and whose UDP proxy drops every datagram meanwhile.

1. The switch goes down; one vessel message is on its way at that moment.
2. During the outage both sides send messages (at its start, middle and end): dispatch's are
   accepted by the relay at once, the vessel's wait in its endpoint.
3. Half a second before the link returns, dispatch keys up on channel ``CH`` and keeps
   talking until the vessel hears it.
4. The switch goes up at ``t_up``. The vessel keys up on ``CH2`` as soon as it is connected
   and talks until dispatch hears it.
5. Every message must arrive; each side then sends one more and waits for it: a barrier
   behind which any redelivery would have arrived, so the counts are final.

Times are on the event loop's clock, from ``t_up``; every wait has a deadline that fails.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.endpoint import events as ev
from bridge.endpoint.endpoint import Endpoint
from tests.bridge.harness import next_event
from tests.links.bridge import CH, Bridge, close_bridge, open_bridge

CH2 = "border-ops-2"
FRAME = b"\x00" * 80  # a voice payload (the endpoints do not decode it)


class Recorder:
    """Every event an endpoint reports, with its arrival time on the loop's clock."""

    def __init__(self, ep: Endpoint) -> None:
        self.ep = ep
        self.events: list[tuple[float, ev.Event]] = []
        self._changed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            event = await self.ep.events.get()
            self.events.append((loop.time(), event))
            self._changed.set()

    async def first(self, pred: Callable[[ev.Event], bool], timeout: float, what: str) -> float:
        """When the first event matching ``pred`` arrived (waiting up to ``timeout``)."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for t, e in self.events:
                        if pred(e):
                            return t
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"{self.ep.device}: no {what} within {timeout} s") from None

    async def until(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        """Until ``cond()`` holds, re-checked after every event (up to ``timeout``)."""
        try:
            async with asyncio.timeout(timeout):
                while not cond():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"{self.ep.device}: no {what} within {timeout} s") from None

    def messages(self) -> Counter[str]:
        return Counter(e.id for _t, e in self.events if isinstance(e, ev.Message))

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@dataclass
class Outcome:
    outage_s: float
    by_dispatch: list[str] = field(default_factory=list)  # ids sent during the outage
    by_vessel: list[str] = field(default_factory=list)
    vessel_failed: int = 0  # vessel sends that raised instead of being accepted
    at_vessel: Counter[str] = field(default_factory=Counter)  # Message events, by id
    at_dispatch: Counter[str] = field(default_factory=Counter)
    connected_s: float | None = None  # t_up → the vessel's welcome
    hears_s: float | None = None  # t_up → the vessel hears dispatch's burst in progress
    heard_s: float | None = None  # t_up → dispatch hears the vessel's new burst
    reconnect_attempts: int = 0  # the vessel's (RelayLink.reconnects)
    resets: int = 0  # connections the link's proxy cut

    def delivery(self, sent: list[str], got: Counter[str]) -> tuple[int, int, int]:
        """(delivered once or more, extra copies, lost) of ``sent``."""
        delivered = sum(1 for i in sent if got[i] >= 1)
        return delivered, sum(max(0, got[i] - 1) for i in sent), len(sent) - delivered


async def run_outage(tmp: Path, outage: float = 30.0, deadline: float = 25.0) -> Outcome:
    b = await open_bridge(tmp, on_outage="reset", gateways=False)
    try:
        return await _scenario(b, outage, deadline)
    finally:
        await close_bridge(b)


async def _scenario(b: Bridge, outage: float, deadline: float) -> Outcome:
    d, v = b.dispatch, b.vessel
    dev_d, dev_v = b.world.devices[d.device], b.world.devices[v.device]
    members = [(dev_d.cred, "dispatcher"), (dev_v.cred, "member")]
    await d.commit(CH2, members, agreement=b.world.agreement, name="Border ops 2")
    await next_event(v, ev.ChannelUpdated, channel=CH2, epoch=1, timeout=10)
    rec_d, rec_v = Recorder(d), Recorder(v)
    loop = asyncio.get_running_loop()
    out = Outcome(outage)
    pending: list[asyncio.Task[str]] = []
    talk: asyncio.Task[float] | None = None

    def vessel_sends(label: str) -> None:
        pending.append(loop.create_task(v.send_text(CH, label, timeout=outage + deadline + 30)))

    try:
        vessel_sends("v-at-cut")  # on its way as the link goes
        await asyncio.sleep(0)
        t_down = loop.time()
        b.link.set_down()
        await rec_v.first(lambda e: isinstance(e, ev.Disconnected), 5.0, "disconnect")
        for i, at in enumerate((0.5, outage / 2, outage - 1.0)):
            await asyncio.sleep(max(0.0, t_down + at - loop.time()))
            out.by_dispatch.append(await d.send_text(CH, f"d-{i}", timeout=5.0))
            vessel_sends(f"v-{i}")
        await asyncio.sleep(max(0.0, t_down + outage - 0.5 - loop.time()))
        assert await d.start_burst(CH), "dispatch could not key up"
        talk = loop.create_task(_talk(d, CH, rec_v, deadline + 1.0))
        await asyncio.sleep(max(0.0, t_down + outage - loop.time()))
        t_up = loop.time()
        b.link.set_up()

        async def vessel_keys_up() -> float:
            await asyncio.wait_for(v.connected.wait(), deadline)
            async with asyncio.timeout(deadline):
                while not await v.start_burst(CH2, timeout=deadline):
                    await asyncio.sleep(0.05)
            return await _talk(v, CH2, rec_d, deadline)

        keyed = loop.create_task(vessel_keys_up())
        out.hears_s = await talk - t_up
        out.heard_s = await keyed - t_up
        t_conn = await rec_v.first(lambda e: isinstance(e, ev.Connected), 1.0, "welcome")
        out.connected_s = t_conn - t_up
        for task in pending:
            try:
                out.by_vessel.append(await asyncio.wait_for(task, deadline))
            except Exception:  # counted: a lost message is what the test looks for
                out.vessel_failed += 1
        ids_v, ids_d = set(out.by_dispatch), set(out.by_vessel)
        with contextlib.suppress(TimeoutError):  # what is missing is counted as lost
            await rec_v.until(lambda: ids_v <= set(rec_v.messages()), deadline, "messages")
            await rec_d.until(lambda: ids_d <= set(rec_d.messages()), deadline, "messages")
        last_d = await d.send_text(CH, "d-barrier", timeout=10.0)
        last_v = await v.send_text(CH, "v-barrier", timeout=10.0)
        await rec_v.first(lambda e: isinstance(e, ev.Message) and e.id == last_d, 10.0, "barrier")
        await rec_d.first(lambda e: isinstance(e, ev.Message) and e.id == last_v, 10.0, "barrier")
        out.at_vessel, out.at_dispatch = rec_v.messages(), rec_d.messages()
        out.reconnect_attempts = (
            b.link.ws.accepted - 1
        )  # the first was the vessel's connection before
        out.resets = b.link.ws.resets
        return out
    finally:
        tasks: list[asyncio.Task[Any]] = [*pending, *([talk] if talk else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await rec_d.close()
        await rec_v.close()


async def _talk(ep: Endpoint, ch: str, listener: Recorder, timeout: float) -> float:
    """Send a voice frame every 20 ms until ``listener`` hears one from ``ep``; then end the
    burst. Returns when the first frame was heard."""
    loop = asyncio.get_running_loop()
    heard = loop.create_task(
        listener.first(
            lambda e: isinstance(e, ev.Voice) and e.sender == ep.device and e.channel == ch,
            timeout,
            f"voice of {ep.device} on {ch}",
        )
    )
    try:
        while not heard.done():
            ep.send_voice(ch, FRAME)
            await asyncio.wait([heard], timeout=0.02)
        return heard.result()
    finally:
        heard.cancel()
        await ep.end_burst(ch)
