"""The incident the demo plays, step by step, each step ending in checks.

1. A US radio call is heard on the Canadian side and by Mexico's observer (verified seal).
2. Two Canadian positions key up at the same moment: one talks, the other waits.
3. The vessel's emergency preempts a US talker; every position sees the emergency.
4. Dispatch messages cross the border and reach the observer.
4b. The RCMP's Mumble channel and XMPP room take part, when their servers are installed
   (:mod:`bridge.demo.native`).
5. A compromised gateway is removed by a new commit and hears nothing after it.
6. The vessel loses its link; messages wait at the relay; it catches up once, in order.

Every wait has a deadline and its outcome is checked: nothing is assumed to have arrived
because some time has passed.
"""

from __future__ import annotations

import asyncio
import time

from bridge.audio.sender import TalkSender
from bridge.demo.cast import CH, OBSERVER
from bridge.demo.native import Native
from bridge.demo.radio import RATE, voice_like
from bridge.demo.world import World
from bridge.endpoint import events as ev

VESSEL = "ca-rcmp/vessel-shiprider-1"
MISSED = (
    "Vessel 1: suspect craft stopped at Boundary Bay",
    "Vessel 1: hold for CBP boarding team",
    "Vessel 1: RCMP air unit overhead",
)


class Incident(Native):
    vessel_back_at = 0  # index of the vessel's first event after it reconnected

    async def script(self, world: World) -> None:
        await self.open_channel(world)
        await self.radio_call_across_the_border()
        await self.contention()
        await self.emergency()
        await self.dispatch_messages()
        await self.native_channels()
        await self.remove_compromised_gateway(world)
        await self.vessel_offline(world)

    async def open_channel(self, world: World) -> None:
        members = [(world.devices[d].cred, pos.role) for d, pos in self.cast.items()]
        self.say(
            "CHAN",
            f"us-cbp/dispatch-blaine opens incident channel {CH} under "
            f"'{world.agreement.name}' with {len(members)} members",
        )
        await self.endpoints["us-cbp/dispatch-blaine"].commit(
            CH,
            members,
            agreement=world.agreement,
            name="Shiprider incident 4471",
            expires=int(time.time()) + 6 * 3600,
        )
        got = {d: await self.wait_for(d, ev.ChannelUpdated, 0, epoch=1) for d in self.endpoints}
        self.check("every member verified epoch 1 itself", all(got.values()))
        await self.pause(1.0)

    async def radio_call_across_the_border(self) -> None:
        mark = self.mark(OBSERVER)
        before = {d: s.voiced for d, s in self.speakers.items()}

        def heard() -> dict[str, int]:
            return {d: s.voiced - before[d] for d, s in self.speakers.items()}

        await self.radio_call("us-cbp/gw-blaine", 3.0)
        await self.until(
            lambda: heard()["ca-rcmp/gw-pacific"] > 100 and heard()[VESSEL] > 100, timeout=5
        )
        self.check(
            "US radio call reached the Canadian gateway and the vessel as audio",
            heard()["ca-rcmp/gw-pacific"] > 100 and heard()[VESSEL] > 100,
            f"voiced RTP packets out: {heard()}",
        )
        seals = await self.wait_for(OBSERVER, ev.BurstSealed, mark, sender="us-cbp/gw-blaine")
        self.check(
            "Mexican observer heard it with a verified burst seal",
            bool(seals) and seals[0].verified,
            f"{seals[0].received} of {seals[0].frames} sealed frames" if seals else "no seal",
        )
        await self.pause(1.0)

    async def contention(self) -> None:
        talkers = ("ca-rcmp/gw-pacific", VESSEL)
        marks = {d: self.mark(d) for d in self.endpoints}
        await asyncio.gather(*(self.radio_call(d, 2.0) for d in talkers))
        grants = await self.wait_for(OBSERVER, ev.FloorEvent, marks[OBSERVER], event="granted")
        waited = [
            e
            for d in talkers
            for e in self.events(d, ev.FloorEvent, marks[d])
            if e.device == d and e.event in ("queued", "denied")
        ]
        self.check(
            "simultaneous key-up: one talker at a time, the other waited",
            len(waited) >= 1 and bool(grants) and grants[0].device in talkers,
            f"granted {[e.device for e in grants]}, waited {[e.device for e in waited]}",
        )
        await self.pause(1.0)

    async def emergency(self) -> None:
        marks = {d: self.mark(d) for d in self.endpoints}
        us_call = asyncio.create_task(self.radio_call("us-cbp/gw-blaine", 4.0))
        await asyncio.sleep(1.0)  # the US talks for a moment first
        self.say("EMERG", f"{VESSEL}: crew presses EMERGENCY on the console")
        sender = TalkSender(self.endpoints[VESSEL], CH, RATE)
        sender.start("emergency")
        pcm = voice_like(2.0, 150.0, seed=7)
        for i in range(0, len(pcm) - 160 + 1, 160):
            sender.send(pcm[i : i + 160].tobytes())
            await asyncio.sleep(0.02)  # a microphone's pace: one 20 ms frame at a time
        await sender.aclose()
        self.tally.bursts += 1
        await us_call
        revoked = await self.wait_for(
            "us-cbp/gw-blaine",
            ev.FloorEvent,
            marks["us-cbp/gw-blaine"],
            event="revoked",
            device="us-cbp/gw-blaine",
        )
        self.check(
            "the emergency preempted the US talker",
            bool(revoked) and revoked[0].reason == "preempted",
        )
        seen = {
            d: bool(await self.wait_for(d, ev.Emergency, marks[d], active=True))
            for d in self.endpoints
        }
        self.check(
            "every position saw the channel's emergency state", all(seen.values()), str(seen)
        )
        await self.endpoints["ca-rcmp/dispatch-surrey"].clear_emergency(CH)
        self.say("EMERG", "ca-rcmp/dispatch-surrey clears the emergency")
        await self.pause(1.0)

    async def dispatch_messages(self) -> None:
        mark = self.mark(OBSERVER)
        await self.message(
            "us-cbp/dispatch-blaine",
            "Suspect vessel northbound, 2 nm west of Point Roberts; Shiprider 1 intercept",
        )
        await self.message("ca-rcmp/dispatch-surrey", "Copy. RCMP air unit en route")
        got = await self.wait_for(OBSERVER, ev.Message, mark, count=2)
        self.check(
            "both dispatch messages reached the observer, signatures verified", len(got) == 2
        )
        await self.pause(1.0)

    async def remove_compromised_gateway(self, world: World) -> None:
        gone = "ca-rcmp/gw-pacific"
        marks = {d: self.mark(d) for d in self.endpoints}
        keep = [(world.devices[d].cred, pos.role) for d, pos in self.cast.items() if d != gone]
        self.say("CHAN", f"us-cbp/dispatch-blaine removes {gone} (reported stolen)")
        await self.endpoints["us-cbp/dispatch-blaine"].commit(CH, keep)
        removed = await self.wait_for(gone, ev.ChannelUpdated, marks[gone], epoch=2)
        self.check("the removed gateway learned it is out", bool(removed) and removed[0].removed)
        for d in (VESSEL, OBSERVER):
            await self.wait_for(d, ev.ChannelUpdated, marks[d], epoch=2)
        undecryptable = self.endpoints[gone].stats["voice_undecryptable"]
        voiced = self.speakers[gone].voiced
        mark_obs = self.mark(OBSERVER)
        await self.radio_call("us-cbp/gw-blaine", 2.0)
        # The burst's seal reaching the observer means the burst reached everybody it went to.
        await self.wait_for(OBSERVER, ev.BurstSealed, mark_obs, sender="us-cbp/gw-blaine")
        heard_obs = self.events(OBSERVER, ev.Voice, mark_obs)
        self.check(
            "after removal the others still hear, the removed gateway hears nothing",
            len(heard_obs) > 50
            and not self.events(gone, ev.Voice, marks[gone])
            and self.speakers[gone].voiced == voiced,
            f"observer frames {len(heard_obs)}, removed gateway: undecryptable "
            f"{self.endpoints[gone].stats['voice_undecryptable'] - undecryptable}",
        )
        await self.pause(1.0)

    async def vessel_offline(self, world: World) -> None:
        self.say("LINK", f"{VESSEL} loses its satellite link")
        await self.disconnect(VESSEL)
        for text in MISSED:
            sender = "ca-rcmp/dispatch-surrey" if "RCMP" in text else "us-cbp/dispatch-blaine"
            await self.message(sender, text)
        await self.pause(1.5)
        self.say("LINK", f"{VESSEL} link restored; reconnecting")
        self.vessel_back_at = self.mark(VESSEL)
        assert self.relay is not None
        await self.connect(world.devices[VESSEL], world, self.relay.url)
        await self.wait_for(VESSEL, ev.Message, self.vessel_back_at, len(MISSED), timeout=15)
        texts = self.missed_received()
        self.check(
            "the vessel got every missed message once, in order",
            texts == list(MISSED),
            f"{len(texts)} of {len(MISSED)}",
        )
        await self.pause(1.0)

    def missed_received(self) -> list[str]:
        """The missed texts the vessel received since it reconnected, in arrival order."""
        got = self.events(VESSEL, ev.Message, self.vessel_back_at)
        texts = [m.body.decode(errors="replace").rsplit(" [", 1)[0] for m in got]
        return [t for t in texts if t in MISSED]
