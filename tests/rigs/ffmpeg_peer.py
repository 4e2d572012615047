"""Debian's ffmpeg as the radio side: a real RTP sender and a real RTP receiver.

**Sender** (:class:`FfmpegSender`): a WAV file sent as PCMU, PCMA or L16 RTP to
``127.0.0.1:port``. With ``ptime_ms`` set, each packet carries exactly that much audio
(``asetnsamples``) and is sent when it is due (``arealtime``), like a gateway or a phone;
with ``ptime_ms=None`` ffmpeg packetizes as it does by default (``-re``: blocks of
~128-256 ms split at the packet size limit and sent back to back, the clumps of issue 8).
Payload type, SSRC and first sequence number can be chosen; the local RTP/RTCP ports are a
free pair picked here (ffmpeg's own pick retries noisily when ports are busy). ffmpeg sends
RTCP sender reports to ``port + 1``; pass ``rtcp=False`` when that port is not the
receiver's (a proxy or a gateway input in between). ``wrap`` runs it inside something else,
e.g. a test's network namespace (``wrap=ns.argv``, :mod:`tests.rigs.netns`).

**Receiver** (:class:`FfmpegReceiver`): an SDP file (:func:`sdp`) naming ``127.0.0.1:port``
→ ffmpeg's RTP demuxer, with its jitter/reorder buffer → a 16-bit WAV. By default the gaps
in the RTP timestamps are filled with silence (``aresample=async=1`` with hard compensation
from 5 ms), so a lost packet keeps its place in time and the output aligns with the input.
:meth:`FfmpegReceiver.wait_for_audio` waits (with a deadline) until ffmpeg reports that much
output; :meth:`FfmpegReceiver.stop` ends the stream with an RTCP BYE (RFC 3550 §6.6) to its
RTCP port, on which ffmpeg's SDP input reports end of file and finishes the WAV. (A SIGINT
does not do it: once the stream runs, ffmpeg checks for one only between packets, and a
second SIGINT aborts the WAV.)

**Failure signals**: both peers collect ffmpeg's stderr; :attr:`PeerResult.disorder` holds
the lines a receiver prints when a stream breaks its assumptions ("dropping old packet
received too late", "bad cseq", "Non-monotonous DTS", "DTS ... invalid dropping");
:attr:`PeerResult.missed` counts the RTP packets it reported missing ("RTP: missed N
packets": loss, or a sequence jump) and :attr:`PeerResult.waited` how often its reorder
buffer stalled for one ("max delay reached"): expected under loss, a fault without it.
"""

from __future__ import annotations

import asyncio
import re
import socket
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests.rigs.signals import Samples, read_wav
from tests.rigs.tools import require_tool

DISORDER = (
    "dropping old packet",
    "bad cseq",
    "Non-monotonous DTS",
    "Non-monotonic DTS",
    "non monotonically increasing dts",
    "invalid dropping",  # "DTS/PTS <ts>, next:<ts> ... invalid dropping": a timestamp jump
    "Timestamps are unset",
    "discontinuity",
)
MISSED = re.compile(r"RTP: missed (\d+) packets")
WAITED = "max delay reached"  # the reorder buffer gave up waiting for a missing packet
BENIGN = ("Guessed Channel Layout",)
# A compound RTCP packet (RFC 3550 §6.1): an empty RR, then a BYE (§6.6), SSRC 0 in both.
# (ffmpeg ignores anything shorter than 12 bytes, so a lone BYE would not do.)
RTCP_BYE = bytes([0x80, 201, 0, 1, 0, 0, 0, 0, 0x81, 203, 0, 1, 0, 0, 0, 0])


@dataclass(frozen=True)
class Codec:
    name: str  # SDP encoding name
    ffmpeg: str  # ffmpeg encoder/decoder
    rate: int
    payload_type: int
    bytes_per_sample: int


CODECS = {
    "pcmu": Codec("PCMU", "pcm_mulaw", 8000, 0, 1),
    "pcma": Codec("PCMA", "pcm_alaw", 8000, 8, 1),
    "l16": Codec("L16", "pcm_s16be", 16000, 97, 2),
}


