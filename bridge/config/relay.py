"""``relay.yaml``: the relay's settings, typed and validated (see docs/operators.md).

There is deliberately no setting for how long a channel lives: a channel's expiry is bounded by
the agreement it cites and by its issuer's credential, and no operator setting can extend it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from bridge.config.loading import (
    ConfigPath,
    SettingProblem,
    Settings,
    parse_settings,
    read_yaml,
)
from bridge.config.types import Burst, Count, EnvName, Name, Port, Rate, Seconds, UdpPort

__all__ = [
    "MIN_SEND_QUEUE",
    "RelayCluster",
    "RelayLimits",
    "RelaySettings",
    "load_relay_settings",
]

MIN_SEND_QUEUE = 4096  # bytes: below this a per-connection send queue would drop every frame


class RelayLimits(Settings):
    """``limits:``: what one connection, and all of them together, may use."""

    control_rate: Rate = 50.0
    control_burst: Burst = 200.0
    media_rate: Rate = 120.0
    media_burst: Burst = 240.0
    max_connections: Count = 1000
    max_unauthenticated: Count = 100
    auth_timeout: Seconds = 10.0
    send_queue_limit: int = Field(default=1 << 20, ge=MIN_SEND_QUEUE)


class RelayCluster(Settings):
    """``cluster:``: this relay is one node of several sharing a NATS cluster (DESIGN §9,
    :mod:`bridge.relay.nats`). Absent: the single-process relay with SQLite."""

    nats: list[Name] = Field(min_length=1)  # nats://host:port of the country's NATS servers
    node: Name  # this relay node's name, unique among the nodes
    replicas: int = Field(default=3, ge=1, le=5)  # JetStream stream and KV replicas


class RelaySettings(Settings):
    """Every setting of ``relay.yaml``; file paths are relative to the file."""

    relay_id: Name = "relay"
    relay_key: ConfigPath | None = None
    passphrase_env: EnvName | None = None
    host: Name = "127.0.0.1"
    port: Port = 8443
    udp_port: UdpPort = 8444
    tls_cert: ConfigPath | None = None
    tls_key: ConfigPath | None = None
    trust_bundle: ConfigPath
    revocation_lists: list[ConfigPath] = []
    database: ConfigPath
    audit_log: ConfigPath
    audit_fail_closed: bool = False
    max_talk_time: Seconds = 60.0
    emergency_max_talk_time: Seconds | None = None
    message_ttl: Seconds = 7 * 86400.0
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    limits: RelayLimits = RelayLimits()
    cluster: RelayCluster | None = None

    @field_validator("revocation_lists", "limits", mode="before")
    @classmethod
    def _empty_section(cls, value: Any, info: ValidationInfo) -> Any:
        # `limits:` with every line below it commented out is an empty section, not an error
        if value is None:
            return [] if info.field_name == "revocation_lists" else {}
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RelaySettings:
        if self.tls_key is not None and self.tls_cert is None:
            raise SettingProblem("tls_key", "given without tls_cert")
        if self.passphrase_env is not None and self.relay_key is None:
            raise SettingProblem("passphrase_env", "given without relay_key (nothing to unlock)")
        if self.limits.max_unauthenticated > self.limits.max_connections:
            raise SettingProblem(
                "limits.max_unauthenticated",
                f"must not exceed limits.max_connections ({self.limits.max_unauthenticated} > "
                f"{self.limits.max_connections})",
            )
        return self


def load_relay_settings(path: str | Path) -> RelaySettings:
    """Read and validate ``relay.yaml``, or raise a one-line :class:`~bridge.errors.ConfigError`."""
    return parse_settings(RelaySettings, read_yaml(path), path)
