"""Simulated radio equipment for the demo: a radio that keys up and talks real RTP (G.711
μ-law) into a gateway's input port, and a "speaker" that receives a gateway's RTP output.

These stand in for an agency's radio-over-IP gateway hardware; the Crossband side of the
link (RTP adapter, endpoint, relay) is the real code.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field

import numpy as np

from adapters.rtp.codec import ulaw_decode
from adapters.rtp.config import PayloadFormat, RtpSenderConfig, RtpTransportConfig
from adapters.rtp.driver import RtpSenderDriver
from adapters.rtp.packet import RtpParseError, parse_rtp
from adapters.rtp.stream import RtpSender

RATE = 8000
FRAME = RATE // 50  # 20 ms


def voice_like(seconds: float, pitch: float, seed: int = 0, rate: int = RATE) -> np.ndarray:
    """A voiced, syllable-modulated harmonic signal (not speech, but shaped like it), at
    ``rate``: the same signal at any rate (but for its faint noise) for a given seed."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    f0 = pitch * (1 + 0.08 * np.sin(2 * math.pi * 0.7 * t))
    phase = 2 * math.pi * np.cumsum(f0) / rate
    tone = sum(np.sin(k * phase) / k for k in range(1, 6))
    syllables = 0.55 + 0.45 * np.sin(2 * math.pi * 3.1 * t + rng.uniform(0, 6.28))
    signal = 0.28 * tone * syllables + 0.01 * rng.standard_normal(n)
    out: np.ndarray = (np.clip(signal, -1, 1) * 32767 * 0.6).astype("<i2")
    return out


def speech_like(seconds: float, pitch: float, seed: int = 0, rate: int = RATE) -> np.ndarray:
    """A voiced, syllabic signal shaped like a vowel: harmonics of a gliding ``pitch`` from the
    2nd up, weighted by two formants (600 and 1500 Hz). Speech codecs (Opus in VoIP mode)
    keep its waveform, not only its sound, so what comes out can be correlated with it."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = pitch * (1 + 0.08 * np.sin(2 * math.pi * 0.7 * t))
    phase = 2 * math.pi * np.cumsum(f0) / rate
    voiced = np.zeros(len(t))
    for k in range(2, int(3800 // pitch) + 1):  # below 4 kHz: the same signal at 8 kHz
        f = pitch * k
        voiced += np.sin(k * phase) * (
            np.exp(-((f - 600) ** 2) / 2e5) + 0.5 * np.exp(-((f - 1500) ** 2) / 4e5)
        )
    syllables = 0.55 + 0.45 * np.sin(2 * math.pi * 3.1 * t + rng.uniform(0, 6.28))
    signal = voiced * syllables
    out: np.ndarray = (signal / np.abs(signal).max() * 12000).astype("<i2")
    return out


class SimRadio:
    """A radio gateway's transmit side: PCM → RTP PCMU to ``host:port``, paced at 20 ms."""

    def __init__(self, name: str, host: str, port: int, pitch: float) -> None:
        self.name = name
        self.pitch = pitch
        self._driver = RtpSenderDriver(
            RtpSender(RtpSenderConfig(PayloadFormat.of("pcmu"), rate=RATE, rtcp_interval=None)),
            RtpTransportConfig(port=port, host=host),
        )
        self.packets_sent = 0

    async def start(self) -> None:
        await self._driver.start()

    async def talk(
        self, seconds: float, stop: asyncio.Event | None = None, voice: np.ndarray | None = None
    ) -> int:
        """Key up, talk for ``seconds`` (or until ``stop``), key down. Returns frames sent.
        ``voice``: what to say (PCM at :data:`RATE`; default this radio's own voice)."""
        pcm = voice_like(seconds, self.pitch, seed=int(self.pitch)) if voice is None else voice
        self._driver.start_burst()
        start = time.monotonic()
        frames = 0
        for i in range(0, len(pcm) - FRAME + 1, FRAME):
            if stop is not None and stop.is_set():
                break
            self._driver.send_audio(pcm[i : i + FRAME].tobytes())
            frames += 1
            delay = start + frames * 0.02 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        self._driver.end_burst()
        self.packets_sent += frames
        return frames

    def close(self) -> None:
        self._driver.close()


@dataclass
class Speaker(asyncio.DatagramProtocol):
    """A radio gateway's receive side: counts RTP packets and the audio energy in them."""

    name: str
    packets: int = 0
    voiced: int = 0  # packets whose audio is clearly not silence
    malformed: int = 0
    last: float = 0.0
    recording: bytearray | None = None  # the decoded audio, while somebody listens closely
    transport: asyncio.DatagramTransport | None = field(default=None, repr=False)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            pkt = parse_rtp(data)
        except RtpParseError:
            self.malformed += 1
            return
        if pkt.payload_type != 0:
            return  # RTCP or other payloads
        self.packets += 1
        self.last = time.monotonic()
        raw = ulaw_decode(pkt.payload)
        if self.recording is not None:
            self.recording += raw
        pcm = np.frombuffer(raw, dtype="<i2").astype(np.float64)
        if pcm.size and float(np.sqrt(np.mean(pcm**2))) > 300.0:
            self.voiced += 1

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_speaker(name: str) -> Speaker:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_datagram_endpoint(
        lambda: Speaker(name), local_addr=("127.0.0.1", 0)
    )
    return proto
