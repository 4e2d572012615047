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
* :class:`Text` (``source``, ``body``) — a text message.

**Calls it accepts** (channel → native side):

* :meth:`~Adapter.play` (``pcm``, ``talkers``) — 20 ms of the channel's mixed audio;
* :meth:`~Adapter.talk_started` (``talker``) and :meth:`~Adapter.talk_ended` (``talker``,
  ``verified``) — a remote talker's audio begins and ends. ``verified`` is the verdict of the
  talker's signed burst seal: the frames heard are exactly the frames the talker signed. It is
  known only at the end of a burst, so only ``talk_ended`` carries it;
* :meth:`~Adapter.post` (``text``, ``sender``) — a message from the channel, by its verified
  sender;
* :meth:`~Adapter.emergency` (``state``) — the channel's emergency state changed, as the relay
  claims it (``verified`` False) or as a member signed it (``verified`` True).

Events are frozen dataclasses that validate themselves when built: a malformed frame is a
``ValueError`` where it is made, not a surprise two layers away. The accepting calls are
synchronous and must not block (the gateway calls them from its 20 ms playout tick); an
adapter that cannot show something (a radio cannot show text) leaves the default, which
ignores it. ``yields_audio`` / ``plays_audio`` say which audio directions the adapter has, so
the gateway builds only the audio path it needs.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "PCM_RATES",
    "PRIORITIES",
    "Adapter",
    "AdapterEvent",
    "EmergencyState",
    "EventSink",
    "Pcm",
    "Priority",
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
    """A text message from the native side."""

    source: str
    body: str

    def __post_init__(self) -> None:
        _check_source(self.source)
        if not isinstance(self.body, str) or not self.body:
            raise ValueError("a Text needs a non-empty body")


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


AdapterEvent = TalkStart | Pcm | TalkEnd | Text
EventSink = Callable[[AdapterEvent], None]


class Adapter(abc.ABC):
    """One native source, driven by its own asyncio driver (see the module docstring)."""

    #: PCM rate of the frames it emits and plays (one of :data:`PCM_RATES`).
    rate: int = 16000
    #: It emits TalkStart / Pcm / TalkEnd.
    yields_audio: bool = False
    #: It wants :meth:`play` and the talk_started / talk_ended calls.
    plays_audio: bool = False

    @abc.abstractmethod
    async def start(self, sink: EventSink) -> None:
        """Open the native side; from now on every event goes to ``sink``, in order."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Close the native side (a burst in progress ends). No event is emitted after."""

    def play(self, pcm: bytes, talkers: tuple[str, ...]) -> None:  # noqa: B027
        """20 ms of the channel's audio at :attr:`rate`; ``talkers`` are mixed in it."""

    def talk_started(self, talker: str) -> None:  # noqa: B027
        """A remote talker's audio begins (the first :meth:`play` with them follows)."""

    def talk_ended(self, talker: str, verified: bool) -> None:  # noqa: B027
        """A remote talker's audio ended; ``verified``: their burst seal matched."""

    def post(self, text: str, sender: str) -> None:  # noqa: B027
        """A text message from the channel, signed by ``sender``."""

    def emergency(self, state: EmergencyState) -> None:  # noqa: B027
        """The channel's emergency state changed."""
