"""The console's sans-IO state: endpoint events in, what a dispatcher sees out (fake clock)."""

from __future__ import annotations

import json

from bridge.console.state import MAX_MESSAGES, ConsoleState, Person
from bridge.endpoint import events as ev

ME = "us-cbp/dispatch-1"
GW = "us-cbp/gw-blaine"
CA = "ca-rcmp/dispatch-2"
CH = "inc-1"


def joined(now: float = 100.0) -> ConsoleState:
    s = ConsoleState(ME)
    s.handle_event(ev.Connected(ME), now)
    roster = {ME: "dispatcher", GW: "member", CA: "dispatcher"}
    s.handle_event(ev.ChannelUpdated(CH, "Incident 1", 1, roster, False), now)
    s.set_channel_info(CH, 5000, {GW: Person("Blaine radio", "radio-gateway")})
    return s


def channel(s: ConsoleState) -> dict:
    snap = s.snapshot()
    json.dumps(snap)  # what the browser gets must be JSON
    (ch,) = [c for c in snap["channels"] if c["channel"] == CH]
    return ch


def test_roster_with_agency_alias_role_and_expiry() -> None:
    s = joined()
    ch = channel(s)
    assert s.snapshot()["connected"] is True
    assert ch["name"] == "Incident 1" and ch["epoch"] == 1 and ch["expires"] == 5000
    gw = next(m for m in ch["roster"] if m["device"] == GW)
    assert gw == {
        "device": GW,
        "agency": "us-cbp",
        "alias": "Blaine radio",
        "kind": "radio-gateway",
        "role": "member",
        "me": False,
        "talking": False,
    }
    assert next(m for m in ch["roster"] if m["device"] == ME)["me"] is True


def test_talker_unverified_then_verified_and_frames_do_not_churn_versions() -> None:
    s = joined()
    s.handle_event(ev.TalkerChanged(CH, GW, "normal", "granted"), 101.0)
    t = channel(s)["talker"]
    assert (t["device"], t["alias"], t["priority"], t["state"], t["since"]) == (
        GW,
        "Blaine radio",
        "normal",
        "unverified",
        101.0,
    )
    v = s.version
    for i in range(50):  # 1 s of unverified voice: nothing new to show
        s.handle_event(ev.Voice(CH, GW, b"x", ctr=i), 101.0 + i * 0.02)
    assert s.version == v
    s.handle_event(ev.TalkerVerified(CH, GW, kid=1, count=50), 102.0)
    assert channel(s)["talker"]["state"] == "verified" and s.version == v + 1
    s.handle_event(ev.TalkerChanged(CH, None, None, "released"), 103.0)
    assert channel(s)["talker"] is None
    s.handle_event(ev.TalkerChanged(CH, CA, "high", "granted"), 104.0)
    assert channel(s)["talker"]["state"] == "unverified"  # a new talker starts unverified


def test_verified_voice_frame_verifies_the_talker() -> None:
    s = joined()
    s.handle_event(ev.TalkerChanged(CH, GW, "normal", "granted"), 101.0)
    s.handle_event(ev.Voice(CH, GW, b"x", verified=True), 101.1)
    assert channel(s)["talker"]["state"] == "verified"


def test_forgery_alarm_marks_the_talker_and_is_listed() -> None:
    s = joined()
    s.handle_event(ev.TalkerChanged(CH, GW, "normal", "granted"), 101.0)
    s.handle_event(ev.ForgeryAlarm(CH, GW, 3, (1, 2), "mismatch"), 101.5)
    ch = channel(s)
    assert ch["talker"]["state"] == "forgery"
    assert ch["alarms"][0] == {"kind": "forgery", "device": GW, "detail": "mismatch", "at": 101.5}
    s.handle_event(ev.TalkerVerified(CH, GW, 3, 10), 102.0)  # no un-alarming by a later checkpoint
    assert channel(s)["talker"]["state"] == "forgery"


