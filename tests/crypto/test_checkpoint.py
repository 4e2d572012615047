"""Voice checkpoints (issue 9, fault 1): a talker signs its own frames at least every 200 ms;
a listener attributes a frame only from such a signature, flags frames signed otherwise or not
at all within the bound, and never lets an unattributed frame move the replay window far.

Fake clock throughout (20 ms frames); the 'wire' is a list. Each test builds the attack of
fault 1 (an insider encrypting under another member's KID) at the level of the attribution
core; the endpoint tests drive the same through EndpointCore.
"""

from __future__ import annotations

import os
import random

import pytest

from crypto.attribution import BOUND, Attribution, Finding, Verdict
from crypto.checkpoint import (
    GENESIS,
    INTERVAL,
    Checkpoint,
    Checkpointer,
    decode_checkpoint,
    frame_hash,
)
from crypto.errors import Refusal, VerificationError
from tests.world import make_world

W = make_world()
TALKER = W.device("us-cbp", "officer-1", ("member",))
OTHER = W.device("mx-gn", "observer-1", ("observer",))
COMMIT = bytes(range(32))
KID = 0x1234
FRAME_S = 0.02


def talk(frames: int, first_ctr: int = 100, t0: float = 0.0) -> tuple[list, list[Checkpoint]]:
    """A talker's burst: [(ctr, frame, t)] and the signed checkpoints, in the order sent."""
    cpr = Checkpointer("inc-1", COMMIT, KID)
    sent, cps = [], []
    for i in range(frames):
        ctr, t = first_ctr + i, t0 + i * FRAME_S
        frame = os.urandom(90)
        sent.append((ctr, frame, t))
        cp = cpr.add(ctr, frame, t)
        if cp is not None:
            cps.append((t, cp.signed(TALKER.keys.sign)))
    last = cpr.close()
    if last is not None:
        cps.append((t0 + frames * FRAME_S, last.signed(TALKER.keys.sign)))
    return sent, cps


def test_a_checkpoint_at_least_every_interval_chained_and_final_at_the_end() -> None:
    sent, cps = talk(53)
    times = [t for t, _ in cps]
    assert all(b - a <= INTERVAL + FRAME_S + 1e-9 for a, b in zip([0.0, *times], times))
    chain = [cp for _, cp in cps]
    assert chain[0].prev == GENESIS and [c.seq for c in chain] == list(range(len(chain)))
    assert all(b.prev == a.digest() for a, b in zip(chain, chain[1:]))
    assert [c.final for c in chain] == [False] * (len(chain) - 1) + [True]
    covered = [ctr for c in chain for ctr in range(c.first_ctr, c.last_ctr + 1)]
    assert covered == [ctr for ctr, _, _ in sent]  # every frame, once, in order


def test_encoding_round_trips_and_the_signature_binds_every_field() -> None:
    _, cps = talk(10)
    cp = cps[0][1]
    again = decode_checkpoint(cp.encode())
    assert again == cp and again.verify(TALKER.cred) == cp
    with pytest.raises(VerificationError) as err:
        cp.verify(OTHER.cred)  # not the talker's signature
    assert err.value.code is Refusal.BAD_SIGNATURE
    tampered = bytearray(cp.encode())
    tampered[60] ^= 1  # inside the commit hash
    with pytest.raises(VerificationError):
        decode_checkpoint(bytes(tampered)).verify(TALKER.cred)


def _listen(att: Attribution, sent: list, cps: list, drop=frozenset()) -> dict[str, list]:
    """Feed frames and checkpoints in time order (a checkpoint right after its frame)."""
    events = sorted(
        [(t, 0, ("f", ctr, fr)) for ctr, fr, t in sent if ctr not in drop]
        + [(t, 1, ("c", cp)) for t, cp in cps if cp.seq not in drop]
    )
    out: dict[str, list] = {"verdict": [], "found": []}
    for t, _, item in events:
        if item[0] == "f":
            out["verdict"].append((item[1], att.frame(KID, item[1], item[2], t)))
        else:
            out["found"] += att.checkpoint(item[1], t)
    out["found"] += att.expire(events[-1][0] + BOUND + 0.01)
    return out


def test_an_honest_talker_over_5_percent_loss_is_verified_frame_by_frame() -> None:
    sent, cps = talk(500)
    rng = random.Random(5)
    lost = {ctr for ctr, _, _ in sent if rng.random() < 0.05}
    out = _listen(Attribution(), sent, cps, drop=frozenset(lost))
    assert not [f for f in out["found"] if f.kind in ("forged", "forked")]
    verified = {c for f in out["found"] if f.kind == "verified" for c in f.ctrs}
    verified |= {c for c, v in out["verdict"] if v is Verdict.VERIFIED}
    assert verified == {ctr for ctr, _, _ in sent} - lost


