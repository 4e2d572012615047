"""The adapter interface: what every native-system adapter gives and takes.

An adapter speaks one native system (an RTP radio gateway, a Mumble server, an XMPP room, …)
and knows nothing of keys, relays or channels. One adapter object serves one native source
(a radio stream, a talkgroup, a room); the gateway (``bridge.gateway``) binds it to one
endpoint channel. Native codecs (G.711, L16, native Opus) are converted inside the adapter:
on this interface audio is 16-bit mono little-endian PCM in 20 ms frames at the adapter's
declared ``rate``.

**Events it emits** (native side → channel), passed to the sink given to :meth:`Adapter.start`:

* :class:`TalkStart` (``source``, ``priority``) — key-up: somebody on the native side talks;
* :class:`Pcm` (``source``, ``frame``, ``rate``) — one 20 ms frame of their audio;
* :class:`TalkEnd` (``source``) — key-down;
* :class:`Text` (``source``, ``body``) — a text message;
* :class:`Position` (``uid``, ``callsign``, ``lat``, ``lon``, …) — where a tracked member or
  vessel is (its ``source`` is its ``uid``), from an adapter that ``yields_positions``;
* :class:`EmergencyAlert` (``source``, ``active``) — an emergency raised or cancelled on the
  native side (a TAK 911 alert and its cancel).

**Calls it accepts** (channel → native side):

* :meth:`~Adapter.play` (``pcm``, ``talkers``) — 20 ms of the channel's mixed audio;
* :meth:`~Adapter.talk_started` (``talker``) and :meth:`~Adapter.talk_ended` (``talker``,
  ``verified``) — a remote talker's audio begins and ends. ``verified`` is the verdict of the
  talker's signed burst seal: the frames heard are exactly the frames the talker signed. It is
  known only at the end of a burst, so only ``talk_ended`` carries it;
* :meth:`~Adapter.post` (``text``, ``sender``) — a message from the channel, by its verified
  sender;
* :meth:`~Adapter.emergency` (``state``) — the channel's emergency state changed, as the relay
  claims it (``verified`` False) or as a member signed it (``verified`` True);
* :meth:`~Adapter.show_position` (``position``, ``sender``) — a position from the channel, in a
  data message signed by ``sender``; called only on an adapter that ``takes_positions``.

Events are frozen dataclasses that validate themselves when built: a malformed frame is a
``ValueError`` where it is made, not a surprise two layers away. The accepting calls are
synchronous and must not block (the gateway calls them from its 20 ms playout tick); an
adapter that cannot show something (a radio cannot show text) leaves the default, which
ignores it. ``yields_audio`` / ``plays_audio`` say which audio directions the adapter has, so
the gateway builds only the audio path it needs; ``yields_positions`` / ``takes_positions`` do the
same for positions.
"""

from __future__ import annotations

import abc
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "PCM_RATES",
    "PRIORITIES",
    "Adapter",
    "AdapterEvent",
    "EmergencyAlert",
    "EmergencyState",
    "EventSink",
    "Pcm",
    "Position",
    "Priority",
    "SecurityAlarm",
    "TalkEnd",
    "TalkStart",
    "Text",
    "pcm_frame_bytes",
]

PCM_RATES = (8000, 16000, 48000)
FRAME_MS = 20
Priority = Literal["normal", "high", "emergency"]
PRIORITIES: tuple[Priority, ...] = ("normal", "high", "emergency")


def pcm_frame_bytes(rate: int) -> int:
    """Bytes of one 20 ms frame of 16-bit mono PCM at ``rate``."""
    return 2 * rate * FRAME_MS // 1000


def _check_source(source: object) -> None:
    if not isinstance(source, str) or not source:
        raise ValueError("an adapter event needs a source (a non-empty string)")


@dataclass(frozen=True, slots=True)
class TalkStart:
    """Key-up on the native side, asking the channel's floor at ``priority``."""

    source: str
    priority: Priority = "normal"

    def __post_init__(self) -> None:
        _check_source(self.source)
        if self.priority not in PRIORITIES:
            raise ValueError(f"priority must be one of {PRIORITIES}")


