"""Voice at the endpoint: frames heard, burst seals checked, our own bursts hashed and sealed.

Part of the sans-IO :class:`~bridge.endpoint.core.EndpointCore`. Two timing rules live here,
both timers the core arms and :meth:`VoicePath.handle_timer` fires — no sleeps:

- *Seal wait.* A talker's signed burst seal travels the message path and can overtake the
  burst's last voice frames. A seal that finds frames missing waits up to :data:`SEAL_WAIT`
  seconds for them (or until the missing frames arrive) before its verdict: verified only when
  we hold exactly the frames it sealed, hashed in counter order whatever order they came in.
- *UDP tail.* Our voice goes by UDP, the floor release by WebSocket, so a release sent at once
  could overtake the burst's last frames and the relay would drop them as sent without the
  floor. :meth:`VoicePath.release_time` says when the release may go: :data:`UDP_TAIL`
  seconds after the last frame was sent.

Timers survive a clock stepped backwards: a timer is also due when ``now`` is earlier than the
time it was armed at.

Frames heard are kept per talker *generation* (the per-boot part of its KID,
:mod:`crypto.epoch`): a talker that restarted counts from 0 again under a new KID, and a seal
covers the frames of the generation it was sent under. Two generations of one talker heard at
once raise :class:`~bridge.endpoint.events.CloneAlarm` (:meth:`VoicePath.alarm_clones`). A
voice frame whose replay mark cannot be written is dropped (it could play again after a restart).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from bridge.endpoint import events as ev
from bridge.endpoint.attribute import Attributor, is_checkpoint
from bridge.endpoint.output import Output
from bridge.errors import StoreError
from bridge.wire.codes import Code
from crypto.checkpoint import Checkpointer
from crypto.errors import DecryptError
from crypto.group import CONTEXT_VOICE, ChannelMember
from crypto.messages import BurstHasher, BurstSeal
from crypto.sframe import decode_header

UDP_TAIL = 0.06  # seconds between the last UDP voice frame and the floor release
SEAL_WAIT = 0.5  # seconds a burst seal waits for voice frames it overtook
MAX_UNSEALED = 15_000  # frame hashes kept per talker awaiting a seal (5 minutes of voice)

_Key = tuple[str, str, int, int]  # (channel, talker, epoch, generation)


def due(deadline: float, armed: float, now: float) -> bool:
    """A timer is due at its deadline, or at once if the clock went back past its arming."""
    return now >= deadline or now < armed


@dataclass
class Burst:
    """One of our own talk bursts in progress."""

    id: str
    hasher: BurstHasher = field(default_factory=BurstHasher)
    last_sent: float | None = None
    checkpointer: Checkpointer | None = None  # made at the first frame (it needs the KID)


@dataclass
class _PendingSeal:
    seal: BurstSeal
    deadline: float
    armed: float


class VoicePath:
    def __init__(self, out: Output, stats: dict[str, int], *, udp: bool) -> None:
        self._out = out
        self._stats = stats
        self.udp = udp
        self.bursts: dict[str, Burst] = {}  # channel -> our burst in progress
        self._heard: dict[_Key, dict[int, bytes]] = {}  # -> {SFrame counter: SHA-256 of frame}
        self._seals: dict[_Key, _PendingSeal] = {}  # seals awaiting late frames
        self._marks_failing = False  # reported once until a mark is written again
        self.attribution = Attributor(out, stats)

    # -- listening -----------------------------------------------------------------------------

    def receive(self, ch: str, member: ChannelMember, frame: bytes, now: float) -> None:
        self._stats["voice_received"] += 1
        att = self.attribution
        try:
            r = member.unprotect(frame, now, gate=att.gate)
        except (DecryptError, ValueError):
            self._stats["voice_undecryptable"] += 1
            return
        except StoreError:
            self._stats["voice_undecryptable"] += 1
            if not self._marks_failing:
                self._marks_failing = True
                self._out.emit(ev.Error(Code.STORE_FAILED, "replay marks not writable"))
            return
        self._marks_failing = False
        self._stats["voice_decrypted"] += 1
        self.alarm_clones(member)
        if r.context != CONTEXT_VOICE:
            if is_checkpoint(r):  # in band with the voice (bridge.endpoint.attribute)
                att.checkpoint(ch, member, r, now)
            return
        if att.pending(r.kid, r.ctr, frame):  # heard already, still unattributed: a replay
            self._stats["voice_replayed"] += 1
            return
        if not att.frame(ch, member, r, frame, now):
            return  # forged under another member's KID: alarmed, not played
        verified = att.book.is_verified(r.kid, r.ctr)
        key = (ch, r.sender, r.epoch, r.gen)
        heard = self._heard.setdefault(key, {})
        heard[r.ctr] = hashlib.sha256(frame).digest()
        if len(heard) > MAX_UNSEALED:  # a talker that never seals: keep the newest only
            for c in sorted(heard)[: len(heard) - MAX_UNSEALED]:
                del heard[c]
        pending = self._seals.get(key)
        if pending is not None:
            s = pending.seal
            if sum(s.first_ctr <= c <= s.last_ctr for c in heard) >= s.frames:
                self._verdict(key, s, heard)
        self._out.emit(ev.Voice(ch, r.sender, r.payload, r.ctr, now, r.epoch, r.gen, verified))

    def alarm_clones(self, member: ChannelMember) -> None:
        for c in member.take_clones():
            self._stats["clone_alarms"] += 1
            self._out.emit(ev.CloneAlarm(c.channel, c.sender, c.kid, c.epoch, c.generations))

    def on_seal(self, ch: str, seal: BurstSeal, gen: int, now: float) -> None:
        """A verified burst seal arrived, sent under generation ``gen``: report it now, or wait
        for the frames it overtook."""
        key = (ch, seal.sender, seal.epoch, gen)
        heard = self._heard.get(key, {})
        frames = sum(seal.first_ctr <= c <= seal.last_ctr for c in heard)
        if frames < seal.frames:
            self._seals[key] = _PendingSeal(seal, now + SEAL_WAIT, now)
            return
        self._verdict(key, seal, heard)

    def _verdict(self, key: _Key, seal: BurstSeal, heard: dict[int, bytes]) -> None:
        ch = key[0]
        frames = {c: d for c, d in heard.items() if seal.first_ctr <= c <= seal.last_ctr}
        hasher = BurstHasher.in_order(frames)
        self._seals.pop(key, None)
        for c in [c for c in heard if c <= seal.last_ctr]:
            del heard[c]
        verified = seal.matches(hasher)
        self._out.emit(
            ev.BurstSealed(ch, seal.sender, seal.burst, seal.frames, verified, hasher.count)
        )

    # -- talking -------------------------------------------------------------------------------

    def begin(self, ch: str, burst_id: str) -> None:
        self.bursts[ch] = Burst(burst_id)

    def sent(
        self, ch: str, member: ChannelMember, frame: bytes, now: float
    ) -> tuple[int, bytes | None]:
        """Account one frame of ours: its SFrame counter, and the signed checkpoint frame to
        send right after it when one is due (at least every 200 ms, crypto.checkpoint)."""
        kid, ctr, _ = decode_header(frame)
        burst = self.bursts.get(ch)
        checkpoint = None
        if burst is not None:
            burst.hasher.add(frame, ctr)
            burst.last_sent = now
            c = member.last_commit
            if burst.checkpointer is None and c is not None:
                burst.checkpointer = Checkpointer(ch, bytes.fromhex(c.hash), kid)
            if burst.checkpointer is not None:
                cp = burst.checkpointer.add(ctr, frame, now)
                checkpoint = member.sign_checkpoint(cp) if cp is not None else None
        self._stats["voice_sent"] += 1
        return ctr, checkpoint

    @staticmethod
    def last_checkpoint(member: ChannelMember, burst: Burst | None) -> bytes | None:
        """The burst's final checkpoint frame, over what the last one did not cover."""
        if burst is None or burst.checkpointer is None:
            return None
        cp = burst.checkpointer.close()
        return member.sign_checkpoint(cp) if cp is not None else None

    def release_time(self, burst: Burst | None, now: float) -> float:
        """When the floor release of ``burst`` may go out (``now``: at once)."""
        if not self.udp or burst is None or burst.last_sent is None:
            return now
        return max(now, burst.last_sent + UDP_TAIL)

    @staticmethod
    def seal_for(
        ch: str, member: ChannelMember, device: str, burst: Burst
    ) -> tuple[BurstSeal, bytes] | None:
        """The signed seal over what we sent in ``burst``, and its frame (None: nothing sent)."""
        h, c = burst.hasher, member.last_commit
        if h.count == 0 or c is None:
            return None
        seal = BurstSeal(
            ch, c.epoch, device, burst.id, h.count, h.first_ctr or 0, h.last_ctr or 0, h.digest()
        )
        return member.seal_burst(seal)

    # -- timers --------------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        times = [p.deadline for p in self._seals.values()]
        if (t := self.attribution.get_timer()) is not None:
            times.append(t)
        return min(times, default=None)

    def handle_timer(self, now: float) -> None:
        self.attribution.handle_timer(now)
        for key, p in list(self._seals.items()):
            if due(p.deadline, p.armed, now):
                self._verdict(key, p.seal, self._heard.get(key, {}))
