"""A radio gateway in its own process: sends a PCM or WAV file as real RTP, paced in real time.

    python tests/adapters/rtp_sender_proc.py --port 5004 --payload pcmu --input speech.wav
    python tests/adapters/rtp_sender_proc.py --port 5004 --payload l16 --pt 97 \
        --input speech.s16 --rate 16000 --bursts 3 --gap 0.6 --log sent.json

The input is a mono 16-bit WAV, or raw little-endian PCM at ``--rate``. Each burst is the
whole file; bursts are separated by ``--gap`` seconds of no packets (so the receiver's hang
time ends them). Packets leave on an absolute 20 ms schedule (no drift). ``--log`` writes,
per burst, the monotonic send time of every packet (``time.monotonic`` is CLOCK_MONOTONIC,
shared by all processes of the host, so a benchmark can compare it with its own clock).
The RTP is built by the project's sans-IO :class:`RtpSender`; only the socket is here.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
import wave
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from adapters.rtp.config import PayloadFormat, RtpSenderConfig  # noqa: E402
from adapters.rtp.stream import RtpSender  # noqa: E402


def read_pcm(path: Path, rate: int) -> tuple[bytes, int]:
    if path.suffix.lower() == ".wav":
        with wave.open(str(path), "rb") as w:
            if w.getnchannels() != 1 or w.getsampwidth() != 2:
                raise SystemExit("WAV input must be mono 16-bit")
            return w.readframes(w.getnframes()), w.getframerate()
    return path.read_bytes(), rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--payload", choices=("pcmu", "pcma", "l16", "opus"), required=True)
    ap.add_argument("--pt", type=int, default=None, help="payload type (L16/Opus: required)")
    ap.add_argument("--clock-rate", type=int, default=16000, help="L16 RTP clock rate")
    ap.add_argument("--input", type=Path, required=True)
    ap.add_argument("--rate", type=int, default=16000, help="sample rate of raw PCM input")
    ap.add_argument("--bursts", type=int, default=1)
    ap.add_argument("--gap", type=float, default=0.6)
    ap.add_argument("--start-delay", type=float, default=0.0)
    ap.add_argument("--log", type=Path, default=None)
    args = ap.parse_args()

    pcm, rate = read_pcm(args.input, args.rate)
    fmt = PayloadFormat.of(args.payload, args.pt, args.clock_rate)
    sender = RtpSender(RtpSenderConfig(fmt, rate=rate, rtcp_interval=None))
    frame = 2 * rate // 50
    pcm += bytes(-len(pcm) % frame)
    frames = [pcm[i : i + frame] for i in range(0, len(pcm), frame)]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    log: list[list[float]] = []
    time.sleep(args.start_delay)
    try:
        for _ in range(args.bursts):
            sent: list[float] = []
            start = time.monotonic()
            sender.start_burst(time.time())
            for k, f in enumerate(frames):
                due = start + (k + 1) * 0.020  # a frame leaves once its 20 ms are complete
                time.sleep(max(due - time.monotonic(), 0.0))
                sender.send_audio(f, time.time())
                for _kind, data in sender.datagrams_to_send():
                    sock.sendto(data, (args.host, args.port))
                    sent.append(time.monotonic())
            sender.end_burst(time.time())
            log.append(sent)
            time.sleep(args.gap)
    finally:
        sock.close()
    if args.log is not None:
        args.log.write_text(json.dumps(log))


if __name__ == "__main__":
    main()
