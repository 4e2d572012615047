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


def _udpbatch() -> None:
    import socket

    from bridge.relay import server as rs
    from bridge.wire import control as p

    original_start, original_fan_out = rs.RelayServer.start, rs.RelayServer._fan_out

    async def start(self: Any) -> None:
        await original_start(self)
        if self._udp is None or self._udp.transport is None:
            return
        self._udp.transport.close()
        await asyncio.sleep(0)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((self.host, self.udp_port))
        sock.setblocking(False)
        self._raw_udp = sock
        recvfrom, on_datagram = sock.recvfrom, self.on_datagram

        def drain() -> None:
            for _ in range(64):
                try:
                    data, addr = recvfrom(2048)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    continue
                on_datagram(data, addr)

        asyncio.get_running_loop().add_reader(sock.fileno(), drain)

    def _fan_out(self: Any, channel_no: int, frame: bytes, udp: list[Any], ws: list[int]) -> None:
        sock = getattr(self, "_raw_udp", None)
        if udp and sock is not None:
            out, sendto = p.udp_media_down(channel_no, frame), sock.sendto
            for addr in udp:
                try:
                    sendto(out, addr)
                except OSError:  # full send buffer: this listener loses this frame
                    self.core.metrics.drop("udp-send")
            udp = []
        if udp or ws:
            original_fan_out(self, channel_no, frame, udp, ws)

    rs.RelayServer.start = start  # type: ignore[method-assign]
    rs.RelayServer._fan_out = _fan_out  # type: ignore[method-assign]


def _fanoutcache() -> None:
    from bridge.relay import core as rc
    from bridge.relay import state as st

    version = [0]

    def bump(*_a: Any) -> None:
        version[0] += 1

    def get_addr(self: Any) -> Any:
        return self.__dict__.get("_udp_addr")

    def set_addr(self: Any, value: Any) -> None:
        if self.__dict__.get("_udp_addr") != value:
            self.__dict__["_udp_addr"] = value
            version[0] += 1

    st.Session.udp_addr = property(get_addr, set_addr)  # type: ignore[assignment]
    for cls, names in ((rc.RelayCore, ("authenticate", "disconnect")), (st.Channel, ("install",))):
        for name in names:
            fn = getattr(cls, name)

            def wrapped(*a: Any, fn: Any = fn, **kw: Any) -> Any:
                version[0] += 1
                return fn(*a, **kw)

            setattr(cls, name, wrapped)
    original = rc.RelayCore._local_targets
    cache: dict[tuple[int, str], tuple[int, list[Any], list[int]]] = {}

    def _local_targets(self: Any, chan: Any, sender: str) -> tuple[list[Any], list[int]]:
        key = (id(chan), sender)
        hit = cache.get(key)
        if hit is None or hit[0] != version[0]:
            udp, ws = original(self, chan, sender)
            cache[key] = (version[0], udp, ws)
            return udp, ws
        self.metrics.c["frames_out"] += len(hit[1]) + len(hit[2])
        return hit[1], hit[2]

    rc.RelayCore._local_targets = _local_targets  # type: ignore[method-assign]


def _wscoalesce() -> None:
    from bridge.relay import server as rs
    from bridge.wire import control as p

    original = rs.RelayServer._fan_out
    backlog = getattr(rs, "WS_BACKLOG", 256 * 1024)

    def flush(self: Any) -> None:
        pending, self._ws_pending = self._ws_pending, {}
        for transport, *chunks in pending.values():
            if not transport.is_closing():
                transport.write(b"".join(chunks))

    def _fan_out(self: Any, channel_no: int, frame: bytes, udp: list[Any], ws: list[int]) -> None:
        if udp:
            original(self, channel_no, frame, udp, [])
        if not ws:
            return
        payload = p.ws_media(p.WS_MEDIA_DOWN, channel_no, frame)
        n = len(payload)
        head = bytes((0x82, n)) if n < 126 else bytes((0x82, 126)) + n.to_bytes(2, "big")
        data = head + payload
        pending = self.__dict__.setdefault("_ws_pending", {})
        if not pending:
            asyncio.get_running_loop().call_soon(flush, self)
        for sid in ws:
            queued = pending.get(sid)
            if queued is not None:
                queued.append(data)
                continue
            transport = self._transports.get(sid)
            if transport is None or transport.is_closing():
                continue
            if transport.get_write_buffer_size() > backlog:
                self.core.metrics.drop("ws-backlog")
                continue
            pending[sid] = [transport, data]

    rs.RelayServer._fan_out = _fan_out  # type: ignore[method-assign]


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


PATCHES = {
    "gclog": _gclog,
    "looplag": _looplag,
    "gcfreeze": _gcfreeze,
    "audit-thread": _audit_thread,
    "rawsend": _rawsend,
    "wsdirect": _wsdirect,
    "uvloop": _uvloop,
    "asyncio-loop": _asyncio_loop,
    "cprofile": _cprofile,
    "stallstack": _stallstack,
    "udpbatch": _udpbatch,
    "fanoutcache": _fanoutcache,
    "wscoalesce": _wscoalesce,
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