def test_an_insider_forging_the_talkers_frames_is_flagged_naming_the_kid() -> None:
    """Fault 1: 25 frames the observer encrypted under the officer's KID, at the officer's
    own counters (the relay forwarded them first): every one flagged, none verified."""
    sent, cps = talk(50)
    forged = [(ctr, os.urandom(90), t - 0.001) for ctr, _, t in sent[:25]]
    att = Attribution()
    verdicts = []
    out = _listen(att, forged + sent[25:], cps)
    flagged = {c for f in out["found"] if f.kind == "forged" for c in f.ctrs}
    assert flagged == {ctr for ctr, _, _ in forged}
    assert all(f.kid == KID for f in out["found"] if f.kind == "forged")
    # The real frames arriving late, after their checkpoint, are verified.
    for ctr, frame, t in sent[:25]:
        verdicts.append(att.frame(KID, ctr, frame, t + 1.0))
    assert verdicts == [Verdict.VERIFIED] * 25


def test_a_forged_burst_with_no_checkpoint_is_an_alarm_within_the_bound() -> None:
    """Frames at counters the talker never used (or while it is silent): no checkpoint will
    ever cover them. Before, such a burst raised no event at all."""
    att = Attribution()
    for i in range(25):
        assert att.frame(KID, 10_000 + i, os.urandom(90), i * FRAME_S) is Verdict.PENDING
    assert att.expire(BOUND - 0.01) == []  # not yet
    deadline = att.next_deadline()
    assert deadline is not None and deadline <= BOUND
    (alarm,) = att.expire(24 * FRAME_S + BOUND)
    assert alarm == Finding("forged", KID, tuple(range(10_000, 10_025)), "uncovered")


def test_an_unattributed_high_counter_cannot_move_the_replay_window() -> None:
    """One forged frame with a high counter used to advance the listener's replay window so
    that the real talker's next frames were all rejected."""
    sent, cps = talk(20)
    att = Attribution()
    out = _listen(att, sent, cps)
    assert not [f for f in out["found"] if f.kind == "forged"]
    high = sent[-1][0]
    # A frame far past (or just past) what the talker signed is never attributed, so it is
    # never let near the window (the caller moves windows for verified frames only) ...
    for ctr in (1 << 40, high + 5):
        forged = os.urandom(90)
        assert att.frame(KID, ctr, forged, 1.0) is Verdict.PENDING
        assert not att.is_verified(KID, ctr) and att.is_pending(KID, ctr, forged)
    # ... and it becomes a forgery alarm once the bound has passed.
    (alarm,) = att.expire(1.0 + BOUND)
    assert alarm.kind == "forged" and alarm.ctrs == (high + 5, 1 << 40)
    assert all(att.is_verified(KID, ctr) for ctr, _, _ in sent)  # the talker's own: verified


def test_a_lost_checkpoint_leaves_its_frames_unverifiable_not_forged() -> None:
    sent, cps = talk(60)
    lost_cp = cps[1][1]
    out = _listen(Attribution(), sent, cps, drop=frozenset({lost_cp.seq}))
    kinds = {f.kind for f in out["found"]}
    assert "forged" not in kinds
    (gap,) = [f for f in out["found"] if f.kind == "unverifiable"]
    assert gap.ctrs == tuple(range(lost_cp.first_ctr, lost_cp.last_ctr + 1))


def test_two_checkpoint_chains_for_one_kid_are_reported_as_a_fork() -> None:
    """A cloned device (two devices signing for one KID) cannot keep one chain."""
    _, cps_a = talk(30)
    _, cps_b = talk(30)  # another stream, same KID and counters
    att = Attribution()
    att.checkpoint(cps_a[0][1], 0.2)
    found = att.checkpoint(cps_b[0][1], 0.2)  # same seq, other content
    found += att.checkpoint(cps_b[1][1], 0.4)  # next seq, not chained to what we hold
    assert [f.kind for f in found] == ["forked", "forked"]


def test_a_replayed_old_checkpoint_changes_nothing() -> None:
    sent, cps = talk(30)
    att = Attribution()
    _listen(att, sent, cps)
    assert att.checkpoint(cps[0][1], 5.0) == []


def test_frame_hash_is_short_and_of_the_ciphertext() -> None:
    f = os.urandom(90)
    assert len(frame_hash(f)) == 8 and frame_hash(f) != frame_hash(f + b"\x00")
