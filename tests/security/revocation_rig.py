"""Revocation to cut-off on a live channel (issue 10), shared by
:mod:`tests.security.test_revocation_acts` and ``bench/revocation_cutoff.py``.

Three endpoints on the real relay (through the hostile-relay harness, passing everything): a
US dispatcher, a Canadian vessel that talks (a 20 ms frame at a time) and a US officer whose
device is then revoked. The revocation list is what ``crossband keys revoke`` writes (the real
CLI, from the agency's root key file), published through the relay by the dispatcher or by
the vessel. Every frame the vessel sends is tapped at the talker (what a relay operator sees)
and offered afterwards to the officer's own channel state, which still holds its old epoch
key: the cut-off is the send time of the first frame the officer cannot open, all later
frames being closed to it too, less the time the list was published."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bridge.endpoint import events as ev
from bridge.endpoint.endpoint import Endpoint
from crypto.agreement import RevocationList
from crypto.errors import CrossbandError, DecryptError
from crypto.keys import VerifyKey
from crypto.sframe import decode_header
from tests.bridge.harness import drain, next_event, until
from tests.security.pinned import endpoint_via
from tests.world import World, make_world

ROOT = Path(__file__).resolve().parents[2]
CH = "revoke-1"
DISPATCH, VESSEL, OFFICER = "us-cbp/dispatch-1", "ca-rcmp/vessel-1", "us-cbp/officer-1"
FRAME_S = 0.02
BOUND = 5.0  # s: from publishing the list to the revoked device reading nothing new
AFTER = 15  # frames the vessel still sends once the cut is seen (all must stay closed)


def revoke_world() -> World:
    w = make_world(now=int(time.time()))
    w.device("us-cbp", "dispatch-1", ("dispatcher", "member"))
    w.device("ca-rcmp", "vessel-1", ("member",))
    w.device("us-cbp", "officer-1", ("member",))
    return w


@dataclass
class Cutoff:
    seconds: float  # publish -> first frame the officer cannot open
    before: int  # frames sent before publishing (the officer opened them all)
    after: int  # frames from the cut on (the officer opened none)
    dispatcher_heard: int  # vessel frames the dispatcher decrypted on the new epoch


def revoke_with_cli(world: World, tmp: Path, device: str) -> RevocationList:
    """``crossband keys revoke`` over the agency's root key file: the list it writes."""
    keys = tmp / "world"
    if not (keys / "keys").exists():
        world.save(keys)
    out = tmp / "us-cbp.crl"
    serial = world.devices[device].cred.serial
    root = keys / "keys" / "us-cbp.root.key"
    cli = "import sys; from bridge.cli.main import main; sys.exit(main())"
    cmd = [sys.executable, "-c", cli, "keys", "revoke", "--root", str(root)]
    cmd += ["--serial", str(serial), "--out", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60, cwd=ROOT)
    return RevocationList.decode(out.read_bytes())


class Talker:
    """The vessel holds the floor and sends a frame every 20 ms; each one is tapped."""

    def __init__(self, ep: Endpoint) -> None:
        self.ep = ep
        self.frames: list[tuple[float, bytes]] = []
        take = ep.core.media_to_send

        def tap() -> list[tuple[int, bytes]]:
            out = take()
            self.frames += [(time.time(), f) for _, f in out]
            return out

        ep.core.media_to_send = tap  # type: ignore[method-assign]
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        assert await self.ep.start_burst(CH)
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        i = 0
        while True:
            i += 1
            with contextlib.suppress(CrossbandError):  # a send refused mid-change: next one
                self.ep.send_voice(CH, b"voice-%06d" % i)
            await asyncio.sleep(FRAME_S)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


def opens(officer: Endpoint, frame: bytes) -> bool:
    """Whether the officer's channel state opens ``frame`` (each frame is offered once: a
    second offer would be a replay)."""
    member = officer.core.channels[CH]
    try:
        member.unprotect(frame, time.time())
    except (DecryptError, CrossbandError):
        return False
    return True


async def run_cutoff(
    url: str, world: World, tmp: Path, key: VerifyKey, publisher: str = DISPATCH
) -> Cutoff:
    """One run (see the module docstring); raises AssertionError or TimeoutError."""
    tmp.mkdir(parents=True, exist_ok=True)
    rl = revoke_with_cli(world, tmp, OFFICER)
    eps: list[Endpoint] = []
    talker: Talker | None = None
    try:
        for name in (DISPATCH, VESSEL, OFFICER):
            eps.append(await endpoint_via(url, world, world.devices[name], tmp, key))
        disp, vessel, officer = eps
        members = [
            (world.devices[DISPATCH].cred, "dispatcher"),
            (world.devices[VESSEL].cred, "member"),
            (world.devices[OFFICER].cred, "member"),
        ]
        await disp.commit(CH, members, agreement=world.agreement, name="Revoke")
        for ep in (vessel, officer):
            await next_event(ep, ev.ChannelUpdated, timeout=10, channel=CH, epoch=1)
        talker = Talker(vessel)
        await talker.start()
        await next_event(disp, ev.Voice, timeout=5, channel=CH, sender=VESSEL, epoch=1)
        t0 = time.time()
        number = await (disp if publisher == DISPATCH else vessel).publish_revocation(rl)
        assert number == rl.number

        def moved() -> bool:  # the talker is on the commit without the officer
            return (vessel.core.channels[CH].epoch or 0) >= 2

        await until(moved, timeout=BOUND + 1, what="the talker on the epoch without the officer")
        heard = await next_event(disp, ev.Voice, timeout=5, channel=CH, sender=VESSEL, epoch=2)
        assert heard.epoch == 2
        tap = talker.frames
        seen = len(tap)
        await until(lambda: len(tap) >= seen + AFTER, timeout=5, what="more voice")
        await talker.stop()
        heard = [e for e in drain(disp) if isinstance(e, ev.Voice) and e.epoch == 2]
        return judge(tap, t0, officer, len(heard) + 1)
    finally:
        if talker is not None:
            await talker.stop()
        for ep in eps:
            await ep.stop()


def judge(frames: list[tuple[float, bytes]], t0: float, officer: Endpoint, heard: int) -> Cutoff:
    """Offer every tapped frame, in order, to the revoked officer's channel state."""
    before = [f for t, f in frames if t < t0]
    assert before and all(opens(officer, f) for f in before), "the officer read the old epoch"
    later = [(t, opens(officer, f)) for t, f in frames if t >= t0]
    last_open = max((i for i, (_, ok) in enumerate(later) if ok), default=-1)
    closed = later[last_open + 1 :]
    assert closed, "the revoked device opened every frame"
    old_kids = {decode_header(f)[0] for f in before}
    new = [f for t, f in frames if t >= closed[0][0]]
    assert not old_kids & {decode_header(f)[0] for f in new}, "closed for another reason"
    return Cutoff(closed[0][0] - t0, len(before), len(closed), heard)