@dataclass
class PeerResult:
    returncode: int | None
    stderr: list[str] = field(default_factory=list)

    @property
    def disorder(self) -> list[str]:
        return [line for line in self.stderr if any(m in line for m in DISORDER)]

    @property
    def missed(self) -> int:
        return sum(int(m.group(1)) for line in self.stderr if (m := MISSED.search(line)))

    @property
    def waited(self) -> int:
        """How often the receiver held the stream waiting for a packet that never came."""
        return sum(WAITED in line for line in self.stderr)

    @property
    def warnings(self) -> list[str]:
        return [line for line in self.stderr if line and not any(b in line for b in BENIGN)]


def free_port_pair(host: str = "127.0.0.1") -> int:
    """An even UDP port ``p`` with ``p`` and ``p + 1`` free on ``host`` (RTP and RTCP)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((host, 0))
            port = int(probe.getsockname()[1]) & ~1
        if port < 1024 or port >= 65534:
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a:
                a.bind((host, port))
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
                    b.bind((host, port + 1))
        except OSError:
            continue
        return port
    raise OSError("no free UDP port pair on 127.0.0.1")


def sdp(codec: Codec, port: int, host: str = "127.0.0.1", payload_type: int | None = None) -> str:
    """A minimal RFC 4566 session description: one audio stream of ``codec`` at host:port."""
    pt = codec.payload_type if payload_type is None else payload_type
    return (
        "v=0\r\n"
        f"o=- 0 0 IN IP4 {host}\r\n"
        "s=crossband radio rig\r\n"
        f"c=IN IP4 {host}\r\n"
        "t=0 0\r\n"
        f"m=audio {port} RTP/AVP {pt}\r\n"
        f"a=rtpmap:{pt} {codec.name}/{codec.rate}/1\r\n"
    )


class _Process:
    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.stderr: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    async def _spawn(self, argv: list[str], progress: bool = False) -> None:
        creating = asyncio.ensure_future(
            asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if progress else asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        )
        try:
            # Shielded: a cancellation inside asyncio's process creation can wait forever
            # for the child (seen on 3.11 with several children starting at once).
            self.proc = await asyncio.shield(creating)
        except asyncio.CancelledError:
            self.proc = await creating
            await self.close()
            raise
        self._reader = asyncio.create_task(self._read_stderr())

    async def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for raw in self.proc.stderr:
            self.stderr.append(raw.decode(errors="replace").rstrip())

    async def wait(self, timeout: float) -> PeerResult:
        """Wait for ffmpeg to exit by itself (TimeoutError after ``timeout`` seconds)."""
        assert self.proc is not None
        await asyncio.wait_for(self.proc.wait(), timeout)
        return await self._result()

    async def _result(self) -> PeerResult:
        assert self.proc is not None
        if self._reader is not None:
            await self._reader
        return PeerResult(self.proc.returncode, list(self.stderr))

    async def close(self) -> None:
        """Kill ffmpeg if it still runs (for ``finally`` blocks)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await self._reader


class FfmpegSender(_Process):
    def __init__(
        self,
        wav: Path,
        port: int,
        codec: Codec,
        *,
        ptime_ms: int | None = 20,
        host: str = "127.0.0.1",
        payload_type: int | None = None,
        ssrc: int | None = None,
        seq: int | None = None,
        rtcp: bool = True,
        wrap: Callable[[list[str]], list[str]] | None = None,
    ) -> None:
        super().__init__()
        self.wrap = wrap
        self.wav, self.port, self.codec, self.host = wav, port, codec, host
        self.ptime_ms, self.payload_type, self.ssrc, self.seq = ptime_ms, payload_type, ssrc, seq
        self.rtcp = rtcp

    def argv(self, ffmpeg: str = "ffmpeg") -> list[str]:
        c = self.codec
        args = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "warning"]
        payload = 0
        if self.ptime_ms is None:
            args += ["-re", "-i", str(self.wav), "-af", f"aresample={c.rate}"]
        else:
            samples = c.rate * self.ptime_ms // 1000
            payload = samples * c.bytes_per_sample
            args += ["-i", str(self.wav)]
            args += ["-af", f"aresample={c.rate},asetnsamples=n={samples}:p=0,arealtime"]
        args += ["-ac", "1", "-ar", str(c.rate), "-c:a", c.ffmpeg, "-f", "rtp"]
        pt = c.payload_type if self.payload_type is None else self.payload_type
        args += ["-payload_type", str(pt)]
        if not self.rtcp:  # RTCP goes to port + 1: off when that is not the receiver's
            args += ["-rtpflags", "skip_rtcp"]
        if self.ssrc is not None:
            args += ["-ssrc", str(self.ssrc - (1 << 32) if self.ssrc >= 1 << 31 else self.ssrc)]
        if self.seq is not None:
            args += ["-seq", str(self.seq)]
        local = free_port_pair()
        query = f"localrtpport={local}&localrtcpport={local + 1}"
        if self.ptime_ms is not None:  # room for one whole packet (ffmpeg's default: 1472)
            query += f"&pkt_size={max(1472, payload + 12)}"
        return [*args, f"rtp://{self.host}:{self.port}?{query}"]

    async def start(self) -> FfmpegSender:
        argv = self.argv(require_tool("ffmpeg"))
        await self._spawn(self.wrap(argv) if self.wrap is not None else argv)
        return self


