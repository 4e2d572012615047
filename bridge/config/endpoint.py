"""``endpoint.yaml``: one device endpoint's settings, typed and validated (docs/operators.md).

``relay_key`` pins the relay: the base64url public key that ``crossband keys relay`` prints.
With it, the endpoint accepts a relay only if the relay signs the device's own fresh nonce with
that key. ``tls_ca`` names the PEM file of the CA(s) that signed the relay's TLS certificate
(``wss://`` only); without it the system's CAs are trusted. The native sections (``rtp``,
``xmpp``, ``mumble``, ``cot``) are checked by their adapters' own loaders, called by
``bridge.cli.native``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    ConfigDict,
    PlainValidator,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bridge.config.loading import (
    ConfigPath,
    SettingProblem,
    Settings,
    parse_settings,
    read_yaml,
)
from bridge.config.types import EnvName
from crypto.encoding import b64d, b64e
from crypto.errors import CrossbandError
from crypto.keys import VerifyKey

__all__ = ["EndpointSettings", "load_endpoint_settings", "parse_relay_key"]

_KEY_TEXT = re.compile(r"[A-Za-z0-9_-]{43}")


def parse_relay_key(value: Any) -> VerifyKey:
    """The relay's Ed25519 public key from its base64url text (43 characters, canonical)."""
    problem = "must be the relay's public key as printed by `crossband keys relay` (base64url)"
    if not isinstance(value, str) or not _KEY_TEXT.fullmatch(value):
        raise ValueError(problem)
    try:
        raw = b64d(value)
        if b64e(raw) != value:  # non-canonical trailing bits: a mistyped key
            raise ValueError(problem)
        return VerifyKey(raw)
    except (CrossbandError, ValueError):
        raise ValueError(problem) from None


def _relay_url(value: str) -> str:
    problem = "must be the relay's WebSocket URL, ws://HOST:PORT/ws or wss://HOST:PORT/ws"
    try:
        url = urlsplit(value)
        url.port  # noqa: B018  (raises ValueError on a port that is not a number)
    except ValueError:
        raise ValueError(problem) from None
    if url.scheme not in ("ws", "wss") or not url.hostname or any(c.isspace() for c in value):
        raise ValueError(problem)
    return value


class EndpointSettings(Settings):
    """Every setting of ``endpoint.yaml``; file paths are relative to the file."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    device_key: ConfigPath
    credential: ConfigPath
    trust_bundle: ConfigPath
    state: ConfigPath
    relay: Annotated[str, AfterValidator(_relay_url)]
    transport: Literal["udp", "ws"] = "udp"
    passphrase_env: EnvName | None = None
    relay_key: Annotated[VerifyKey, PlainValidator(parse_relay_key)] | None = None
    tls_ca: ConfigPath | None = None
    revocation_lists: list[ConfigPath] = []
    rtp: dict[Any, Any] | None = None  # checked by the RTP adapter (adapters/rtp/mapping.py)
    # the other native sections, each checked by its adapter's loader (bridge/cli/native.py)
    xmpp: dict[Any, Any] | None = None
    mumble: dict[Any, Any] | None = None
    cot: dict[Any, Any] | None = None
    sip: dict[Any, Any] | None = None

    @field_validator("revocation_lists", mode="before")
    @classmethod
    def _empty_list(cls, value: Any, info: ValidationInfo) -> Any:
        return [] if value is None else value

    @model_validator(mode="after")
    def _consistent(self) -> EndpointSettings:
        if self.tls_ca is not None and not self.relay.startswith("wss://"):
            raise SettingProblem("tls_ca", "given, but relay is not a wss:// URL (no TLS)")
        return self


def load_endpoint_settings(path: str | Path) -> EndpointSettings:
    """Read and validate ``endpoint.yaml``, or raise a one-line :class:`ConfigError`."""
    return parse_settings(EndpointSettings, read_yaml(path), path)
