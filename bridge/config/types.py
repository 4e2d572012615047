"""Value types shared by the settings models: ports, rates, durations, names."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, PlainValidator

__all__ = ["Burst", "Count", "EnvName", "Name", "Port", "Rate", "Seconds", "UdpPort"]

Port = Annotated[int, Field(ge=0, le=65535)]
"""A TCP/UDP port, 0 (any free port) to 65535."""
Rate = Annotated[float, Field(gt=0, allow_inf_nan=False)]
"""Events per second: positive and finite (a rate of 0 would let nobody send)."""
Burst = Annotated[float, Field(ge=1, allow_inf_nan=False)]
"""The depth of a token bucket: at least one event."""
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
"""A duration in seconds: positive and finite."""
Count = Annotated[int, Field(ge=1)]
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def _name(value: str) -> str:
    if not value or value != value.strip() or not value.isprintable() or len(value) > 200:
        raise ValueError("must be a non-empty name without leading or trailing blanks")
    return value


def _env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise ValueError("must be the NAME of an environment variable (letters, digits, _)")
    return value


Name = Annotated[str, AfterValidator(_name)]
"""A non-empty printable string without leading or trailing blanks."""
EnvName = Annotated[str, AfterValidator(_env_name)]
"""The name of an environment variable (never its value: passphrases stay out of files)."""


def _udp_port(value: Any) -> int | Literal[False]:
    if value is False:
        return False
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 65535:
        return value
    raise ValueError("must be a port number 0..65535, or false to disable UDP")


UdpPort = Annotated[int | Literal[False], PlainValidator(_udp_port)]
