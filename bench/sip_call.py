"""SIP call set-up time through the Crossband SIP adapter, against a sipp→sipp reference.

    .venv/bin/python bench/sip_call.py [--n 200]

One minimal UDP caller (here, in this process; the same for both callee kinds) makes N calls
one after the other — INVITE with a PCMU offer, wait for the 200 OK, ACK, BYE, wait for its
200 — and times **INVITE sent → 200 OK received** (the set-up time a phone sees):

- **adapter**: the callee is a :class:`~adapters.sip.adapter.SipAdapter` line in this process
  (parse, SDP answer, a fresh RTP socket per call, 100 Trying, 200 OK);
- **sipp uas** (reference, same run, same caller): Debian's ``sipp -sn uas`` (100… 180,
  200), a C++ user agent with no media sockets, the floor of the loopback path.

Also the built-in ``sipp -sn uac`` against each callee for N calls, as sipp itself counts them
(successful calls, its whole-millisecond response times). Prints p50/p95/p99/max in ms.
Nothing leaves 127.0.0.1; every process started is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.sip.adapter import sip_adapters  # noqa: E402
from adapters.sip.config import load_sip_config  # noqa: E402
from adapters.sip.message import SipResponse, parse_message  # noqa: E402
from tests.adapters.sip.peers import free_port  # noqa: E402

TIMEOUT = 5.0
SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


class Caller(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[SipResponse] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        msg = parse_message(data)
        if isinstance(msg, SipResponse):
            self.queue.put_nowait(msg)

    async def final(self, method: str) -> SipResponse:
        while True:
            msg = await asyncio.wait_for(self.queue.get(), TIMEOUT)
            if msg.status >= 200 and msg.cseq[1] == method:
                return msg


def request(method: str, dest: tuple[str, int], local: int, call_id: str, cseq: int,
            to_tag: str = "", body: str = "") -> bytes:  # fmt: skip
    uri = f"sip:7001@{dest[0]}:{dest[1]}"
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK{secrets.token_hex(6)};rport",
        "Max-Forwards: 70",
        "From: <sip:bench@127.0.0.1>;tag=b1",
        f"To: <{uri}>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:bench@127.0.0.1:{local}>",
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


async def calls(dest: tuple[str, int], n: int) -> list[float]:
    loop = asyncio.get_running_loop()
    local = free_port()
    transport, caller = await loop.create_datagram_endpoint(Caller, local_addr=("127.0.0.1", local))
    times: list[float] = []
    try:
        for _ in range(n):
            call_id = secrets.token_hex(8)
            invite = request("INVITE", dest, local, call_id, 1, body=SDP.format(port=local + 2))
            start = time.perf_counter()
            transport.sendto(invite, dest)
            ok = await caller.final("INVITE")
            times.append((time.perf_counter() - start) * 1000)
            tag = (ok.get("To") or "").partition("tag=")[2].split(";")[0]
            transport.sendto(request("ACK", dest, local, call_id, 1, tag), dest)
            transport.sendto(request("BYE", dest, local, call_id, 2, tag), dest)
            await caller.final("BYE")
    finally:
        transport.close()
    return times


def summary(name: str, ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return (f"{name:<28} n={len(ms):<4} p50 {q[49]:6.2f}  p95 {q[94]:6.2f}  "
            f"p99 {q[98]:6.2f}  max {max(ms):6.2f} ms")  # fmt: skip


def sipp_uac(target: str, n: int, tmp: Path) -> str:
    args = ["sipp", "-sn", "uac", "-s", "7001", "-i", "127.0.0.1", "-p", str(free_port()),
            "-mi", "127.0.0.1", "-mp", str(free_port()), "-nostdin", "-m", str(n), "-r", "50",
            "-d", "0", "-trace_rtt", "-rtt_freq", "1", "-timeout", "60s", target]  # fmt: skip
    rc = subprocess.run(args, cwd=tmp, stdout=subprocess.DEVNULL, timeout=90).returncode
    rtts: list[float] = []
    for csv in tmp.glob("uac_*_rtt.csv"):
        for line in csv.read_text().splitlines()[1:]:
            rtts.append(float(line.split(";")[1]))
        csv.unlink()
    q = statistics.quantiles(rtts, n=20, method="inclusive") if len(rtts) > 1 else [0] * 19
    return (
        f"sipp rc {rc}, {len(rtts)} calls timed, its p50 {q[9]:.0f} p95 {q[18]:.0f} ms (1 ms steps)"
    )


async def main(n: int) -> None:
    cfg = load_sip_config({"listen": "127.0.0.1:0", "lines": [{"extension": "7001",
                                                               "channel": "bench"}]})  # fmt: skip
    ((_, adapter),) = sip_adapters(cfg)
    await adapter.start(lambda e: None)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        port = free_port()
        uas = subprocess.Popen(
            ["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(port), "-mi", "127.0.0.1",
             "-mp", str(free_port()), "-nostdin"],
            cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            await asyncio.sleep(0.5)
            ours = await calls(adapter.endpoint.address, n)
            ref = await calls(("127.0.0.1", port), n)
            print(summary("adapter (INVITE -> 200)", ours))
            print(summary("sipp uas (reference)", ref))
            host, aport = adapter.endpoint.address
            loop = asyncio.get_running_loop()
            print("sipp uac -> adapter:  ", await loop.run_in_executor(
                None, sipp_uac, f"{host}:{aport}", n, tmp))  # fmt: skip
            print("sipp uac -> sipp uas: ", await loop.run_in_executor(
                None, sipp_uac, f"127.0.0.1:{port}", n, tmp))  # fmt: skip
        finally:
            uas.terminate()
            try:
                uas.wait(5)
            except subprocess.TimeoutExpired:
                uas.kill()
                uas.wait()
            await adapter.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    asyncio.run(main(parser.parse_args().n))
