"""Which adapter serves which channel, and how the channel's audio travels between endpoints.

A :class:`Binding` ties one adapter (``adapters.base.Adapter``) to one endpoint channel; its
:class:`ChannelAudio` is the channel's side of the audio path (codec between endpoints, Opus
bit rate, jitter buffer bounds, see :mod:`bridge.audio.formats`). The PCM rate is the
adapter's own (``adapter.rate``); :class:`~bridge.gateway.positions.PositionPacing` paces the
positions it yields. All validate themselves when built.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from adapters.base import Adapter
from bridge.audio.formats import CHANNEL_CODECS, DEFAULT_BITRATE, ChannelCodec
from bridge.gateway.positions import PositionPacing

__all__ = ["Binding", "ChannelAudio"]


@dataclass(frozen=True, slots=True)
class ChannelAudio:
    """The channel's audio between endpoints; ``None`` jitter bounds: the codec's defaults."""

    codec: ChannelCodec = "opus"
    bitrate: int = DEFAULT_BITRATE
    jitter_min_ms: int | None = None
    jitter_max_ms: int | None = None

    def __post_init__(self) -> None:
        if self.codec not in CHANNEL_CODECS:
            raise ValueError(f"channel codec must be one of {', '.join(CHANNEL_CODECS)}")
        if not 6000 <= self.bitrate <= 510000:  # RFC 6716 §2.1.1
            raise ValueError("bitrate must be 6000..510000")
        lo, hi = self.jitter_min_ms, self.jitter_max_ms
        if (lo is not None and lo < 0) or (hi is not None and hi <= 0):
            raise ValueError("jitter bounds must be positive")
        if lo is not None and hi is not None and lo > hi:
            raise ValueError("jitter_min_ms must not exceed jitter_max_ms")


@dataclass(frozen=True, slots=True)
class Binding:
    """One adapter bound to one endpoint channel; ``positions``: how fast its positions go."""

    channel: str
    adapter: Adapter
    audio: ChannelAudio = field(default_factory=ChannelAudio)
    positions: PositionPacing = field(default_factory=PositionPacing)

    def __post_init__(self) -> None:
        if not isinstance(self.channel, str) or not self.channel:
            raise ValueError("a binding names its channel")
        if not isinstance(self.adapter, Adapter):
            raise ValueError("a binding needs an adapters.base.Adapter")
