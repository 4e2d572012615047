"""Sans-IO RTP streams of a radio-over-IP gateway: PCM + push-to-talk ↔ RTP datagrams.

The input side is :mod:`adapters.rtp.receiver`, the output side :mod:`adapters.rtp.sender`;
this module gathers both with their configuration types, as one import for their users.
"""

from __future__ import annotations

from adapters.rtp.config import (
    PayloadFormat,
    RtpReceiverConfig,
    RtpSenderConfig,
    RtpTransportConfig,
)
from adapters.rtp.receiver import Audio, BurstEnd, BurstStart, ReceiverStats, RtpEvent, RtpReceiver
from adapters.rtp.sender import Outgoing, RtpSender

__all__ = [
    "PayloadFormat",
    "RtpTransportConfig",
    "RtpReceiverConfig",
    "RtpSenderConfig",
    "BurstStart",
    "Audio",
    "BurstEnd",
    "Outgoing",
    "RtpEvent",
    "ReceiverStats",
    "RtpReceiver",
    "RtpSender",
]
