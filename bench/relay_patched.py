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
"""

from __future__ import annotations

import argparse
import atexit
import gc
import logging
import queue
import sys
import threading
import time
from typing import Any


def _gclog() -> None:
    pauses: list[tuple[float, int, float]] = []
    start = [0.0]

    def cb(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            start[0] = time.perf_counter()
        else:
            pauses.append((time.perf_counter() - start[0], info["generation"], time.time()))

    gc.callbacks.append(cb)

    def summary() -> None:
        for gen in (0, 1, 2):
            ts = sorted(t for t, g, _ in pauses if g == gen)
            if ts:
                print(
                    f"gc gen{gen}: {len(ts)} collections, max {ts[-1] * 1e3:.1f} ms, "
                    f"total {sum(ts) * 1e3:.0f} ms",
                    flush=True,
                )

        for t, g, at in pauses:
            if t >= 0.010:
                stamp = time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at % 1 * 1000):03d}"
                print(f"gc pause at {stamp}: gen{g} {t * 1e3:.1f} ms", flush=True)

    atexit.register(summary)


def _looplag() -> None:
    """Observe only: log every event-loop stall over 5 ms (when, how long) at exit."""
    from bridge.relay import server as rs

    stalls: list[tuple[float, float]] = []
    original = rs.RelayServer.start

    async def watch() -> None:
        import asyncio

        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(0.002)
            lag = time.perf_counter() - t0 - 0.002
            if lag > 0.005:
                stalls.append((time.time(), lag))

    async def start(self: Any) -> None:
        import asyncio

        await original(self)
        self._lag_task = asyncio.get_running_loop().create_task(watch())

    rs.RelayServer.start = start  # type: ignore[method-assign]

    def summary() -> None:
        for at, lag in stalls:
            stamp = time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at % 1 * 1000):03d}"
            print(f"loop stall at {stamp}: {lag * 1e3:.1f} ms", flush=True)

    atexit.register(summary)


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


def _rawsend() -> None:
    from bridge.relay import server as rs
    from bridge.wire import control as p

    original = rs.RelayServer._fan_out

    def _fan_out(self: Any, channel_no: int, frame: bytes, udp: list[Any], ws: list[int]) -> None:
        if udp and self._udp and self._udp.transport:
            transport = self._udp.transport
            out = p.udp_media_down(channel_no, frame)
            sendto = transport._sock.sendto
            for i, addr in enumerate(udp):
                if transport._buffer:  # the transport is queueing: keep the order
                    for rest in udp[i:]:
                        transport.sendto(out, rest)
                    break
                try:
                    sendto(out, addr)
                except (BlockingIOError, InterruptedError):
                    transport.sendto(out, addr)
                except OSError as exc:
                    transport._protocol.error_received(exc)
        if ws:
            original(self, channel_no, frame, [], ws)

    rs.RelayServer._fan_out = _fan_out  # type: ignore[method-assign]


def _wsdirect() -> None:
    from bridge.relay import server as rs
    from bridge.wire import control as p

    original = rs.RelayServer._fan_out

    def _fan_out(self: Any, channel_no: int, frame: bytes, udp: list[Any], ws: list[int]) -> None:
        if udp:
            original(self, channel_no, frame, udp, [])
        if not ws:
            return
        payload = p.ws_media(p.WS_MEDIA_DOWN, channel_no, frame)
        n = len(payload)  # one unmasked binary frame (RFC 6455 §5.2), built once
        data = (
            bytes((0x82, n)) if n < 126 else bytes((0x82, 126)) + n.to_bytes(2, "big")
        ) + payload
        slow = []
        for sid in ws:
            conn = self._ws.get(sid)
            if conn is None or conn.closed:
                continue
            writer = conn._writer
            if conn.compress or writer is None:
                slow.append(sid)  # permessage-deflate negotiated: let aiohttp frame it
                continue
            transport = writer.transport
            if transport.is_closing():
                continue
            if transport.get_write_buffer_size() > 256 * 1024:
                self.core.metrics.drop("ws-backlog")  # a stalled listener loses voice, not RAM
                continue
            transport.write(data)
        if slow:
            original(self, channel_no, frame, [], slow)

    rs.RelayServer._fan_out = _fan_out  # type: ignore[method-assign]


PATCHES = {
    "gclog": _gclog,
    "looplag": _looplag,
    "gcfreeze": _gcfreeze,
    "audit-thread": _audit_thread,
    "rawsend": _rawsend,
    "wsdirect": _wsdirect,
}


def main() -> None:
    names = [n for n in sys.argv[1].split(",") if n and n != "none"]
    for name in names:
        PATCHES[name]()
    from bridge.cli import relay as relay_cli

    parser = argparse.ArgumentParser(prog="crossband relay (patched)")
    relay_cli.register(parser.add_subparsers())
    args = parser.parse_args(["relay", *sys.argv[2:]])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    print(f"relay patches: {','.join(names) or 'none'}", flush=True)
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