def test_emergency_relay_claim_is_unverified_signed_is_verified() -> None:
    s = joined()
    s.handle_event(ev.Emergency(CH, True, GW), 110.0)
    em = channel(s)["emergency"]
    assert em == {"active": True, "by": GW, "verified": False, "unsigned": False}
    s.handle_event(ev.EmergencyUnsigned(CH, GW, 2.0), 112.0)
    assert channel(s)["emergency"]["unsigned"] is True
    assert channel(s)["alarms"][0]["kind"] == "emergency-unsigned"
    s.handle_event(ev.EmergencySigned(CH, True, CA), 113.0)
    assert channel(s)["emergency"] == {"active": True, "by": CA, "verified": True, "unsigned": True}
    s.handle_event(ev.EmergencySigned(CH, False, CA), 114.0)
    assert channel(s)["emergency"]["active"] is False


def test_bursts_newest_first_with_seal_verdict() -> None:
    s = joined()
    s.handle_event(ev.BurstSealed(CH, GW, "b1", 100, True, 100), 120.0)
    s.handle_event(ev.BurstSealed(CH, CA, "b2", 50, False, 48), 130.0)
    b = channel(s)["bursts"]
    assert [(x["sender"], x["verified"], x["received"]) for x in b] == [
        (CA, False, 48),
        (GW, True, 100),
    ]


def test_messages_received_and_own_delivery_states() -> None:
    s = joined()
    s.handle_event(ev.Message(CH, "m-1", CA, "text", b"Copy", 140), 140.5)
    s.handle_event(ev.Message(CH, "m-2", GW, "data", b"{}", 141), 141.0)  # a position: not text
    s.message_sending(CH, "local-1", "Intercept", 150.0)
    s.message_sending(CH, "local-2", "Lost one", 151.0)
    msgs = channel(s)["messages"]
    assert [(m["text"], m["state"]) for m in msgs] == [
        ("Copy", "received"),
        ("Intercept", "sending"),
        ("Lost one", "sending"),
    ]
    s.message_result("local-1", "m-9")
    s.message_result("local-2", None)
    s.message_result("local-unknown", "m-10")  # ignored
    msgs = channel(s)["messages"]
    assert [(m["id"], m["state"], m["mine"]) for m in msgs[1:]] == [
        ("m-9", "delivered", True),
        ("local-2", "failed", True),
    ]


def test_messages_are_bounded() -> None:
    s = joined()
    for i in range(MAX_MESSAGES + 5):
        s.handle_event(ev.Message(CH, f"m-{i}", CA, "text", b"x", i), float(i))
    msgs = channel(s)["messages"]
    assert len(msgs) == MAX_MESSAGES and msgs[0]["id"] == "m-5"


def test_own_floor_states() -> None:
    s = joined()
    s.floor_answer(CH, "requesting")
    assert channel(s)["floor"] == {"state": "requesting", "position": None}
    s.handle_event(ev.FloorEvent(CH, "queued", ME, "normal", None, 2), 160.0)
    assert channel(s)["floor"] == {"state": "queued", "position": 2}
    s.handle_event(ev.FloorEvent(CH, "granted", CA), 160.5)  # somebody else's: not ours
    assert channel(s)["floor"]["state"] == "queued"
    s.handle_event(ev.FloorEvent(CH, "granted", ME, "normal"), 161.0)
    assert channel(s)["floor"] == {"state": "granted", "position": None}
    s.handle_event(ev.FloorEvent(CH, "revoked", ME, None, "preempted"), 162.0)
    assert channel(s)["floor"]["state"] == "revoked"
    s.handle_event(ev.FloorEvent(CH, "denied", ME), 163.0)
    assert channel(s)["floor"]["state"] == "denied"


def test_removed_and_disconnected() -> None:
    s = joined()
    s.handle_event(ev.ChannelUpdated(CH, "Incident 1", 2, {GW: "member"}, True), 170.0)
    s.handle_event(ev.Disconnected(), 171.0)
    snap = s.snapshot()
    assert snap["connected"] is False and snap["channels"][0]["removed"] is True


def test_freshness_and_clone_alarms() -> None:
    s = joined()
    s.handle_event(ev.FreshnessAlarm("stale", CH, "epoch 1 is 3 days old", 1), 180.0)
    s.handle_event(ev.CloneAlarm(CH, GW, 4, 1, (1, 2)), 181.0)
    kinds = [a["kind"] for a in channel(s)["alarms"]]
    assert kinds == ["clone", "freshness-stale"]
