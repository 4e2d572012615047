"""Which RTP stream is which channel: the gateway's mapping, loaded from YAML.

A radio-over-IP gateway is configured with a list of channels; for each, an optional
*input* (RTP from the radio side that becomes talk bursts on the channel) and an optional
*output* (where the channel's audio is sent as RTP)::

    rtp:
      rate: 16000                 # endpoint audio rate: 16000 (wideband, default) or 8000
      channels:
        - channel: shiprider-7
          codec: opus             # opus (default) | l16 | pcmu | pcma (passthrough, rate
                                  # 8000 for pcmu/pcma; see bridge.audio, docs/audio.md)
          priority: normal        # floor priority of bursts from the radio side
          bitrate: 48000          # Opus bit rate between endpoints (bridge.audio)
          jitter: {min_ms: 20, max_ms: 200}   # min_ms: also each burst's start delay and floor
          input:
            port: 5004            # host (default 127.0.0.1) | group + interface (multicast)
            payloads: [pcmu, {name: l16, pt: 97, clock_rate: 16000}]   # or payload: pcmu
            hang_time: 0.5        # seconds of silence that end a burst
            end_on_marker: false
            end_signal_pt: 13     # optional
            resample_lead: false  # true: resampled audio ~12 ms late, not 20 (see below)
          output:
            host: 127.0.0.1
            port: 5006
            payload: {name: opus, pt: 111}
            ssrc_mode: continuous # (default) or per-burst: a new SSRC for every burst
            ptime_ms: 20
            resample_lead: false

:func:`load_gateway_config` takes the ``rtp`` mapping (a ``dict``) and returns validated
:class:`ChannelMapping` objects, or raises :class:`~adapters.errors.AdapterConfigError`
naming the offending setting — unknown keys included, so a misspelt option is never silently
ignored. (The ``crossband`` command turns it into a ``ConfigError`` naming the file.)

``resample_lead`` (input or output, default false) matters only where the RTP clock and the
channel rate differ (G.711 at ``rate: 16000``): with it, each burst starts with ~12 ms of
silence and the resampled audio is that late, instead of a frame (20 ms) late; a burst then
carries ~12 ms more (:mod:`adapters.rtp.codec`).

``codec``, ``bitrate`` and ``jitter`` are settings of the channel's path between endpoints,
not of RTP: they are carried here as plain values for the gateway (``bridge.gateway``).
"""

from __future__ import annotations

from collections.abc import Mapping as AnyMapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from adapters.base import PRIORITIES, Priority
from adapters.errors import AdapterConfigError
from adapters.rtp.config import (
    PayloadFormat,
    PayloadName,
    RtpReceiverConfig,
    RtpSenderConfig,
    RtpTransportConfig,
)

__all__ = ["ChannelMapping", "RtpInput", "RtpOutput", "load_gateway_config"]

ChannelCodec = Literal["opus", "l16", "pcmu", "pcma"]  # between endpoints (bridge.audio)
CHANNEL_CODECS = ("opus", "l16", "pcmu", "pcma")  # bridge.audio's; a test keeps them equal
AUDIO_RATES = (8000, 16000)  # endpoint audio rates (bridge.audio)
DEFAULT_BITRATE = 64000  # bridge.audio's default Opus bit rate; a test keeps them equal

_TOP_KEYS = {"rate", "channels"}
_CHANNEL_KEYS = {"channel", "codec", "priority", "bitrate", "jitter", "input", "output"}
_TRANSPORT_KEYS = {"port", "host", "group", "interface", "ttl"}
_INPUT_KEYS = _TRANSPORT_KEYS | {
    "payload",
    "payloads",
    "hang_time",
    "end_on_marker",
    "end_signal_pt",
    "max_gap_ms",
    "resample_lead",
}
_OUTPUT_KEYS = _TRANSPORT_KEYS | {
    "payload",
    "ssrc_mode",
    "ptime_ms",
    "rtcp_interval",
    "cname",
    "resample_lead",
}


@dataclass(frozen=True, slots=True)
class RtpInput:
    transport: RtpTransportConfig
    receiver: RtpReceiverConfig


@dataclass(frozen=True, slots=True)
class RtpOutput:
    transport: RtpTransportConfig
    sender: RtpSenderConfig


