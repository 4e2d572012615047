"""Run ``bridge.cli.relay`` with candidate changes applied in memory, to measure them.

    python -m bench.relay_patched PATCH[,PATCH...] --config relay.yaml --ready-file F

The relay's files are not touched: each patch below replaces one function at import time,
exactly as the proposed edit would, so ``bench/relay_bench.py --patch ...`` can show the
effect of a change before anyone makes it. ``none`` runs the relay as shipped (plus the GC
pause log, which only observes).

- ``gclog``: record every garbage-collector pause (``gc.callbacks``) and print a summary to
  the relay log at exit. Observes only.
- ``looplag``: log every stall of the relay's event loop over 5 ms. Observes only.
- ``gcfreeze``: after start-up, ``gc.freeze()`` the long-lived heap and raise the gen-0
  threshold, so full collections no longer walk every session, channel and aiohttp object.
- ``audit-thread``: ``RelayCore._audit`` hands the record to one dedicated writer thread
  (in order) instead of writing and fsyncing on the event loop.
- ``wsdirect``: the WebSocket branch of ``_fan_out`` builds the server frame once and writes
  it to each listener's transport (skipping a listener whose write buffer is over 256 KiB)
  instead of creating one ``send_bytes`` task per listener per frame.
- ``rawsend``: ``RelayServer._fan_out`` calls the UDP socket's ``sendto`` directly instead of
  ``DatagramTransport.sendto`` (falling back to the transport on ``BlockingIOError``).
- ``uvloop``: run the relay on uvloop's event loop (its policy installed before the relay
  command starts), whatever the relay itself would choose.
- ``asyncio-loop``: run the relay on the standard library's event loop, even if the relay
  would pick uvloop itself (``uvloop.install``/``run``/``new_event_loop``/``EventLoopPolicy``
  are redirected to asyncio's own).
- ``cprofile``: ``SIGUSR1`` starts a ``cProfile`` recording on the event-loop thread,
  ``SIGUSR2`` stops it and writes the stats to ``$CROSSBAND_BENCH_PROFILE`` (``relay.prof``).
- ``stallstack: a watchdog thread samples the event-loop thread's stack whenever the loop
  has not run a 1 ms heartbeat for over 5 ms, and prints at exit which frames the loop was
  in during stalls (``select`` means it was waiting: the stall was not the relay's code).
  Observes only. With ``CROSSBAND_BENCH_ARMED=0`` it samples only between SIGUSR1 and
  SIGUSR2 (``relay_speed.py --profile PHASE`` sends them around that phase's windows).
- ``udpbatch``: the relay's UDP socket is read by its own reader callback, up to 64
  datagrams per readiness event instead of one per event-loop iteration, and fan-out calls
  the socket's ``sendto`` directly (a full send buffer drops that copy, counted) instead of
  ``DatagramTransport.sendto``.
- ``fanoutcache``: ``RelayCore._local_targets`` keeps each (channel, sender)'s target lists
  and rebuilds them only after a session, UDP address or roster change.
- ``wscoalesce``: the WebSocket branch of ``_fan_out`` appends the frame to a per-listener
  pending list and one callback per loop iteration writes each listener's frames at once.
- ``gcfreeze-auth``: once a second, if 50 or more sessions were added since the last time,
  ``gc.freeze()`` them too (not only what existed at start-up).

The observe-only patches live in :mod:`bench.relay_observe`. Whatever the patches, the relay
log gets one line ``event-loop: <module>.<class> (relay from <tree>)`` once the relay has
started, so a run shows which loop and which source tree actually served it. The patches
reach only ``RelayServer.start`` / ``_fan_out`` / ``on_datagram`` (``bridge.relay.server``),
``RelayCore._local_targets`` / ``authenticate`` / ``disconnect`` / ``_audit``
(``bridge.relay.core``), ``Session`` / ``Channel`` (``bridge.relay.state``) and
``bridge.cli.relay.register``; a patch whose target moved fails loudly at start.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import queue
import sys
import threading
from typing import Any

try:  # run as a script (bench/relay_procs.py does): bench/ is on sys.path
    from relay_observe import _cprofile, _gclog, _loopinfo, _looplag, _stallstack
except ModuleNotFoundError:  # python -m bench.relay_patched
    from bench.relay_observe import (
        _cprofile,
        _gclog,
        _loopinfo,
        _looplag,
        _stallstack,
    )


def _gcfreeze() -> None:
    from bridge.relay import server as rs

    original = rs.RelayServer.start

    async def start(self: Any) -> None:
        await original(self)
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)

    rs.RelayServer.start = start  # type: ignore[method-assign]


def _audit_thread() -> None:
    from bridge.relay import core as r
    from crypto.errors import CrossbandError

    q: queue.SimpleQueue[tuple[Any, str, float, dict[str, Any]]] = queue.SimpleQueue()

    def writer() -> None:
        while True:
            audit, event, now, fields = q.get()
            try:
                audit.append(event, now, **fields)
            except CrossbandError:
                r.log.exception("event=audit-failed kind=%s", event)

    threading.Thread(target=writer, name="audit", daemon=True).start()

    def _audit(self: Any, event: str, now: float, **fields: Any) -> None:
        q.put((self.audit, event, now, fields))

    r.RelayCore._audit = _audit  # type: ignore[method-assign]


def _uvloop() -> None:
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _asyncio_loop() -> None:
    asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())
    try:
        import uvloop
    except ImportError:
        return
    uvloop.install = lambda: None  # type: ignore[assignment]
    uvloop.run = asyncio.run  # type: ignore[assignment]
    uvloop.new_event_loop = asyncio.new_event_loop  # type: ignore[assignment]
    uvloop.EventLoopPolicy = asyncio.DefaultEventLoopPolicy  # type: ignore[assignment,misc]


def _gcfreeze_auth() -> None:
    from bridge.relay import server as rs

    original = rs.RelayServer.start

    async def refreeze(self: Any) -> None:
        last = len(self.core.sessions)
        while True:
            await asyncio.sleep(1.0)
            n = len(self.core.sessions)
            if n - last >= 50:
                gc.freeze()
                last = n
            elif n < last:
                last = n

    async def start(self: Any) -> None:
        await original(self)
        self._refreeze = asyncio.get_running_loop().create_task(refreeze(self))

    rs.RelayServer.start = start  # type: ignore[method-assign]


def _shipped(name: str) -> Any:
    """A patch the relay now ships (batched UDP reads and direct sendto in bridge/relay/udp.py,
    cached fan-out lists in media.py, one WebSocket write per listener per pass in server.py)."""

    def refuse() -> None:
        raise SystemExit(f"relay patch {name!r} is part of the relay since issue 7; run without it")

    return refuse


PATCHES = {
    "gclog": _gclog,
    "looplag": _looplag,
    "gcfreeze": _gcfreeze,
    "audit-thread": _audit_thread,
    "rawsend": _shipped("rawsend"),
    "wsdirect": _shipped("wsdirect"),
    "uvloop": _uvloop,
    "asyncio-loop": _asyncio_loop,
    "cprofile": _cprofile,
    "stallstack": _stallstack,
    "udpbatch": _shipped("udpbatch"),
    "fanoutcache": _shipped("fanoutcache"),
    "wscoalesce": _shipped("wscoalesce"),
    "gcfreeze-auth": _gcfreeze_auth,
}


def main() -> None:
    names = [n for n in sys.argv[1].split(",") if n and n != "none"]
    for name in names:
        PATCHES[name]()
    _loopinfo()
    from bridge.cli import relay as relay_cli

    parser = argparse.ArgumentParser(prog="crossband relay (patched)")
    relay_cli.register(parser.add_subparsers())
    args = parser.parse_args(["relay", *sys.argv[2:]])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    print(f"relay patches: {','.join(names) or 'none'}", flush=True)
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
