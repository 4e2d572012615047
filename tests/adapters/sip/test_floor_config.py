"""Caller floor control (DTMF and voice activity), RFC 4733 events, and the config loader."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from adapters.errors import AdapterConfigError
from adapters.sip.config import load_sip_config
from adapters.sip.floor import CallerFloor, DtmfDetector, FloorConfig, parse_telephone_event

QUIET = bytes(320)
LOUD = (np.sin(np.arange(160) / 3) * 8000).astype("<i2").tobytes()


def kinds(outputs):
    return [o.kind for o in outputs]


def test_dtmf_floor():
    f = CallerFloor(FloorConfig("dtmf"))
    assert f.frame(LOUD, 0.0) == []  # not keyed: nothing passes
    assert kinds(f.digit("*", 0.1)) == ["start"]
    assert f.digit("*", 0.12) == []  # already keyed
    assert kinds(f.frame(QUIET, 0.14)) == ["audio"]
    assert kinds(f.digit("5", 0.15)) == []
    assert kinds(f.digit("#", 0.2)) == ["end"]
    assert f.frame(LOUD, 0.22) == []


def test_dtmf_floor_max_burst_and_hangup():
    f = CallerFloor(FloorConfig("dtmf", max_burst=1.0))
    f.digit("*", 0.0)
    assert kinds(f.frame(LOUD, 0.5)) == ["audio"]
    assert kinds(f.frame(LOUD, 1.01)) == ["end"]
    f.digit("*", 2.0)
    assert kinds(f.hangup()) == ["end"] and f.hangup() == []


def test_vad_floor_with_hang_time():
    f = CallerFloor(FloorConfig("vad", hang_time=0.1))
    assert f.frame(QUIET, 0.0) == []
    assert kinds(f.frame(LOUD, 0.02)) == ["start", "audio"]
    assert kinds(f.frame(QUIET, 0.04)) == ["audio"]  # the hang time is part of the burst
    assert kinds(f.frame(QUIET, 0.12)) == ["audio"]
    assert kinds(f.frame(QUIET, 0.14)) == ["end"]
    assert f.digit("*", 0.2) == []  # digits do nothing in vad mode


def test_rfc4733_one_digit_per_event():
    d = DtmfDetector()
    star = struct.pack("!BBH", 10, 10, 160)
    star_end = struct.pack("!BBH", 10, 0x80 | 10, 800)
    assert d.packet(1000, star) == "*"
    assert d.packet(1000, star) is None and d.packet(1000, star_end) is None
    assert d.packet(1000, star_end) is None  # the E-bit packet comes three times
    assert d.packet(2000, struct.pack("!BBH", 11, 10, 160)) == "#"
    assert d.packet(3000, b"\x01") is None and d.packet(4000, struct.pack("!BBH", 20, 0, 1)) is None
    ev = parse_telephone_event(star_end)
    assert ev is not None and ev.end and ev.volume == 10 and ev.duration == 800


GOOD = {"listen": "127.0.0.1:0", "lines": [{"extension": "7001", "channel": "ch"}]}


def test_config_defaults():
    cfg = load_sip_config(GOOD)
    assert (cfg.host, cfg.port, cfg.rtp_host, cfg.rate) == ("127.0.0.1", 0, "127.0.0.1", 8000)
    assert cfg.codecs == ("pcmu", "pcma", "opus")
    (line,) = cfg.lines
    assert line.floor.mode == "dtmf" and line.floor.key_up == "*" and line.priority == "normal"


@pytest.mark.parametrize(
    ("patch", "setting"),
    [
        ({"listen": "localhost:5060"}, "sip.listen"),
        ({"listen": "127.0.0.1"}, "sip.listen"),
        ({"rate": 11025}, "sip.rate"),
        ({"codecs": ["g729"]}, "sip.codecs"),
        ({"codecs": ["pcmu", "pcmu"]}, "sip.codecs"),
        ({"lines": []}, "sip.lines"),
        ({"password": "hunter2"}, "sip.password"),
        ({"lines": [{"extension": "7001", "channel": "c", "floor": "loud"}]}, "sip.lines[0].floor"),
        ({"lines": [{"extension": "7 1", "channel": "c"}]}, "sip.lines[0].extension"),
        ({"lines": [{"extension": "7001"}]}, "sip.lines[0].channel"),
        ({"lines": [{"extension": "7001", "channel": "c", "priority": "max"}]},
         "sip.lines[0].priority"),
        ({"lines": [{"extension": "1", "channel": "a"}, {"extension": "1", "channel": "b"}]},
         "sip.lines[1].extension"),
        ({"lines": [{"extension": "1", "channel": "a", "key_up": "#"}]}, "sip.lines[0].floor"),
    ],
)  # fmt: skip
def test_config_errors_name_the_setting(patch, setting):
    with pytest.raises(AdapterConfigError) as info:
        load_sip_config({**GOOD, **patch})
    assert info.value.setting == setting
    assert "hunter2" not in str(info.value)
