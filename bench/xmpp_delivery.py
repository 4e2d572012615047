"""XMPP delivery latency through a real prosody on loopback (issue 12).

    .venv/bin/python bench/xmpp_delivery.py [--n 200]

Starts Debian's ``prosody`` in a temporary directory (``tests.rigs.prosody``), joins the
Crossband XMPP adapter and a plain slixmpp "officer" to one MUC room, and times N messages
one at a time (each sent once the previous one arrived, so no queueing is measured):

- **adapter → officer**: ``XmppAdapter.post`` until the officer's client has the message;
- **officer → adapter**: the officer's message until the adapter's sink has its ``Text``;
- **ref → officer** and **officer → ref** (reference, same run, same server): a second bare
  slixmpp client in the adapter's place, the floor any client pays through prosody; compare
  each adapter path with the reference of the same direction;
- **officer → far endpoint** and back (unless ``--no-far``): the adapter bound by a gateway to
  endpoint A, across the real relay process to endpoint B of another agency (signed,
  encrypted, decrypted, verified), and B's reply into the room, beside endpoint A → B with no
  XMPP at all (the relay path's own floor). Issue 12's budget: post → far endpoint p95 ≤ 50 ms.

Prints p50/p95/p99/max in ms per path. Bodies carry only a sequence number.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.base import AdapterEvent, Text  # noqa: E402
from adapters.xmpp.adapter import XmppAdapter  # noqa: E402
from adapters.xmpp.mapping import XmppConfig, load_xmpp_config  # noqa: E402
from tests.rigs.prosody import Occupant, Prosody  # noqa: E402

TIMEOUT = 5.0


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


async def timed(
    n: int, send: Callable[[str], None], recv: Callable[[], Awaitable[str]]
) -> list[float]:
    out = []
    for i in range(n):
        tag = f"m{i}"
        t0 = time.perf_counter()
        send(tag)
        while not (await asyncio.wait_for(recv(), TIMEOUT)).endswith(tag):
            pass
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def far_paths(
    n: int,
    tmp: Path,
    cfg: XmppConfig,
    password: str,
    officer_from: Callable[[str], Awaitable[str]],
    officer: Occupant,
) -> dict[str, list[float]]:
    """The room to an endpoint of another agency across the real relay, and back: the
    adapter bound by a gateway to endpoint A (us-cbp), the far endpoint B (ca-rcmp)."""
    from bridge.endpoint import events as ev
    from bridge.endpoint.endpoint import Endpoint
    from bridge.gateway import Binding, Gateway
    from tests.adapters.gateway_rig import CH, close_rig, open_rig
    from tests.bridge.harness import next_event

    rig = await open_rig(tmp / "relay")
    gateway = Gateway(
        rig.a, [Binding(CH, XmppAdapter(cfg, cfg.rooms[0], password, plaintext=True))]
    )
    sending: set[asyncio.Task[str]] = set()
    try:
        await gateway.start()

        async def far_text() -> str:
            msg = await next_event(rig.b, ev.Message, timeout=TIMEOUT, channel=CH)
            return bytes(msg.body).decode()

        def sender(ep: Endpoint) -> Callable[[str], None]:
            def send(tag: str) -> None:
                task = asyncio.ensure_future(ep.send_text(CH, tag, timeout=TIMEOUT))
                sending.add(task)
                task.add_done_callback(sending.discard)

            return send

        out = {}
        for _ in range(2):
            out["officer -> far endpoint (relay)"] = await timed(n, officer.say, far_text)
            out["far endpoint -> officer (relay)"] = await timed(
                n, sender(rig.b), lambda: officer_from("gw")
            )
            out["endpoint A -> B (reference)"] = await timed(n, sender(rig.a), far_text)
        return out
    finally:
        await gateway.stop()
        await close_rig(rig)


async def run(n: int, tmp: Path, far: bool = True) -> dict[str, list[float]]:
    server = Prosody(tmp, accounts=("gw", "officer", "ref"))
    server.start()
    room = server.room("bench")
    adapter = officer = ref = None
    try:
        cfg = load_xmpp_config(
            {
                "server": f"127.0.0.1:{server.port}",
                "jid": server.jid("gw"),
                "password_file": "/unused",
                "rooms": [{"room": room, "nick": "gw", "channel": "bench"}],
            }
        )
        adapter = XmppAdapter(cfg, cfg.rooms[0], server.passwords["gw"], plaintext=True)
        texts: asyncio.Queue[AdapterEvent] = asyncio.Queue()
        await adapter.start(texts.put_nowait)
        officer = Occupant(server, "officer", room)
        ref = Occupant(server, "ref", room)
        await officer.join()
        await ref.join()

        async def officer_from(nick: str) -> str:
            while True:
                who, body, _ = await officer.next(TIMEOUT)
                if who == nick:
                    return body

        async def ref_from_officer() -> str:
            while True:
                who, body, _ = await ref.next(TIMEOUT)
                if who == "officer":
                    return body

        async def adapter_text() -> str:
            event = await texts.get()
            assert isinstance(event, Text)
            return event.body

        out = {}
        for _ in range(2):  # the second round is kept: the first warms both paths up
            out["adapter -> officer"] = await timed(
                n, lambda s: adapter.post(s, "bench/d1"), lambda: officer_from("gw")
            )
            out["officer -> adapter"] = await timed(n, officer.say, adapter_text)
            out["ref -> officer (slixmpp both)"] = await timed(
                n, ref.say, lambda: officer_from("ref")
            )
            out["officer -> ref (slixmpp both)"] = await timed(n, officer.say, ref_from_officer)
        await adapter.stop()
        adapter = None
        if far:
            out.update(await far_paths(n, tmp, cfg, server.passwords["gw"], officer_from, officer))
        return out
    finally:
        for o in (officer, ref):
            if o is not None:
                await o.close()
        if adapter is not None:
            await adapter.stop()
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--no-far", action="store_true", help="skip the relay + far endpoint paths")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="xmpp-bench-") as tmp:
        (Path(tmp) / "relay").mkdir()
        results = asyncio.run(run(args.n, Path(tmp), far=not args.no_far))
    print(f"XMPP delivery through prosody on loopback, N={args.n} sequential messages (ms)")
    print(f"{'path':<36} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7} {'mean':>7}")
    for name, xs in results.items():
        print(
            f"{name:<36} {pct(xs, 50):7.2f} {pct(xs, 95):7.2f} {pct(xs, 99):7.2f}"
            f" {max(xs):7.2f} {statistics.fmean(xs):7.2f}"
        )


if __name__ == "__main__":
    main()
