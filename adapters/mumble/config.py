"""Which Mumble channel is which Crossband channel: the ``mumble`` section of a device's config::

    mumble:
      host: mumble.example.org
      port: 64738
      fingerprint: "3a:5f:…"          # SHA-256 of the server certificate (DER); or ca_file
      cert_file: /etc/crossband/mumble-bridge.crt   # the bridge's certificate, made on
      key_file: /etc/crossband/mumble-bridge.key    # first use (key mode 0600)
      password_file: /etc/crossband/mumble.pass     # optional server password, mode 0600
      rate: 16000                     # PCM rate on the adapter interface
      channels:
        - mumble: Dispatch/North      # path of channel names from the root; "" = the root
          channel: shiprider-7        # the Crossband channel
          username: cb-north          # the bridge user in that Mumble channel
          priority: normal            # floor priority of Mumble talkers
          voice_bitrate: 40000        # Opus bit rate into Mumble
          hang_time: 0.3              # s without voice that end a talker (lost terminator)
          cert_file: …                # optional, per channel (else the section's)
          key_file: …

A Mumble user is in one channel at a time, so each mapping is its own connection, as its own
bridge user. :func:`load_mumble_config` validates the section into one :class:`MumbleConfig`
per mapping or raises :class:`~adapters.errors.AdapterConfigError` naming the setting
(unknown keys too). A password is read only from a 0600 file, never from the YAML, and never
echoed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from adapters.base import PCM_RATES, PRIORITIES, Priority
from adapters.errors import AdapterConfigError
from adapters.mumble.client import ClientConfig
from adapters.mumble.driver import ServerConfig

__all__ = ["MumbleConfig", "load_mumble_config"]

_TOP = {"host", "port", "fingerprint", "ca_file", "cert_file", "key_file", "password_file",
        "rate", "channels"}  # fmt: skip
_CHANNEL = {"mumble", "channel", "username", "priority", "voice_bitrate", "hang_time",
            "cert_file", "key_file"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class MumbleConfig:
    """One mapping: a connection (``server``, ``client``) and its Crossband ``channel``."""

    server: ServerConfig
    client: ClientConfig
    channel: str = "mumble"
    rate: int = 16000
    priority: Priority = "normal"
    voice_bitrate: int = 40000
    hang_time: float = 0.3
    start_timeout: float = 15.0

    def __post_init__(self) -> None:
        if not self.channel:
            raise ValueError("a Mumble mapping names its Crossband channel")
        if self.rate not in PCM_RATES:
            raise ValueError(f"rate must be one of {PCM_RATES}")
        if self.priority not in PRIORITIES:
            raise ValueError(f"priority must be one of {PRIORITIES}")
        if not 6000 <= self.voice_bitrate <= 510000:
            raise ValueError("voice_bitrate must be 6000..510000")
        if not 0.05 <= self.hang_time <= 5.0:
            raise ValueError("hang_time must be 0.05..5 s")


def _keys(where: str, item: Any, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(item, Mapping):
        raise AdapterConfigError(where, "expected a mapping")
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise AdapterConfigError(where, f"unknown key(s) {', '.join(map(str, unknown))}")
    return cast(Mapping[str, Any], item)


def _password(where: str, path: Any) -> str:
    if path is None:
        return ""
    try:
        if os.stat(path).st_mode & 0o077:
            raise AdapterConfigError(where, "the password file must be mode 0600")
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError as exc:
        raise AdapterConfigError(where, f"cannot read it: {exc.strerror}") from None


def _opt(d: Mapping[str, Any], key: str, default: str | None = None) -> str | None:
    return default if d.get(key) is None else str(d[key])


def load_mumble_config(spec: Any, where: str = "mumble") -> list[MumbleConfig]:
    """One validated :class:`MumbleConfig` per mapping of the ``mumble`` section."""
    top = _keys(where, spec, _TOP)
    if not top.get("host"):
        raise AdapterConfigError(f"{where}.host", "is required")
    if not top.get("fingerprint") and not top.get("ca_file"):
        raise AdapterConfigError(
            where, "give fingerprint (the server certificate's SHA-256) or ca_file"
        )
    channels = top.get("channels")
    if not isinstance(channels, list) or not channels:
        raise AdapterConfigError(f"{where}.channels", "a non-empty list of mappings")
    password = _password(f"{where}.password_file", top.get("password_file"))
    out: list[MumbleConfig] = []
    for i, raw in enumerate(channels):
        at = f"{where}.channels[{i}]"
        item = _keys(at, raw, _CHANNEL)
        for key in ("channel", "username"):
            if not item.get(key):
                raise AdapterConfigError(f"{at}.{key}", "is required")
        try:
            server = ServerConfig(
                str(top["host"]),
                int(top.get("port", 64738)),
                fingerprint=_opt(top, "fingerprint"),
                ca_file=_opt(top, "ca_file"),
                cert_file=_opt(item, "cert_file", _opt(top, "cert_file")),
                key_file=_opt(item, "key_file", _opt(top, "key_file")),
            )
            client = ClientConfig(
                str(item["username"]), str(item.get("mumble", "")), password=password
            )
            out.append(
                MumbleConfig(
                    server,
                    client,
                    channel=str(item["channel"]),
                    rate=int(top.get("rate", 16000)),
                    priority=cast(Priority, item.get("priority", "normal")),
                    voice_bitrate=int(item.get("voice_bitrate", 40000)),
                    hang_time=float(item.get("hang_time", 0.3)),
                )
            )
        except (TypeError, ValueError) as exc:
            raise AdapterConfigError(at, str(exc)) from None
    if len({c.client.username for c in out}) != len(out):
        raise AdapterConfigError(f"{where}.channels", "each mapping needs its own username")
    certs = [c.server.cert_file for c in out if c.server.cert_file is not None]
    if len(set(certs)) != len(certs):  # murmurd knows a user by certificate
        raise AdapterConfigError(f"{where}.channels", "each mapping needs its own cert_file")
    return out
