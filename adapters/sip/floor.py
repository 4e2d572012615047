"""Floor control from a caller's side, and RFC 4733 telephone events, sans-IO.

A phone or console sends audio all through a call, so its talk bursts are found here, in
one of two modes (``floor`` in the configuration):

* ``dtmf`` (the default — dispatch consoles have a PTT key mapped to a DTMF digit, and it
  never keys up on background noise): the ``key_up`` digit (``*``) starts a burst, the
  ``key_down`` digit (``#``) ends it; audio between is the burst. A burst also ends after
  ``max_burst`` seconds (a caller who forgot to release) and when the call ends;
* ``vad``: a frame louder than ``vad_threshold_dbfs`` (RMS) starts a burst, and it ends after
  ``hang_time`` seconds below it (the quiet frames of the hang time are part of the burst,
  so speech pauses are heard as they were).

:class:`CallerFloor` takes ``frame(pcm, now)`` and ``digit(d, now)`` and returns
:class:`FloorOutput` items (``start``, ``audio``, ``end``). :func:`parse_telephone_event`
reads an RFC 4733 §2.3 payload; :class:`DtmfDetector` turns the packets of one event (sent
several times, three times with the E bit at its end, §2.5.1.4) into one digit, on its first
packet, so key-up is not delayed by the event's length.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "CallerFloor",
    "DtmfDetector",
    "FloorConfig",
    "FloorOutput",
    "TelephoneEvent",
    "parse_telephone_event",
    "rms_dbfs",
]

EVENT_DIGITS = "0123456789*#ABCD"  # RFC 4733 §3.2 table 7: events 0..15
FloorMode = Literal["dtmf", "vad"]


@dataclass(frozen=True, slots=True)
class FloorConfig:
    mode: FloorMode = "dtmf"
    key_up: str = "*"
    key_down: str = "#"
    vad_threshold_dbfs: float = -40.0
    hang_time: float = 0.8
    max_burst: float = 120.0

    def __post_init__(self) -> None:
        if self.mode not in ("dtmf", "vad"):
            raise ValueError("floor is 'dtmf' or 'vad'")
        if self.key_up not in EVENT_DIGITS or self.key_down not in EVENT_DIGITS:
            raise ValueError("key_up/key_down are DTMF digits 0-9 * # A-D")
        if self.key_up == self.key_down:
            raise ValueError("key_up and key_down must differ")
        if not -90.0 <= self.vad_threshold_dbfs < 0.0:
            raise ValueError("vad_threshold_dbfs is between -90 and 0")
        if not 0.05 <= self.hang_time <= 10.0 or not 1.0 <= self.max_burst <= 3600.0:
            raise ValueError("hang_time is 0.05..10 s, max_burst 1..3600 s")


@dataclass(frozen=True, slots=True)
class FloorOutput:
    kind: Literal["start", "audio", "end"]
    pcm: bytes = b""


def rms_dbfs(pcm: bytes) -> float:
    """RMS level of 16-bit PCM in dB relative to full scale (−inf for silence)."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    if not len(x):
        return -math.inf
    rms = float(np.sqrt(np.mean(x * x)))
    return 20 * math.log10(rms / 32768.0) if rms > 0 else -math.inf


class CallerFloor:
    """One caller's bursts (module docstring)."""

    def __init__(self, config: FloorConfig) -> None:
        self.config = config
        self.talking = False
        self._since = 0.0
        self._last_voice = 0.0

    def _start(self, now: float) -> FloorOutput:
        self.talking, self._since, self._last_voice = True, now, now
        return FloorOutput("start")

    def _end(self) -> FloorOutput:
        self.talking = False
        return FloorOutput("end")

    def digit(self, digit: str, now: float) -> list[FloorOutput]:
        if self.config.mode != "dtmf":
            return []
        if digit == self.config.key_up and not self.talking:
            return [self._start(now)]
        if digit == self.config.key_down and self.talking:
            return [self._end()]
        return []

    def frame(self, pcm: bytes, now: float) -> list[FloorOutput]:
        cfg = self.config
        out: list[FloorOutput] = []
        if cfg.mode == "vad":
            loud = rms_dbfs(pcm) >= cfg.vad_threshold_dbfs
            if loud and not self.talking:
                out.append(self._start(now))
            elif loud:
                self._last_voice = now
            elif self.talking and now - self._last_voice > cfg.hang_time:
                return [self._end()]
        if self.talking and now - self._since > cfg.max_burst:
            return [self._end()]
        if self.talking:
            out.append(FloorOutput("audio", pcm))
        return out

    def hangup(self) -> list[FloorOutput]:
        return [self._end()] if self.talking else []


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    event: int
    end: bool
    volume: int
    duration: int

    @property
    def digit(self) -> str | None:
        return EVENT_DIGITS[self.event] if self.event < len(EVENT_DIGITS) else None


def parse_telephone_event(payload: bytes) -> TelephoneEvent | None:
    """An RFC 4733 §2.3 event payload, or None if it is not one."""
    if len(payload) < 4:
        return None
    event, flags, duration = struct.unpack_from("!BBH", payload)
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


class DtmfDetector:
    """RFC 4733 packets → one digit per event, on the event's first packet (module docstring).
    An event is known by its RTP timestamp (§2.5.1.2: all packets of one event share it)."""

    def __init__(self) -> None:
        self._last: tuple[int, int] | None = None  # (timestamp, event) of the current event

    def packet(self, timestamp: int, payload: bytes) -> str | None:
        ev = parse_telephone_event(payload)
        if ev is None or ev.digit is None:
            return None
        key = (timestamp, ev.event)
        if key == self._last:
            return None
        self._last = key
        return ev.digit