class FfmpegReceiver(_Process):
    def __init__(
        self,
        codec: Codec,
        out_wav: Path,
        *,
        port: int | None = None,
        payload_type: int | None = None,
        fill_gaps: bool = True,
    ) -> None:
        super().__init__()
        self.codec, self.out_wav = codec, out_wav
        self.port = port if port is not None else free_port_pair()
        self.payload_type, self.fill_gaps = payload_type, fill_gaps
        self.sdp_path = out_wav.with_suffix(".sdp")
        self.out_seconds = 0.0
        self._progress: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    def argv(self, ffmpeg: str = "ffmpeg") -> list[str]:
        args = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "warning"]
        args += ["-progress", "pipe:1", "-stats_period", "0.05"]
        args += ["-protocol_whitelist", "file,udp,rtp", "-localaddr", "127.0.0.1"]
        args += ["-listen_timeout", "86400", "-i", str(self.sdp_path)]
        if self.fill_gaps:
            args += ["-af", "aresample=async=1:min_hard_comp=0.005:first_pts=0"]
        return [*args, "-c:a", "pcm_s16le", "-y", str(self.out_wav)]

    async def start(self, timeout: float = 10.0) -> FfmpegReceiver:
        """Start ffmpeg and return once it holds its RTP port (ready to receive)."""
        ffmpeg = require_tool("ffmpeg")
        self.sdp_path.write_text(sdp(self.codec, self.port, payload_type=self.payload_type))
        await self._spawn(self.argv(ffmpeg), progress=True)
        self._progress = asyncio.create_task(self._read_progress())
        async with asyncio.timeout(timeout):
            while not _udp_bound(self.port):
                if self.proc is not None and self.proc.returncode is not None:
                    raise RuntimeError(f"ffmpeg receiver exited: {self.stderr[-3:]}")
                await asyncio.sleep(0.02)
        return self

    async def _read_progress(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for raw in self.proc.stdout:
            key, _, value = raw.decode(errors="replace").strip().partition("=")
            if key == "out_time_us" and value.lstrip("-").isdigit():
                self.out_seconds = max(self.out_seconds, int(value) / 1e6)
                self._changed.set()

    async def wait_for_audio(self, seconds: float, timeout: float) -> None:
        """Until ffmpeg's reported output time reaches ``seconds``; TimeoutError after
        ``timeout``. ffmpeg reports the *start* of the last block written, so for a stream
        of D seconds in packets of P, wait for D - P."""
        async with asyncio.timeout(timeout):
            while self.out_seconds < seconds:
                self._changed.clear()
                await self._changed.wait()

    async def stop(self, timeout: float = 10.0) -> tuple[PeerResult, Samples]:
        """End the stream with an RTCP BYE and return the result and the audio written.

        TimeoutError (after killing ffmpeg) if it does not finish within ``timeout``."""
        assert self.proc is not None
        if self.proc.returncode is None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(RTCP_BYE, ("127.0.0.1", self.port + 1))
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        finally:
            await self.close()
            if self._progress is not None:
                await self._progress
        result = await self._result()
        try:
            return result, read_wav(self.out_wav)[0]
        except (FileNotFoundError, EOFError, wave.Error):  # nothing was received
            return result, np.zeros(0)


def _udp_bound(port: int) -> bool:
    suffix = f":{port:04X}"
    with open("/proc/net/udp") as f:
        next(f)
        return any(line.split()[1].endswith(suffix) for line in f)
