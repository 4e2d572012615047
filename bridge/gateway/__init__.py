"""Connects any adapter (``adapters.base``) to an endpoint channel: bursts ↔ floor, PCM ↔ the
audio path, text ↔ messages, positions ↔ data messages. :class:`Gateway` is the driver,
:class:`ChannelGateway` one binding's glue."""

from bridge.gateway.binding import Binding, ChannelAudio
from bridge.gateway.channel import ChannelGateway, GatewayEndpoint, GatewayStats
from bridge.gateway.gateway import Gateway
from bridge.gateway.positions import PositionPacing

__all__ = [
    "Binding",
    "ChannelAudio",
    "ChannelGateway",
    "Gateway",
    "GatewayEndpoint",
    "GatewayStats",
    "PositionPacing",
]
