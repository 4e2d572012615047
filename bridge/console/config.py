"""The ``console`` section of ``console.yaml`` (the rest of the file is an ``endpoint.yaml``)::

    console:
      listen: 127.0.0.1:8480        # host:port; loopback by default (put TLS in front otherwise)
      session_ttl: 28800            # seconds a login lasts at most (8 h)
      session_idle: 1800            # seconds without use before a session ends
      users:
        - name: dispatcher-1
          password_hash: scrypt$15$8$1$...   # crossband console hash-password
      agreements: [agreement.json]  # agreements incident channels may be opened under
      directory: [keys/ca-rcmp_gw-sarnia.cred]   # credentials of devices to pick from

A listen address that is not loopback must be asked for with ``allow_remote: true``: the
console speaks plain HTTP and is meant to sit behind a TLS proxy when reached from elsewhere.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pydantic import Field, field_validator, model_validator

from bridge.config import ConfigPath, Settings, config_error, parse_settings
from bridge.config.loading import SettingProblem
from bridge.config.types import Name, Seconds
from bridge.console.auth import parse_hash
from bridge.errors import ConfigError

__all__ = ["ConsoleSettings", "ConsoleUser", "parse_console", "split_listen"]


def split_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be host:port, e.g. 127.0.0.1:8480")
    return host.strip("[]"), int(port)


class ConsoleUser(Settings):
    name: Name
    password_hash: str

    @field_validator("password_hash")
    @classmethod
    def _hash(cls, value: str) -> str:
        parse_hash(value)  # ValueError names the problem
        return value


class ConsoleSettings(Settings):
    listen: str = "127.0.0.1:8480"
    allow_remote: bool = False
    session_ttl: Seconds = 8 * 3600.0
    session_idle: Seconds = 1800.0
    users: list[ConsoleUser] = Field(min_length=1)
    agreements: list[ConfigPath] = []
    directory: list[ConfigPath] = []

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        split_listen(value)
        return value

    @model_validator(mode="after")
    def _checks(self) -> ConsoleSettings:
        names = [u.name for u in self.users]
        if len(set(names)) != len(names):
            raise SettingProblem("console.users", "two users have the same name")
        host, _ = split_listen(self.listen)
        if not self.allow_remote and not _loopback(host):
            problem = f"{host} is not loopback; set allow_remote: true (behind TLS) to listen there"
            raise SettingProblem("console.listen", problem)
        return self

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]

    def password_hashes(self) -> dict[str, str]:
        return {u.name: u.password_hash for u in self.users}


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_console(data: Any, source: str) -> tuple[dict[str, Any], ConsoleSettings]:
    """Split a parsed console.yaml into (the endpoint document, the console settings)."""
    if not isinstance(data, dict) or "console" not in data:
        raise config_error(source, "console", "missing (users and listen address)")
    rest = {k: v for k, v in data.items() if k != "console"}
    section = data["console"]
    if not isinstance(section, dict):
        raise config_error(source, "console", "expected a mapping of settings")
    try:
        settings = parse_settings(ConsoleSettings, section, source)
    except ConfigError as exc:  # name the section in the setting
        text = str(exc)
        prefix = f"{source}: "
        if text.startswith(prefix) and not text[len(prefix) :].startswith("console"):
            raise config_error(source, None, "console." + text[len(prefix) :]) from None
        raise
    return rest, settings