@dataclass(frozen=True, slots=True)
class Pcm:
    """One 20 ms frame of 16-bit mono little-endian PCM at ``rate`` Hz."""

    source: str
    frame: bytes
    rate: int

    def __post_init__(self) -> None:
        _check_source(self.source)
        if self.rate not in PCM_RATES:
            raise ValueError(f"PCM rate must be one of {PCM_RATES}")
        if not isinstance(self.frame, bytes) or len(self.frame) != pcm_frame_bytes(self.rate):
            raise ValueError(f"a Pcm frame is 20 ms: {pcm_frame_bytes(self.rate)} bytes")


@dataclass(frozen=True, slots=True)
class TalkEnd:
    """Key-down on the native side."""

    source: str

    def __post_init__(self) -> None:
        _check_source(self.source)


@dataclass(frozen=True, slots=True)
class Text:
    """A text message from the native side; ``source`` names its native author
    (``"xmpp:alice"``, ``"mumble:bob"``, ``"cot:USBP 7"``). The bridge's device signs what it
    relays, so the gateway sends ``"<source> via <device>: <body>"``: nobody takes the alias
    for the author's own signature."""

    source: str
    body: str

    def __post_init__(self) -> None:
        _check_source(self.source)
        if not isinstance(self.body, str) or not self.body:
            raise ValueError("a Text needs a non-empty body")


ALARM_TEXT = {  # what an adapter tells its users, in plain words
    "behind": "the relay withheld a newer key epoch; the bridge sends nothing until it has it",
    "fork": "the relay is showing members different channel histories",
    "stale": "the channel's key epoch is too old; the bridge sends nothing on it",
    "silent": "no member has confirmed the channel's state; the relay may be isolating us",
    "stale-join": "an old channel history was offered and refused",
    "emergency-unsigned": "the relay shows an emergency that no member signed",
}
ALARM_KINDS = tuple(ALARM_TEXT)


@dataclass(frozen=True, slots=True)
class SecurityAlarm:
    """The endpoint caught the relay (or a member) showing this channel a false history:
    ``behind`` (a later epoch was withheld: nothing is sent until it comes), ``fork`` (two
    histories), ``stale`` (the epoch is too old to send on), ``silent`` (no member confirms
    anything), ``stale-join`` (an old commit was refused), ``emergency-unsigned`` (the relay
    shows an emergency no member signed). ``detail`` is for the operator (metadata, never
    content); ``by``: the device it names, if any. An adapter tells its users plainly."""

    kind: str
    detail: str = ""
    by: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ALARM_KINDS:
            raise ValueError(f"SecurityAlarm.kind is one of {ALARM_KINDS}")

    def describe(self) -> str:
        """One line for the native side's users."""
        by = f" ({self.by})" if self.by else ""
        return f"SECURITY ALARM{by}: {ALARM_TEXT[self.kind]}"


@dataclass(frozen=True, slots=True)
class EmergencyState:
    """The channel's emergency: ``active`` or cleared, and the device that raised it.

    ``verified``: the state is what a member signed (checked by the endpoint); False: only the
    relay's floor state says so, a claim a hostile relay can fake or hide. An adapter that shows
    the emergency says which (it may be told both, the relay's claim first)."""

    active: bool
    by: str | None = None
    verified: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.active, bool) or not isinstance(self.verified, bool):
            raise ValueError("EmergencyState.active and .verified are bools")
        if self.by is not None and (not isinstance(self.by, str) or not self.by):
            raise ValueError("EmergencyState.by is a device id or None")


UNKNOWN_METRES = 9999999.0  # "not known" for hae/ce/le, as in Cursor on Target
MAX_POSITION_STR = 256  # uid, callsign, kind
MAX_TIME = 1e11  # epoch seconds (year 5138): rules out nonsense, not old data
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def _check_str(name: str, value: object) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_POSITION_STR:
        raise ValueError(f"Position.{name} is a string of 1..{MAX_POSITION_STR} characters")
    if _CONTROL.search(value):
        raise ValueError(f"Position.{name} has control characters")


def _check_num(name: str, value: object, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"Position.{name} is a number")
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ValueError(f"Position.{name} out of range")


