"""Configuration files, typed and validated (pydantic v2).

- :mod:`bridge.config.loading`: reading YAML, the strict :class:`Settings` base, paths relative
  to the file, and the one-line :class:`~bridge.errors.ConfigError` (``FILE: SETTING: PROBLEM``)
  that every failure becomes;
- :mod:`bridge.config.types`: ports, rates, durations, names;
- :mod:`bridge.config.relay`: ``relay.yaml`` (:class:`RelaySettings`);
- :mod:`bridge.config.endpoint`: ``endpoint.yaml`` (:class:`EndpointSettings`).

This package turns files into checked values only. Building the running objects from them is
the job of the layer that owns them: :mod:`bridge.relay.config` for the relay,
:mod:`bridge.cli.endpoint` for an endpoint and its adapters.
"""

from __future__ import annotations

from bridge.config.endpoint import EndpointSettings, load_endpoint_settings
from bridge.config.loading import ConfigPath, Settings, config_error, parse_settings, read_yaml
from bridge.config.relay import RelayLimits, RelaySettings, load_relay_settings

__all__ = [
    "ConfigPath",
    "EndpointSettings",
    "RelayLimits",
    "RelaySettings",
    "Settings",
    "config_error",
    "load_endpoint_settings",
    "load_relay_settings",
    "parse_settings",
    "read_yaml",
]
