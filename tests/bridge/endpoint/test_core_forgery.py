"""Fault 1 of issue 9 at the endpoint core, on a fake clock: SFrame keys are group keys, so the
Mexican observer (who may never transmit) can encrypt under the US officer's KID. Before, 25 of
25 such frames played out as the officer, a forged burst raised no event, and one forged high
counter made the officer's next frames look like replays. Now the officer's signed in-band
checkpoints decide: forged frames are alarmed naming the KID, never verified, and cannot move
the replay window."""

from __future__ import annotations

from pathlib import Path

from bridge.endpoint import events as ev
from crypto.attribution import BOUND
from crypto.checkpoint import Checkpointer
from crypto.group import ChannelMember
from crypto.sframe import decode_header
from tests.bridge.endpoint.rig import CH, NO, Clock, Node
from tests.world import make_world


def _world(tmp: Path):  # type: ignore[no-untyped-def]
    w = make_world()
    disp = w.device("ca-rcmp", "disp", ("dispatcher", "member"))
    officer = w.device("us-cbp", "officer", ("member",))
    observer = w.device("mx-gn", "observer", ("observer",))
    bundle = w.commit(
        disp, [(disp, "dispatcher"), (officer, "member"), (observer, "observer")], None
    )
    listener = Node(w, disp, tmp / "disp.db", Clock(w.now + 5))
    listener.commit(bundle)
    members = []
    for d in (officer, observer):
        m = w.member(d)
        m.process_commit(bundle, w.now)
        members.append(m)
    return listener, officer, members[0], members[1]


class Talker:
    """The officer's side as EndpointCore sends it: frames, and a signed checkpoint in band
    every 200 ms and at the end."""

    def __init__(self, tx: ChannelMember) -> None:
        self.tx, self.cpr = tx, None

    def burst(self, n: int, t0: float) -> list[tuple[float, bytes]]:
        out = []
        for i in range(n):
            frame = self.tx.protect(b"officer %d" % i)
            kid, ctr, _ = decode_header(frame)
            assert self.tx.last_commit is not None
            self.cpr = self.cpr or Checkpointer(CH, bytes.fromhex(self.tx.last_commit.hash), kid)
            t = t0 + 0.02 * i
            out.append((t, frame))
            cp = self.cpr.add(ctr, frame, t)
            if cp is not None:
                out.append((t, self.tx.sign_checkpoint(cp)))
        assert self.cpr is not None
        last = self.cpr.close()
        if last is not None:
            out.append((t0 + 0.02 * n, self.tx.sign_checkpoint(last)))
        return out


def forge(observer: ChannelMember, kid: int, ctr: int) -> bytes:
    """What an insider can do with the group key: encrypt under another member's KID."""
    return observer._epochs[-1].key(kid).protect(ctr, b"forged")  # noqa: SLF001


def test_frames_forged_at_the_officers_counters_are_alarmed_and_never_verified(
    tmp_path: Path,
) -> None:
    listener, officer, tx, obs = _world(tmp_path)
    try:
        wire = Talker(tx).burst(50, listener.clock.now)
        kid, first, _ = decode_header(wire[0][1])
        # The hostile relay forwards 25 forged frames first, each just ahead of the real one.
        forged = [(t - 0.001, forge(obs, kid, first + i)) for i, (t, _) in enumerate(wire[:25])]
        for t, frame in sorted(forged + wire, key=lambda x: x[0]):
            listener.core.receive_media(NO, frame, t)
        listener.core.handle_timer(wire[-1][0] + BOUND)
        listener.pump()
        alarms = listener.take(ev.ForgeryAlarm)
        flagged = {c for a in alarms for c in a.ctrs}
        assert flagged == set(range(first, first + 25))
        assert {(a.sender, a.kid) for a in alarms} == {(officer.id, kid)}
        verified = listener.take(ev.TalkerVerified)
        assert sum(v.count for v in verified) + listener.core.stats["voice_verified"] >= 50
        assert all(v.sender == officer.id for v in verified)
        voices = listener.take(ev.Voice)
        assert not [v for v in voices if v.payload == b"forged" and v.verified]
        assert sum(v.payload.startswith(b"officer") for v in voices) == 50  # none lost
    finally:
        listener.close()


def test_a_forged_burst_without_checkpoints_is_alarmed_within_the_bound(tmp_path: Path) -> None:
    """Before, a forged burst raised no event at all."""
    listener, officer, tx, obs = _world(tmp_path)
    try:
        talker = Talker(tx)
        for t, frame in talker.burst(5, listener.clock.now):  # the officer spoke earlier
            listener.core.receive_media(NO, frame, t)
        kid, ctr, _ = decode_header(tx.protect(b"x"))
        t0 = listener.clock.now + 1.0
        for i in range(25):  # while the officer is silent, at counters it never used
            listener.core.receive_media(NO, forge(obs, kid, ctr + 100 + i), t0 + 0.02 * i)
        listener.pump()
        assert listener.take(ev.ForgeryAlarm) == []  # within the bound: shown unverified
        deadline = listener.core.get_timer()
        assert deadline is not None and deadline <= t0 + BOUND
        listener.core.handle_timer(t0 + 0.48 + BOUND)
        listener.pump()
        (alarm,) = listener.take(ev.ForgeryAlarm)
        assert alarm.sender == officer.id and alarm.reason == "uncovered"
        assert alarm.ctrs == tuple(range(ctr + 100, ctr + 125))
    finally:
        listener.close()


def test_a_forged_high_counter_does_not_lock_the_officer_out(tmp_path: Path) -> None:
    """Before, one forged frame with a high counter advanced the listener's replay window, so
    every real frame after it was refused as a replay: the honest talker looked broken."""
    listener, officer, tx, obs = _world(tmp_path)
    try:
        talker = Talker(tx)
        for t, frame in talker.burst(10, listener.clock.now):
            listener.core.receive_media(NO, frame, t)
        kid, ctr, _ = decode_header(tx.protect(b"x"))
        listener.core.receive_media(NO, forge(obs, kid, ctr + 1_000_000), listener.clock.now + 1)
        listener.pump()
        listener.take(ev.Voice)
        for t, frame in talker.burst(20, listener.clock.now + 2):
            listener.core.receive_media(NO, frame, t)
        listener.pump()
        heard = [v for v in listener.take(ev.Voice) if v.payload.startswith(b"officer")]
        assert len(heard) == 20 and listener.core.stats["voice_undecryptable"] == 0
        assert sum(v.count for v in listener.take(ev.TalkerVerified)) >= 19
    finally:
        listener.close()