@dataclass(frozen=True, slots=True)
class Position:
    """Where a tracked member or vessel is. ``uid`` is its stable id (the CoT uid), ``kind``
    what it is (a CoT type such as ``a-f-G-U-C``); ``time`` when it was there and ``stale``
    when the report stops being true, UTC epoch seconds; ``hae`` (height above the ellipsoid),
    ``ce`` and ``le`` (circular and linear error) in metres, :data:`UNKNOWN_METRES` when not
    known; ``course`` degrees true, ``speed`` m/s."""

    uid: str
    callsign: str
    lat: float
    lon: float
    time: float
    stale: float
    hae: float = UNKNOWN_METRES
    ce: float = UNKNOWN_METRES
    le: float = UNKNOWN_METRES
    kind: str = "a-f-G-U-C"
    course: float | None = None
    speed: float | None = None

    def __post_init__(self) -> None:
        for name in ("uid", "callsign", "kind"):
            _check_str(name, getattr(self, name))
        _check_num("lat", self.lat, -90.0, 90.0)
        _check_num("lon", self.lon, -180.0, 180.0)
        _check_num("hae", self.hae, -UNKNOWN_METRES, UNKNOWN_METRES)
        _check_num("ce", self.ce, 0.0, UNKNOWN_METRES)
        _check_num("le", self.le, 0.0, UNKNOWN_METRES)
        _check_num("time", self.time, 0.0, MAX_TIME)
        _check_num("stale", self.stale, self.time, MAX_TIME)
        if self.course is not None:
            _check_num("course", self.course, 0.0, 360.0)
        if self.speed is not None:
            _check_num("speed", self.speed, 0.0, 1e5)

    @property
    def source(self) -> str:
        """Who reported it on the native side: the tracked thing itself."""
        return self.uid


@dataclass(frozen=True, slots=True)
class EmergencyAlert:
    """An emergency raised (``active``) or cancelled on the native side by ``source``."""

    source: str
    active: bool

    def __post_init__(self) -> None:
        _check_source(self.source)
        if not isinstance(self.active, bool):
            raise ValueError("EmergencyAlert.active is a bool")


AdapterEvent = TalkStart | Pcm | TalkEnd | Text | Position | EmergencyAlert
EventSink = Callable[[AdapterEvent], None]


class Adapter(abc.ABC):
    """One native source, driven by its own asyncio driver (see the module docstring)."""

    #: PCM rate of the frames it emits and plays (one of :data:`PCM_RATES`).
    rate: int = 16000
    #: It emits TalkStart / Pcm / TalkEnd.
    yields_audio: bool = False
    #: It wants :meth:`play` and the talk_started / talk_ended calls.
    plays_audio: bool = False
    #: It plays no audio but wants :meth:`talk_ended` for every sealed burst of another
    #: member (a chat room's "who talked, verified" notices), without a mixer.
    wants_talk_notices: bool = False
    #: It emits :class:`Position`.
    yields_positions: bool = False
    #: It wants :meth:`show_position`.
    takes_positions: bool = False

    @abc.abstractmethod
    async def start(self, sink: EventSink) -> None:
        """Open the native side; from now on every event goes to ``sink``, in order."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Close the native side (a burst in progress ends). No event is emitted after."""

    def play(  # noqa: B027
        self, pcm: bytes, talkers: tuple[str, ...], *, at: float | None = None
    ) -> None:
        """20 ms of the channel's audio at :attr:`rate`; ``talkers`` are mixed in it. ``at``:
        when its frame period was due (a monotonic clock): frames whose ``at`` are 20 ms apart
        are contiguous even if they come at once (this process was not scheduled for a while);
        a longer step is a pause. An adapter that timestamps media (RTP) follows ``at``, not the
        time of the call."""

    def talk_started(self, talker: str) -> None:  # noqa: B027
        """A remote talker's audio begins (the first :meth:`play` with them follows)."""

    def talk_ended(self, talker: str, verified: bool) -> None:  # noqa: B027
        """A remote talker's audio ended; ``verified``: their burst seal matched."""

    def post(self, text: str, sender: str) -> None:  # noqa: B027
        """A text message from the channel, signed by ``sender``."""

    def emergency(self, state: EmergencyState) -> None:  # noqa: B027
        """The channel's emergency state changed."""

    def floor_denied(self, source: str, holder: str | None) -> None:  # noqa: B027
        """The channel's floor refused (or took back) the burst of ``source`` (the native
        talker of a :class:`TalkStart`); ``holder``: who has the floor, if known. The adapter
        tells that talker, as its system can (a chat line, a busy tone)."""

    def alarm(self, alarm: SecurityAlarm) -> None:  # noqa: B027
        """The endpoint raised a security alarm on this channel (:class:`SecurityAlarm`)."""

    def show_position(self, position: Position, sender: str) -> None:  # noqa: B027
        """A position from the channel, signed by ``sender`` (if :attr:`takes_positions`)."""
