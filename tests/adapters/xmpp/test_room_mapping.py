import pytest

from adapters.base import EmergencyState
from adapters.errors import AdapterConfigError
from adapters.xmpp.mapping import load_xmpp_config
from adapters.xmpp.room import (
    Outbox,
    RoomMessage,
    format_burst,
    format_emergency,
    format_post,
    inbound_text,
)

R = "incident@conference.example"


def test_inbound_text_names_its_author():
    t = inbound_text(RoomMessage(R, "alice", "hi"), "gw")
    assert t is not None and t.source == "xmpp:alice"
    assert t.body == "hi"


@pytest.mark.parametrize(
    "msg",
    [
        RoomMessage(R, "gw", "echo"),
        RoomMessage(R, "alice", "old", delayed=True),
        RoomMessage(R, "alice", "  "),
        RoomMessage(R, "", "server notice"),
    ],
)
def test_inbound_text_skips(msg):
    assert inbound_text(msg, "gw") is None


def test_formats():
    assert format_post("hello", "us-cbp/a") == "[us-cbp/a] hello"
    assert format_burst("bob", True) == "bob talked, verified"
    assert format_burst("bob", False) == "bob talked, unverified"
    assert "raised by d1" in format_emergency(EmergencyState(True, "d1", True))
    assert "cleared" in format_emergency(EmergencyState(False))
    assert "unverified" in format_emergency(EmergencyState(False))


def test_outbox_bounded_and_once():
    box = Outbox(limit=2)
    for s in "abc":
        box.push(s)
    assert box.dropped == 1 and len(box) == 2
    assert box.drain() == ["b", "c"]
    assert box.drain() == []
    with pytest.raises(ValueError):
        Outbox(0)


GOOD = {
    "server": "127.0.0.1:5222",
    "jid": "gw@example",
    "password_file": "/p",
    "rooms": [{"room": R, "nick": "gw", "channel": "c"}],
}


def test_good_config():
    c = load_xmpp_config(GOOD)
    assert (c.host, c.port, c.jid) == ("127.0.0.1", 5222, "gw@example")
    assert c.rooms[0].room == R


@pytest.mark.parametrize(
    "change,setting",
    [
        ({"server": "nohost"}, "xmpp.server"),
        ({"server": "h:99999"}, "xmpp.server"),
        ({"jid": "nodomain"}, "xmpp.jid"),
        ({"pasword_file": "x"}, "xmpp.pasword_file"),
        ({"rooms": []}, "xmpp.rooms"),
        ({"rooms": [{"room": R, "nick": "gw"}]}, "xmpp.rooms[0].channel"),
        ({"rooms": [{"room": R, "nick": "gw", "channel": "c"}] * 2}, "xmpp.rooms[1].room"),
        ({"rooms": [{"room": "x", "nick": "gw", "channel": "c"}]}, "xmpp.rooms[0].room"),
    ],
)
def test_bad_config(change, setting):
    with pytest.raises(AdapterConfigError) as e:
        load_xmpp_config({**GOOD, **change})
    assert e.value.setting == setting


def test_missing_and_not_mapping():
    bad = dict(GOOD)
    del bad["password_file"]
    with pytest.raises(AdapterConfigError, match="xmpp.password_file: missing"):
        load_xmpp_config(bad)
    with pytest.raises(AdapterConfigError):
        load_xmpp_config([1])


def test_security_alarm_is_posted_in_plain_words():
    from adapters.base import SecurityAlarm

    line = SecurityAlarm("fork", "epoch 4", None).describe()
    assert line == "SECURITY ALARM: the relay is showing members different channel histories"
    with pytest.raises(ValueError):
        SecurityAlarm("made-up")
