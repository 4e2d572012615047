"""Where the delay goes on the radio side: the RTP adapter's stages, on a fake clock.

Run: .venv/bin/python bench/rtp_delay.py [--bursts 3] [--no-reference] [--live 5]

Drives the sans-IO pieces the RTP adapter is made of (:class:`RetimedReceiver` for the input,
:class:`RtpSender` for the output) on a fake clock, with packets paced as a radio sends them,
and prints for each path:

* input (radio → channel), per 20 ms frame handed to the gateway: **resampler lag** (how
  much later the audio comes out than it went in, by cross-correlation), **resampler hold**
  (the frame became whole this long after the packet carrying its last sample arrived: the
  resampler held part of it back), **re-timer hold** (how long the frame then waited for its
  slot on the 20 ms clock), their **total**, the re-timer's concealed frames, and
  **key-up** (first packet in → first frame out);
* output (channel → radio), per packet: **resampler lag**, **packetization + hold** (the
  packet left this long after the frame carrying its last sample was played), and
  **key-up** (first frame played → first packet out). Output pacing itself is the
  gateway's 20 ms ticker (``bridge.audio.playout``): a frame played is sent at once.

Paths: L16 16 kHz passthrough, G.711 (PCMU) radio → 16 kHz channel (the G.711 → Opus path
up to the encoder), 16 kHz channel → PCMU radio (Opus → G.711 after the decoder); 20 ms
packets, ffmpeg's 128 ms default, and 20 ms packets with up to 30 ms of arrival jitter.

``--live N`` also sends N one-second L16 bursts from ``tests/adapters/rtp_sender_proc.py``
(its own process, real time) over loopback UDP into an :class:`RtpReceiverDriver` with the
adapter's :class:`RetimedReceiver`, and prints per burst the re-timer's margin, its stretches
and concealed frames (beside the end's fade) and key-up (first packet in → first frame out),
on the real clock of a machine shared with other work.

**Reference**: unless ``--no-reference``, the same run is repeated on the adapter as it is
in git ``HEAD`` (extracted with ``git archive`` into a temporary directory, run in a
subprocess), and each figure is printed beside it. The Opus codec, SFrame, the relay, the far
jitter buffer and the playout ticker are outside this bench (``bench/audio_path_bench.py``
measures them end to end).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__" and "--tree" not in sys.argv:
    sys.path.insert(0, str(ROOT))

FRAME = 0.020
T0 = 1000.0


def signal(rate: int, seconds: float, seed: int = 1) -> np.ndarray:
    """Speech-like noise (band-limited to 3.4 kHz so that G.711 and 8 kHz keep all of it)."""
    from adapters.rtp.codec import resample

    rng = np.random.default_rng(seed)
    x = rng.normal(0, 4000, int(8000 * seconds)).clip(-30000, 30000).astype(np.int16)
    narrow = np.frombuffer(resample(x, 8000, 16000), "<i2")
    y = np.frombuffer(resample(narrow, 16000, rate), "<i2") if rate != 16000 else narrow
    return np.asarray(y[: int(rate * seconds)], dtype=np.int16)


def lag_of(ref: np.ndarray, out: np.ndarray, rate: int) -> float:
    """Seconds by which ``out`` follows ``ref`` (best normalised correlation, ±60 ms)."""
    n = min(len(ref), len(out)) - rate // 10
    r, best, lag = ref.astype(float), -2.0, 0
    for d in range(0, rate * 60 // 1000):
        seg = out[d : d + n].astype(float)
        if len(seg) < n:
            break
        c = float(np.dot(r[:n], seg) / (np.linalg.norm(r[:n]) * np.linalg.norm(seg) + 1e-9))
        if c > best:
            best, lag = c, d
    return lag / rate


def packets_of(name: str, pcm: np.ndarray, clock: int, ptime: float) -> list[bytes]:
    from adapters.codecs.pcm import pcm_to_l16
    from adapters.rtp.codec import ulaw_encode
    from adapters.rtp.packet import RtpPacket

    n = round(clock * ptime)
    enc = ulaw_encode if name == "pcmu" else pcm_to_l16
    pt = 0 if name == "pcmu" else 97
    return [
        RtpPacket(pt, i, i * n, 0x1234, enc(pcm[i * n : (i + 1) * n])).serialize()
        for i in range(len(pcm) // n)
    ]


def run_input(name: str, ptime: float, jitter: float, bursts: int, lead: bool = False) -> Any:
    from adapters.rtp.config import PayloadFormat, RtpReceiverConfig
    from adapters.rtp.receiver import Audio
    from adapters.rtp.retimer import RetimedReceiver

    rate, clock = 16000, 8000 if name == "pcmu" else 16000
    fmt = PayloadFormat.of("pcmu") if name == "pcmu" else PayloadFormat.of("l16", 97, 16000)
    kw: dict[str, Any] = {"resample_lead": True} if lead else {}
    try:
        rx = RetimedReceiver(RtpReceiverConfig((fmt,), rate=rate, hang_time=0.3, **kw))
    except TypeError:
        return {"missing": True}
    rng = np.random.default_rng(7)
    per_burst = []
    for b in range(bursts):
        src = signal(clock, 1.5, seed=b)
        pk = packets_of(name, src, clock, ptime)
        start = T0 + 3.0 * b
        arrivals: list[float] = []
        for i in range(len(pk)):
            t = start + (i + 1) * ptime + (float(rng.uniform(0, jitter)) if jitter else 0.0)
            arrivals.append(max(t, arrivals[-1] if arrivals else t))
        pushes: dict[bytes, tuple[int, float]] = {}  # a frame's last samples → (index, time)
        orig_push = rx.retimer.push

        def push(pcm: bytes, now: float, *, filled: bool = False) -> None:
            pushes.setdefault(pcm[-200:], (len(pushes), now))
            orig_push(pcm, now, filled=filled)

        rx.retimer.push = push  # type: ignore[method-assign]
        frames: list[tuple[float, bytes]] = []
        concealed0 = rx.retimer.stats.concealed
        i, now = 0, start
        while True:
            timer = rx.get_timer()
            nxt = arrivals[i] if i < len(arrivals) else None
            cands = [t for t in (timer, nxt) if t is not None]
            if not cands:
                break
            now = min(cands)
            if nxt is not None and now == nxt:
                rx.receive_datagram(pk[i], ("127.0.0.1", 5004), now)
                i += 1
            else:
                rx.handle_timer(now)
            frames += [(now, e.pcm) for e in rx.events_received() if isinstance(e, Audio)]
        rx.retimer.push = orig_push  # type: ignore[method-assign]
        if b == 0:  # the resampler's lag: a property of the path, measured without jitter
            ref = np.frombuffer(_resample(src, clock, rate), "<i2")
            out = np.frombuffer(b"".join(p for _t, p in frames), "<i2")
            lag = lag_of(ref, out, rate) if not jitter else 0.0
        hold_rs, hold_rt = [], []
        body = int(len(src) / clock / FRAME) - 2
        emitted: dict[int, float] = {}  # stream frame index → when it left the re-timer
        for t_out, pcm in frames:
            hit = pushes.get(pcm[-200:])
            if hit is None or hit[0] >= body:  # concealment, or the tail
                continue
            k, t_push = hit
            emitted[k] = t_out
            last_in = (k + 1) * FRAME - lag  # input stream time of the frame's last sample
            hold_rs.append(t_push - arrivals[_index(last_in - 1e-6, ptime, len(arrivals))])
            hold_rt.append(t_out - t_push)
        total = []  # per input sample, 1 ms apart: its frame leaves − its packet came
        for tau in np.arange(0.0005, (body - 1) * FRAME - lag, 0.001):
            k = int((tau + lag) / FRAME)
            if k in emitted:
                total.append(emitted[k] - arrivals[_index(tau, ptime, len(arrivals))])
        per_burst.append(
            {
                "lag": lag,
                "hold_rs": _stat(hold_rs),
                "hold_rt": _stat(hold_rt),
                "total": _stat(total),
                "keyup": frames[0][0] - arrivals[0],
                "concealed": rx.retimer.stats.concealed - concealed0,
            }
        )
    return {"bursts": per_burst}


def run_output(name: str, lead: bool) -> dict[str, Any]:
    from adapters.codecs.pcm import l16_to_pcm
    from adapters.rtp.codec import ulaw_decode
    from adapters.rtp.config import PayloadFormat, RtpSenderConfig
    from adapters.rtp.packet import parse_rtp
    from adapters.rtp.sender import RtpSender

    rate = 16000
    fmt = PayloadFormat.of("pcmu") if name == "pcmu" else PayloadFormat.of("l16", 97, 16000)
    kw: dict[str, Any] = {"resample_lead": True} if lead else {}
    try:
        cfg = RtpSenderConfig(fmt, rate=rate, rtcp_interval=None, **kw)
    except TypeError:
        return {"missing": True}
    tx = RtpSender(cfg)
    src = signal(rate, 1.5)
    n = rate // 50
    plays, sent = [], []
    tx.start_burst(T0)
    now = T0
    for k in range(len(src) // n):
        now = T0 + k * FRAME
        tx.send_audio(src[k * n : (k + 1) * n].astype("<i2").tobytes(), now)
        plays.append(now)
        sent += [(now, d) for kind, d in tx.datagrams_to_send() if kind == "rtp"]
    timer = tx.get_timer()
    if timer is not None:
        tx.handle_timer(timer)
        sent += [(timer, d) for kind, d in tx.datagrams_to_send() if kind == "rtp"]
    dec = ulaw_decode if name == "pcmu" else l16_to_pcm
    out = np.frombuffer(b"".join(dec(parse_rtp(d).payload) for _t, d in sent), "<i2")
    clock = fmt.clock_rate
    lag = lag_of(np.frombuffer(_resample(src, rate, clock), "<i2"), out, clock)
    delays = []  # per input sample, 1 ms apart: its packet leaves − its frame was played
    ptime = FRAME * cfg.ptime_ms / 20
    for tau in np.arange(0.0005, (len(plays) - 3) * FRAME, 0.001):
        j = int((tau + lag) / ptime)
        if j < len(sent):
            delays.append(sent[j][0] - plays[int(tau / FRAME)])
    return {"lag": lag, "pack": _stat(delays), "keyup": sent[0][0] - plays[0]}


async def _live(bursts: int) -> list[dict[str, float]]:
    import asyncio

    from adapters.rtp.config import PayloadFormat, RtpReceiverConfig, RtpTransportConfig
    from adapters.rtp.driver import RtpReceiverDriver
    from adapters.rtp.receiver import Audio, BurstEnd, BurstStart, RtpEvent
    from adapters.rtp.retimer import RetimedReceiver

    loop = asyncio.get_running_loop()
    fmt = PayloadFormat.of("l16", 97, 16000)
    rx = RetimedReceiver(RtpReceiverConfig((fmt,), rate=16000, hang_time=0.2))
    arrived = [0.0]  # when the datagram being handled came
    rows: list[dict[str, float]] = []
    state: dict[str, float] = {}
    done = asyncio.Event()
    orig = rx.receive_datagram

    def receive(data: bytes, addr: object, now: float) -> None:
        arrived[0] = now
        orig(data, addr, now)

    rx.receive_datagram = receive  # type: ignore[method-assign]

    def on_event(e: RtpEvent) -> None:
        st = rx.retimer.stats
        if isinstance(e, BurstStart):
            state.update(c=st.concealed, s=st.stretched, t0=arrived[0])
        elif isinstance(e, Audio) and "first" not in state:
            state["first"] = loop.time() - state["t0"]
        elif isinstance(e, BurstEnd):
            rows.append(
                {
                    "margin": rx.retimer.delay,
                    "stretched": st.stretched - state["s"],
                    "concealed": st.concealed - state["c"],
                    "keyup": state.get("first", float("nan")),
                }
            )
            state.clear()
            if len(rows) == bursts:
                done.set()

    drv = RtpReceiverDriver(rx, RtpTransportConfig(0), on_event)
    await drv.start()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.s16"
        src.write_bytes(signal(16000, 1.0).astype("<i2").tobytes())
        cmd = [
            sys.executable,
            str(ROOT / "tests/adapters/rtp_sender_proc.py"),
            "--port",
            str(drv.local_address[1]),
            "--payload",
            "l16",
            "--pt",
            "97",
            "--input",
            str(src),
            "--rate",
            "16000",
            "--bursts",
            str(bursts),
            "--gap",
            "0.5",
        ]
        proc = await asyncio.create_subprocess_exec(*cmd)
        try:
            await asyncio.wait_for(done.wait(), 30 + 2 * bursts)
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            drv.close()
    return rows


def _index(tau: float, ptime: float, n: int) -> int:
    """The packet that carries stream time ``tau``."""
    return min(max(int(np.floor(round(tau / ptime, 6))), 0), n - 1)


def _resample(x: np.ndarray, src: int, dst: int) -> bytes:
    from adapters.rtp.codec import resample

    return resample(x, src, dst)


def _stat(xs: list[float]) -> list[float]:
    return [float(np.mean(xs)), float(np.max(xs))] if xs else [0.0, 0.0]


INPUTS = [
    ("L16 16k passthrough, 20 ms packets", "l16", 0.020, 0.0, False),
    ("L16 16k, 60 ms packets", "l16", 0.060, 0.0, False),
    ("L16 16k, ffmpeg's 128 ms packets", "l16", 0.128, 0.0, False),
    ("L16 16k, 20 ms packets, 0-30 ms jitter", "l16", 0.020, 0.030, False),
    ("G.711 -> 16k channel (-> Opus), 20 ms", "pcmu", 0.020, 0.0, False),
    ("G.711 -> 16k channel, resample_lead", "pcmu", 0.020, 0.0, True),
    ("G.711 -> 16k channel, 128 ms packets", "pcmu", 0.128, 0.0, False),
]
OUTPUTS = [
    ("16k channel -> L16 16k passthrough", "l16", False),
    ("16k channel (Opus ->) -> G.711", "pcmu", False),
    ("16k channel -> G.711, resample_lead", "pcmu", True),
]


def measure(bursts: int) -> dict[str, Any]:
    return {
        "in": {label: run_input(n, p, j, bursts, lead) for label, n, p, j, lead in INPUTS},
        "out": {label: run_output(n, lead) for label, n, lead in OUTPUTS},
    }


def reference(bursts: int) -> dict[str, Any] | None:
    """The same measurement on git HEAD's adapters (see the module docstring)."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "HEAD", "adapters"], capture_output=True
        )
        if archive.returncode:
            return None
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        proc = subprocess.run(
            [sys.executable, __file__, "--tree", tmp, "--bursts", str(bursts), "--json"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode:
            print(proc.stderr[-2000:], file=sys.stderr)
            return None
        result: dict[str, Any] = json.loads(proc.stdout)
        return result


def ms(x: float) -> str:
    return f"{x * 1000:5.1f}"


def report(new: dict[str, Any], old: dict[str, Any] | None) -> None:
    def pair(get: Any, label: str, side: str) -> str:
        a = get(new[side][label])
        known = old is not None and not old[side].get(label, {"missing": True}).get("missing")
        b = get(old[side][label]) if old is not None and known else None
        return f"{a}" + (f" (HEAD {b})" if b is not None else "")

    print("INPUT (radio -> channel): mean/max ms; holds per frame, total per sample")
    for label, *_ in INPUTS:
        if new["in"][label].get("missing"):
            continue
        print(f"  {label}")
        for b in range(len(new["in"][label]["bursts"])):
            if b not in (0, len(new["in"][label]["bursts"]) - 1):
                continue

            def g(key: str, b: int = b) -> Any:
                return lambda r: "/".join(ms(v) for v in r["bursts"][b][key])

            tag = "burst 1" if b == 0 else f"burst {b + 1}"
            print(
                f"    {tag}: resampler lag "
                + pair(lambda r, b=b: ms(r["bursts"][b]["lag"]), label, "in")
                + " | resampler hold "
                + pair(g("hold_rs"), label, "in")
                + " | re-timer hold "
                + pair(g("hold_rt"), label, "in")
                + " | total "
                + pair(g("total"), label, "in")
                + " | key-up "
                + pair(lambda r, b=b: ms(r["bursts"][b]["keyup"]), label, "in")
                + " | concealed "
                + pair(lambda r, b=b: r["bursts"][b]["concealed"], label, "in")
            )
    print("OUTPUT (channel -> radio): mean/max ms per sample")
    for label, *_ in OUTPUTS:
        if new["out"][label].get("missing"):
            continue
        print(
            f"  {label}: resampler lag "
            + pair(lambda r: ms(r["lag"]) if "lag" in r else None, label, "out")
            + " | packetization + hold "
            + pair(
                lambda r: "/".join(ms(v) for v in r["pack"]) if "pack" in r else None, label, "out"
            )
            + " | key-up "
            + pair(lambda r: ms(r["keyup"]) if "keyup" in r else None, label, "out")
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bursts", type=int, default=3)
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--live", type=int, default=0, help="bursts over real UDP (0: none)")
    ap.add_argument("--tree", help=argparse.SUPPRESS)  # run on another adapters/ tree
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.tree:
        sys.path.insert(0, str(ROOT))
        sys.path.insert(0, args.tree)
    new = measure(args.bursts)
    if args.json:
        print(json.dumps(new))
        return
    old = None if args.no_reference else reference(args.bursts)
    report(new, old)
    if args.live:
        import asyncio

        print(f"LIVE: L16 20 ms packets over loopback UDP from another process, {args.live} bursts")
        for i, r in enumerate(asyncio.run(_live(args.live))):
            print(
                f"  burst {i + 1}: margin {ms(r['margin'])} ms, key-up {ms(r['keyup'])} ms, "
                f"stretched {r['stretched']:.0f}, concealed {r['concealed']:.0f} (3: the end's)"
            )


if __name__ == "__main__":
    main()