@dataclass(frozen=True, slots=True)
class ChannelMapping:
    """One channel of the gateway and its RTP streams (at least one of them)."""

    channel: str
    rate: int = 16000
    codec: ChannelCodec = "opus"
    priority: Priority = "normal"
    bitrate: int = DEFAULT_BITRATE
    jitter_min_ms: int | None = None  # None: the ListenMixer default for the codec
    jitter_max_ms: int | None = None
    input: RtpInput | None = None
    output: RtpOutput | None = None

    def __post_init__(self) -> None:
        if not self.channel:
            raise ValueError("channel must be named")
        if self.rate not in AUDIO_RATES:
            raise ValueError(f"rate must be one of {AUDIO_RATES}")
        if self.codec not in CHANNEL_CODECS:
            raise ValueError(f"codec must be one of {', '.join(CHANNEL_CODECS)}")
        if self.codec in ("pcmu", "pcma") and self.rate != 8000:
            raise ValueError(f"codec {self.codec} (G.711 passthrough) needs rate 8000")
        if self.priority not in PRIORITIES:
            raise ValueError(f"priority must be one of {PRIORITIES}")
        lo, hi = self.jitter_min_ms, self.jitter_max_ms
        if (lo is not None and lo < 0) or (hi is not None and hi <= 0):
            raise ValueError("jitter bounds must be positive")
        if lo is not None and hi is not None and lo > hi:
            raise ValueError("jitter min_ms must not exceed max_ms")
        if self.input is None and self.output is None:
            raise ValueError("a channel needs an input, an output or both")
        if self.input is not None and self.input.receiver.rate != self.rate:
            raise ValueError("input rate must equal the channel rate")
        if self.output is not None and self.output.sender.rate != self.rate:
            raise ValueError("output rate must equal the channel rate")


def _keys(where: str, item: Any, allowed: set[str]) -> AnyMapping[str, Any]:
    if not isinstance(item, AnyMapping):
        raise AdapterConfigError(where, f"expected a mapping, got {type(item).__name__}")
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise AdapterConfigError(where, f"unknown key(s) {', '.join(map(str, unknown))}")
    return cast(AnyMapping[str, Any], item)


def _payload(where: str, item: Any, default_clock: int) -> PayloadFormat:
    if isinstance(item, str):
        item = {"name": item}
    spec = _keys(where, item, {"name", "pt", "clock_rate"})
    name = str(spec.get("name", "")).lower()
    if name not in ("pcmu", "pcma", "l16", "opus"):
        raise AdapterConfigError(where, "payload name must be pcmu, pcma, l16 or opus")
    try:
        return PayloadFormat.of(
            cast(PayloadName, name),
            None if spec.get("pt") is None else int(spec["pt"]),
            int(spec.get("clock_rate", default_clock)),
        )
    except (TypeError, ValueError) as exc:
        raise AdapterConfigError(where, str(exc)) from None


def _transport(where: str, spec: AnyMapping[str, Any]) -> RtpTransportConfig:
    if "port" not in spec:
        raise AdapterConfigError(where, "port is required")
    try:
        return RtpTransportConfig(
            int(spec["port"]),
            host=str(spec.get("host", "127.0.0.1")),
            group=None if spec.get("group") is None else str(spec["group"]),
            interface=str(spec.get("interface", "127.0.0.1")),
            ttl=int(spec.get("ttl", 1)),
        )
    except (TypeError, ValueError) as exc:
        raise AdapterConfigError(where, str(exc)) from None


def _input(where: str, item: Any, rate: int) -> RtpInput:
    spec = _keys(where, item, _INPUT_KEYS)
    if ("payload" in spec) == ("payloads" in spec):
        raise AdapterConfigError(where, "give exactly one of payload or payloads")
    raw = spec["payloads"] if "payloads" in spec else [spec["payload"]]
    if not isinstance(raw, list) or not raw:
        raise AdapterConfigError(where, "payloads must be a non-empty list")
    payloads = tuple(_payload(f"{where}.payloads[{i}]", p, rate) for i, p in enumerate(raw))
    try:
        receiver = RtpReceiverConfig(
            payloads,
            rate=rate,
            hang_time=float(spec.get("hang_time", 0.5)),
            end_on_marker=bool(spec.get("end_on_marker", False)),
            end_signal_pt=None if spec.get("end_signal_pt") is None else int(spec["end_signal_pt"]),
            max_gap_ms=int(spec.get("max_gap_ms", 300)),
            resample_lead=_flag(where, spec, "resample_lead"),
        )
    except (TypeError, ValueError) as exc:
        raise AdapterConfigError(where, str(exc)) from None
    return RtpInput(_transport(where, spec), receiver)


