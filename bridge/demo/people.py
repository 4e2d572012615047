"""The people on the RCMP's own systems in the demo, and how their audio is compared.

* :class:`MumbleUser`: a constable on the RCMP Mumble server, a second connection of our Mumble
  client (not the bridge's): speaks a known voiced signal as 20 ms Opus packets and keeps what
  the bridge user speaks into the channel.
* :class:`XmppOfficer`: an officer in the RCMP XMPP room, a plain ``slixmpp`` client (nobody
  here wrote its protocol side); keeps every live room message.
* :func:`make_channel`: SuperUser creates the Mumble channel the bridge and the constable join.
* :func:`correlation`: how closely a received signal carries a known one (best alignment,
  normalised cross-correlation by FFT).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np
import slixmpp

from adapters.codecs.opus import OpusDecoder, OpusEncoder
from adapters.mumble.client import ClientConfig, Joined, MumbleEvent, VoiceReceived
from adapters.mumble.driver import MumbleDriver, ServerConfig


async def _until(check: Callable[[], object], timeout: float) -> bool:
    """Whether ``check()`` came true within ``timeout`` s (polled every 10 ms)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def make_channel(server: ServerConfig, password: str, name: str) -> None:
    """Log in as SuperUser and create the permanent channel ``name`` under the root."""
    admin = MumbleDriver(server, ClientConfig("SuperUser", password=password), lambda e: None)
    await admin.start(10.0)
    try:
        admin.create_channel(name)
        client = admin.client
        if not await _until(lambda: client is not None and client.find_channel(name), 5.0):
            raise TimeoutError(f"murmurd did not create channel {name!r} within 5 s")
    finally:
        await admin.stop()


class MumbleUser:
    """A Mumble user in ``channel`` (see the module docstring)."""

    def __init__(self, server: ServerConfig, name: str, channel: str) -> None:
        self.name = name
        self.events: list[MumbleEvent] = []
        self.driver = MumbleDriver(server, ClientConfig(name, channel), self.events.append)

    async def join(self, timeout: float = 10.0) -> None:
        await self.driver.start(timeout)
        if not await _until(lambda: any(isinstance(e, Joined) for e in self.events), timeout):
            raise TimeoutError(f"{self.name} did not join the Mumble channel")

    def mark(self) -> int:
        return len(self.events)

    async def speak(self, pcm48: np.ndarray) -> int:
        """Speak 48 kHz PCM as 20 ms Opus packets, paced on the clock; packets sent."""
        encoder = OpusEncoder(48000, 40000, fec=False)
        frames = [pcm48[i : i + 960] for i in range(0, len(pcm48) - 960 + 1, 960)]
        loop = asyncio.get_running_loop()
        start, sent = loop.time(), 0
        for n, frame in enumerate(frames):
            await asyncio.sleep(max(0.0, start + n * 0.02 - loop.time()))
            sent += self.driver.send_voice(encoder.encode(frame.tobytes()), n == len(frames) - 1)
        return sent

    def voice(self, since: int) -> list[VoiceReceived]:
        return [e for e in self.events[since:] if isinstance(e, VoiceReceived)]

    def heard(self, since: int, rate: int) -> np.ndarray:
        """What others spoke into the channel since ``since``, decoded at ``rate``."""
        decoder = OpusDecoder(rate)
        pcm = b"".join(decoder.decode(v.opus) for v in self.voice(since) if v.opus)
        return np.frombuffer(pcm, dtype="<i2")

    async def leave(self) -> None:
        await self.driver.stop()


class XmppOfficer:
    """A person in an XMPP room through a plain slixmpp client (loopback, no TLS)."""

    def __init__(self, host: str, port: int, jid: str, password: str, room: str, nick: str):
        self.host, self.port, self.room, self.nick = host, port, room, nick
        c = slixmpp.ClientXMPP(f"{jid}/demo", password)
        c.register_plugin("xep_0045")
        c.enable_direct_tls = c.enable_starttls = False
        c.enable_plaintext = True
        c.plugin["feature_mechanisms"].unencrypted_plain = True
        c.add_event_handler("groupchat_message", self._on_message)
        self.client = c
        self.messages: list[tuple[str, str]] = []  # (nick, body) of live room messages
        self.arrived = asyncio.Event()

    def _on_message(self, msg: Any) -> None:
        delayed = msg.xml.find("{urn:xmpp:delay}delay") is not None
        if msg["from"].bare == self.room and msg["body"] and not delayed:
            self.messages.append((str(msg["from"].resource), str(msg["body"])))
            self.arrived.set()

    async def join(self, timeout: float = 10.0) -> None:
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def session_start(_: object) -> None:
            if not started.done():
                started.set_result(None)

        self.client.add_event_handler("session_start", session_start)
        self.client.connect(self.host, self.port)
        await asyncio.wait_for(started, timeout)
        muc = self.client.plugin["xep_0045"]
        await muc.join_muc_wait(slixmpp.JID(self.room), self.nick, maxstanzas=0, timeout=timeout)

    def say(self, body: str) -> None:
        self.client.send_message(mto=slixmpp.JID(self.room), mbody=body, mtype="groupchat")

    async def wait_for(self, match: Callable[[str, str], bool], timeout: float) -> list[str]:
        """Bodies of the room messages (nick, body) that ``match``, once there is one or
        ``timeout`` passed: the caller checks."""

        def found() -> list[str]:
            return [body for nick, body in self.messages if match(nick, body)]

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not found() and loop.time() < deadline:
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), deadline - loop.time())
        return found()

    async def leave(self) -> None:
        c = self.client
        c.cancel_connection_attempt()
        if c.transport is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(c.disconnect(wait=0.5), 2.0)
            c.abort()
        for name in list(c.scheduled_events):
            c.cancel_schedule(name)
        if c._run_out_filters is not None:
            c._run_out_filters.cancel()


def correlation(ref: np.ndarray, out: np.ndarray) -> float:
    """The normalised cross-correlation of ``ref`` and ``out`` at their best alignment
    (``out`` may hold more than ``ref``: silence before and after); 0.0 if either is empty."""
    a, b = ref.astype(np.float64), out.astype(np.float64)
    if not a.size or not b.size:
        return 0.0
    size = 1 << int(np.ceil(np.log2(a.size + b.size)))
    xc = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)
    best = 0.0
    for lag in np.argsort(xc)[-8:]:  # the highest raw peaks, normalised
        shift = int(lag) if lag < size // 2 else int(lag) - size
        x, y = a[max(0, -shift) :], b[max(0, shift) :]
        n = min(x.size, y.size)
        denom = float(np.sqrt(np.dot(x[:n], x[:n]) * np.dot(y[:n], y[:n])))
        if n and denom:
            best = max(best, float(np.dot(x[:n], y[:n])) / denom)
    return best


def window_correlations(ref: np.ndarray, out: np.ndarray, window: int = 8000 // 3) -> list[float]:
    """:func:`correlation` of each ``window`` samples of ``ref`` (1/3 s at 8 kHz: one of
    its syllables), each found in ``out`` on its own."""
    return [correlation(ref[o : o + window], out) for o in range(0, ref.size - window + 1, window)]
