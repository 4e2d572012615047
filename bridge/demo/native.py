"""The RCMP's own Mumble channel and XMPP room on the incident channel, when their servers are
installed (:mod:`bridge.demo.servers`); a plain line says so when one is not.

Each server gets a bridge device of its own (:data:`~bridge.demo.cast.NATIVE`): a real
:class:`~adapters.mumble.adapter.MumbleAdapter` / :class:`~adapters.xmpp.adapter.XmppAdapter`
bound to the incident channel through the generic gateway (``bridge.gateway``), exactly as
``crossband endpoint --config`` would run it. On the native side are a constable on Mumble
and an officer in the XMPP room (:mod:`bridge.demo.people`). The step checks, with deadlines:

* the constable's speech reaches the Mexican observer as a burst the bridge sealed (what the
  US radio played of it, and its correlation with what was said, are shown, not checked);
* a US radio call is heard in the Mumble channel: voiced audio about as long as the call
  (its correlation shown, not checked);
* the officer's post reaches US dispatch signed by the bridge device, and says so in its
  alias (``xmpp:<nick> via ca-rcmp/xmpp-surrey: …``); US dispatch's reply reaches the room.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import numpy as np

from adapters.errors import AdapterError
from adapters.mumble.adapter import MumbleAdapter
from adapters.mumble.client import ClientConfig
from adapters.mumble.config import MumbleConfig
from adapters.mumble.driver import ServerConfig
from adapters.mumble.proto import MumbleError
from adapters.xmpp.adapter import xmpp_adapters
from adapters.xmpp.mapping import RoomMapping, XmppConfig
from bridge.demo.cast import CH, MUMBLE_GW, NATIVE, OBSERVER, XMPP_GW
from bridge.demo.people import (
    MumbleUser,
    XmppOfficer,
    correlation,
    make_channel,
)
from bridge.demo.radio import RATE, speech_like
from bridge.demo.servers import MumbleServer, Unavailable, XmppServer
from bridge.demo.stage import Stage
from bridge.endpoint import events as ev
from bridge.endpoint.endpoint import Endpoint
from bridge.gateway import Binding, ChannelAudio, Gateway

MUMBLE_CHANNEL = "Shiprider 4471"
CONSTABLE = "Cst.Tremblay"
DOMAIN = "rcmp.example"
ROOM = f"shiprider-4471@rooms.{DOMAIN}"
OFFICER = "Cpl. Singh"
US_RADIO = "us-cbp/gw-blaine"
US_DISPATCH = "us-cbp/dispatch-blaine"
FAILED = (
    OSError,
    RuntimeError,
    TimeoutError,
    subprocess.SubprocessError,
    MumbleError,
    AdapterError,
)


class Native(Stage):
    """The stage with the RCMP's Mumble and XMPP servers, bridges and people on it."""

    murmur: MumbleServer | None = None
    prosody: XmppServer | None = None
    constable: MumbleUser | None = None
    officer: XmppOfficer | None = None

    @property
    def _native_dir(self) -> Path:
        path = self.dir / "native"
        path.mkdir(mode=0o700, exist_ok=True)
        return path

    async def start_native(self) -> None:
        """Start the installed servers side by side; join each bridge that came up to the cast."""
        await asyncio.gather(self._start_mumble(), self._start_xmpp())

    async def _start_mumble(self) -> None:
        try:
            server = self.murmur = MumbleServer()
        except Unavailable as exc:
            self.line(f"demo: Mumble channel skipped: {exc}")
            return
        try:
            await asyncio.to_thread(server.start)
            admin = ServerConfig("127.0.0.1", server.port, fingerprint=server.fingerprint)
            await make_channel(admin, server.superuser_password, MUMBLE_CHANNEL)
        except FAILED as exc:
            server.stop()
            self.check("the RCMP's Mumble server started", False, f"{type(exc).__name__}: {exc}")
            return
        self.cast[MUMBLE_GW] = NATIVE[MUMBLE_GW]
        where = f"127.0.0.1:{server.port}, channel '{MUMBLE_CHANNEL}'"
        self.say("MUMBLE", f"ca-rcmp: Mumble server (murmurd) on {where}, certificate pinned")

    async def _start_xmpp(self) -> None:
        try:
            server = self.prosody = XmppServer(
                self._native_dir / "prosody", DOMAIN, ("bridge", "officer")
            )
        except Unavailable as exc:
            self.line(f"demo: XMPP room skipped: {exc}")
            return
        try:
            await asyncio.to_thread(server.start)
        except FAILED as exc:
            server.stop()
            self.check("the RCMP's XMPP server started", False, f"{type(exc).__name__}: {exc}")
            return
        self.cast[XMPP_GW] = NATIVE[XMPP_GW]
        self.say("XMPP", f"ca-rcmp: XMPP server (prosody) on 127.0.0.1:{server.port}, room {ROOM}")

    async def _attach_gateway(self, name: str, ep: Endpoint) -> None:
        if name == MUMBLE_GW:
            await self._attach_mumble(ep)
        elif name == XMPP_GW:
            await self._attach_xmpp(ep)
        else:
            await super()._attach_gateway(name, ep)

    async def _attach_mumble(self, ep: Endpoint) -> None:
        assert self.murmur is not None
        port, pin = self.murmur.port, self.murmur.fingerprint
        keys = self._native_dir
        server = ServerConfig(
            "127.0.0.1",
            port,
            fingerprint=pin,
            cert_file=str(keys / "mumble-bridge.crt"),
            key_file=str(keys / "mumble-bridge.key"),
        )
        client = ClientConfig("crossband-rcmp", MUMBLE_CHANNEL)
        adapter = MumbleAdapter(MumbleConfig(server, client, channel=CH, rate=16000))
        gw = Gateway(ep, [Binding(CH, adapter, ChannelAudio())])
        await gw.start(pump_events=False)
        self.gateways[MUMBLE_GW] = gw
        if self.constable is None:
            user = MumbleUser(
                ServerConfig("127.0.0.1", port, fingerprint=pin), CONSTABLE, MUMBLE_CHANNEL
            )
            await user.join()
            self.constable = user
        self.say(
            "MUMBLE",
            f"{MUMBLE_GW}: bridge user in '{MUMBLE_CHANNEL}' "
            f"<-> {CH}; {CONSTABLE} is in the channel",
        )

    async def _attach_xmpp(self, ep: Endpoint) -> None:
        server = self.prosody
        assert server is not None
        password_file = self._native_dir / "xmpp-bridge.pass"
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(server.passwords["bridge"] + "\n")
        config = XmppConfig(
            "127.0.0.1",
            server.port,
            server.jid("bridge"),
            str(password_file),
            (RoomMapping(ROOM, "crossband", CH),),
            tls="none",
        )
        ((_, adapter),) = xmpp_adapters(config)
        gw = Gateway(ep, [Binding(CH, adapter)])
        await gw.start(pump_events=False)
        self.gateways[XMPP_GW] = gw
        if self.officer is None:
            officer = XmppOfficer(
                "127.0.0.1",
                server.port,
                server.jid("officer"),
                server.passwords["officer"],
                ROOM,
                OFFICER,
            )
            await officer.join()
            self.officer = officer
        self.say("XMPP", f"{XMPP_GW}: joined {ROOM} <-> {CH}; {OFFICER} is in the room")

    # -- the step -------------------------------------------------------------------------------

    async def native_channels(self) -> None:
        """The RCMP's Mumble channel and XMPP room take part (each only if it is up)."""
        steps = []
        if self.constable is not None and MUMBLE_GW in self.gateways:
            steps.append(self._mumble_talk())
        if self.officer is not None and XMPP_GW in self.gateways:
            steps.append(self._xmpp_chat())
        if steps:
            await asyncio.gather(*steps)
            await self.pause(1.0)

    async def _mumble_talk(self) -> None:
        user, speaker = self.constable, self.speakers[US_RADIO]
        assert user is not None
        speaker.recording = bytearray()
        mark = self.mark(OBSERVER)
        self.say("MUMBLE", f"{CONSTABLE} talks in the RCMP Mumble channel (2.0 s of Opus)")
        await user.speak(speech_like(2.0, 170.0, seed=11, rate=48000))
        self.tally.bursts += 1
        seals = await self.wait_for(OBSERVER, ev.BurstSealed, mark, sender=MUMBLE_GW)
        self.check(
            f"{CONSTABLE}'s Mumble speech reached the Mexican observer, sealed by the bridge",
            bool(seals) and seals[0].verified and seals[0].frames >= 90,
            f"{seals[0].received} of {seals[0].frames} sealed frames" if seals else "no seal",
        )
        recording = speaker.recording
        await self.until(  # its playout (behind a jitter buffer) ended
            lambda: bool(recording) and time.monotonic() - speaker.last > 0.5, timeout=5
        )
        heard = np.frombuffer(bytes(speaker.recording), dtype="<i2")
        speaker.recording = None
        self.say(
            "MUMBLE",
            f"US radio played {heard.size / RATE:.1f} s of it; correlation "
            f"{correlation(speech_like(2.0, 170.0, seed=11), heard):.2f} (shown, not checked)",
        )

        since = user.mark()
        voice = speech_like(2.0, self.radios[US_RADIO].pitch, seed=12)
        await self.radio_call(US_RADIO, 2.0, voice)
        await self.until(lambda: any(v.last for v in user.voice(since)), timeout=5)
        self._carried(
            "a US radio call was heard in the RCMP Mumble channel", voice, user.heard(since, RATE)
        )

    def _carried(self, name: str, ref: np.ndarray, heard: np.ndarray) -> None:
        """Check, in the style of the demo's other audio checks, that ``heard`` is voiced audio
        about as long as ``ref`` (20 ms frames with energy). The correlation with ``ref`` is
        shown, not checked: through two Opus generations and two jitter buffers it does not
        reliably reach 0.8 here (tests/adapters/mumble checks it end to end)."""
        frames = heard[: heard.size // 160 * 160].reshape(-1, 160).astype(np.float64)
        voiced = int(np.sum(np.sqrt(np.mean(frames**2, axis=1)) > 300.0)) if frames.size else 0
        expected = ref.size // 160
        corr = correlation(ref, heard)
        self.check(
            name,
            voiced >= 0.8 * expected,
            f"{voiced} of {expected} 20 ms frames voiced, {heard.size / RATE:.1f} s heard; "
            f"correlation {corr:.2f} (shown, not checked)",
        )

    async def _xmpp_chat(self) -> None:
        officer = self.officer
        assert officer is not None
        mark = self.mark(US_DISPATCH)
        text = "Marine unit 12 has eyes on the suspect craft"
        canary = self.canary()
        self.say("XMPP", f"{OFFICER} posts in the RCMP room: {text!r}")
        officer.say(f"{text} [{canary}]")
        self.tally.messages_sent += 1
        alias = f"xmpp:{OFFICER} via {XMPP_GW}: "
        got = await self.wait_for(US_DISPATCH, ev.Message, mark, sender=XMPP_GW)
        bodies = [m.body.decode(errors="replace") for m in got]
        self.check(
            "the XMPP officer's post reached US dispatch, signed by the bridge device",
            any(b == f"{alias}{text} [{canary}]" for b in bodies),
            repr(bodies[0].rsplit(" [", 1)[0]) if bodies else "nothing arrived",
        )
        reply = "Copy marine unit 12, CBP boarding team 5 minutes out"
        await self.message(US_DISPATCH, reply)
        back = await officer.wait_for(
            lambda _nick, body: body.startswith(f"[{US_DISPATCH}] {reply}"), timeout=10
        )
        self.check(
            "US dispatch's reply reached the XMPP room",
            len(back) == 1,
            f"{len(back)} in the room as {back[0].rsplit(' [', 1)[0]!r}" if back else "none",
        )

    async def close(self) -> None:
        try:
            await super().close()
            for person in (self.constable, self.officer):
                if person is not None:
                    await person.leave()
        finally:
            self.stop_servers()

    def stop_servers(self) -> None:
        """Stop both servers (idempotent; also the last resort of :func:`bridge.demo.main`)."""
        for server in (self.murmur, self.prosody):
            if server is not None:
                server.stop()