def _flag(where: str, spec: AnyMapping[str, Any], key: str) -> bool:
    value = spec.get(key, False)
    if not isinstance(value, bool):
        raise AdapterConfigError(f"{where}.{key}", "must be true or false")
    return value


def _output(where: str, item: Any, rate: int, bitrate: int) -> RtpOutput:
    spec = _keys(where, item, _OUTPUT_KEYS)
    if "payload" not in spec:
        raise AdapterConfigError(where, "payload is required")
    payload = _payload(f"{where}.payload", spec["payload"], rate)
    interval = spec.get("rtcp_interval", 5.0)
    try:
        sender = RtpSenderConfig(
            payload,
            rate=rate,
            ssrc_mode=spec.get("ssrc_mode", "continuous"),
            ptime_ms=int(spec.get("ptime_ms", 20)),
            rtcp_interval=None if interval is None else float(interval),
            cname=str(spec.get("cname", "crossband")),
            opus_bitrate=bitrate,
            resample_lead=_flag(where, spec, "resample_lead"),
        )
    except (TypeError, ValueError) as exc:
        raise AdapterConfigError(where, str(exc)) from None
    return RtpOutput(_transport(where, spec), sender)


def _channel(where: str, item: Any, rate: int) -> ChannelMapping:
    spec = _keys(where, item, _CHANNEL_KEYS)
    if not isinstance(spec.get("channel"), str) or not spec["channel"]:
        raise AdapterConfigError(where, "channel (the channel id) is required")
    where = f"{where} ({spec['channel']})"
    jitter = _keys(f"{where}.jitter", spec.get("jitter", {}), {"min_ms", "max_ms"})
    try:
        bitrate = int(spec.get("bitrate", DEFAULT_BITRATE))
        if not 6000 <= bitrate <= 510000:  # RFC 6716 §2.1.1
            raise ValueError("bitrate must be 6000..510000")
        return ChannelMapping(
            channel=spec["channel"],
            rate=rate,
            codec=spec.get("codec", "opus"),
            priority=cast(Priority, str(spec.get("priority", "normal"))),
            bitrate=bitrate,
            jitter_min_ms=None if "min_ms" not in jitter else int(jitter["min_ms"]),
            jitter_max_ms=None if "max_ms" not in jitter else int(jitter["max_ms"]),
            input=None
            if spec.get("input") is None
            else _input(f"{where}.input", spec["input"], rate),
            output=(
                None
                if spec.get("output") is None
                else _output(f"{where}.output", spec["output"], rate, bitrate)
            ),
        )
    except (TypeError, ValueError) as exc:
        raise AdapterConfigError(where, str(exc)) from None


def load_gateway_config(config: AnyMapping[str, Any]) -> list[ChannelMapping]:
    """Validate the ``rtp`` section of a configuration file (see the module docstring)."""
    spec = _keys("rtp", config, _TOP_KEYS)
    try:
        rate = int(spec.get("rate", 16000))
    except (TypeError, ValueError):
        raise AdapterConfigError("rtp.rate", "must be an integer") from None
    if rate not in AUDIO_RATES:
        raise AdapterConfigError("rtp.rate", f"must be one of {AUDIO_RATES}")
    channels = spec.get("channels")
    if not isinstance(channels, list) or not channels:
        raise AdapterConfigError("rtp.channels", "a non-empty list of channels is required")
    mappings = [_channel(f"rtp.channels[{i}]", c, rate) for i, c in enumerate(channels)]
    seen: dict[str, str] = {}
    for m in mappings:
        if m.channel in seen:
            raise AdapterConfigError("rtp.channels", f"channel {m.channel} is mapped twice")
        seen[m.channel] = m.channel
    ports: dict[tuple[str, int], str] = {}
    for m in mappings:
        if m.input is None or m.input.transport.port == 0:
            continue
        t = m.input.transport
        key = (t.group or t.host, t.port)
        if key in ports:
            raise AdapterConfigError(
                "rtp.channels",
                f"input {key[0]}:{key[1]} is used by both {ports[key]} and {m.channel}",
            )
        ports[key] = m.channel
    return mappings
