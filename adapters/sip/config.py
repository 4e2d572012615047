"""The SIP adapter's configuration (the ``sip:`` section of a gateway's YAML), validated.

::

    sip:
      listen: 127.0.0.1:5060      # where the user agent listens (UDP); loopback by default
      rtp_host: 127.0.0.1         # the address calls' RTP sockets bind and our SDP gives
      user: crossband             # our user part (Contact, From of calls out)
      codecs: [pcmu, pcma, opus]  # accepted and offered, in order of preference
      rate: 8000                  # PCM rate on the adapter interface (8000, 16000, 48000)
      register:                   # optional: bind our Contact at a registrar (digest if asked)
        registrar: 127.0.0.1:5070
        user: gw
        password_file: /etc/crossband/sip.pass   # mode 0600, the password on its first line
        domain: example.org       # the AOR's host (default: the registrar's address)
        expires: 300
      lines:
        - extension: "7001"       # the dialled user part
          channel: shiprider-7    # the Crossband channel the call joins
          priority: normal        # of the caller's bursts
          floor: dtmf             # dtmf ('*' key-up, '#' key-down) or vad (voice activity)
          key_up: "*"
          key_down: "#"
          vad_threshold_dbfs: -40
          hang_time: 0.8          # vad: seconds below the threshold before key-down
          max_burst: 120          # seconds: a burst never lasts longer
          answer_after: 0         # seconds of ringing (180) before the call is answered

A wrong setting is :class:`~adapters.errors.AdapterConfigError` naming it (``sip.lines[0].floor``)
and what is wrong, never echoing a value that could be a secret.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from dataclasses import dataclass
from typing import Any

from adapters.base import PCM_RATES, PRIORITIES, Priority
from adapters.errors import AdapterConfigError
from adapters.sip.floor import FloorConfig
from adapters.sip.register import RegistrationConfig
from adapters.sip.sdp import Codec

__all__ = ["SipConfig", "SipLine", "load_sip_config"]

CODECS: tuple[Codec, ...] = ("pcmu", "pcma", "opus")
_LINE_KEYS = {"extension", "channel", "priority", "floor", "key_up", "key_down",
              "vad_threshold_dbfs", "hang_time", "max_burst", "answer_after"}  # fmt: skip
_NOT_FLOOR = {"extension", "channel", "priority", "answer_after"}
_KEYS = {"listen", "rtp_host", "user", "codecs", "rate", "lines", "register"}
_REGISTER_KEYS = {"registrar", "user", "password_file", "domain", "expires"}


@dataclass(frozen=True)
class SipLine:
    extension: str
    channel: str
    priority: Priority
    floor: FloorConfig
    answer_after: float = 0.0


@dataclass(frozen=True)
class SipConfig:
    host: str
    port: int
    rtp_host: str
    user: str
    codecs: tuple[Codec, ...]
    rate: int
    lines: tuple[SipLine, ...]
    register: RegistrationConfig | None = None


def _host(setting: str, value: object) -> str:
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        raise AdapterConfigError(setting, "must be an IP address (no host names)")


def _listen(value: object, setting: str = "sip.listen") -> tuple[str, int]:
    text = str(value)
    host, colon, port = text.rpartition(":")
    if not colon or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise AdapterConfigError(setting, "must be HOST:PORT")
    return _host(setting, host.strip("[]")), int(port)


def _register(raw: Any) -> RegistrationConfig:
    where = "sip.register"
    if not isinstance(raw, dict):
        raise AdapterConfigError(where, "must be a mapping")
    unknown = set(raw) - _REGISTER_KEYS
    if unknown:
        raise AdapterConfigError(f"{where}.{sorted(unknown)[0]}", "unknown setting")
    registrar = _listen(raw.get("registrar"), f"{where}.registrar")
    path = raw.get("password_file")
    if not isinstance(path, str) or not path:
        raise AdapterConfigError(f"{where}.password_file", "must name a file")
    try:
        mode = os.stat(path).st_mode
        with open(path, encoding="utf-8") as f:
            password = f.readline().rstrip("\r\n")
    except OSError:
        raise AdapterConfigError(f"{where}.password_file", "cannot be read")
    if stat.S_IMODE(mode) & 0o077:
        raise AdapterConfigError(f"{where}.password_file", "must be mode 0600 (no group/other)")
    if not password:
        raise AdapterConfigError(f"{where}.password_file", "is empty")
    expires = raw.get("expires", 300)
    if isinstance(expires, bool) or not isinstance(expires, int) or not 30 <= expires <= 86400:
        raise AdapterConfigError(f"{where}.expires", "must be 30..86400 seconds")
    domain = raw.get("domain", "")
    if not isinstance(domain, str) or not all(c.isalnum() or c in "-." for c in domain):
        raise AdapterConfigError(f"{where}.domain", "must be a host name or address")
    user = _user_part(f"{where}.user", raw.get("user"))
    return RegistrationConfig(registrar, user, password, domain, expires)


def _user_part(setting: str, value: object) -> str:
    text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if not text or len(text) > 64 or not all(c.isalnum() or c in "-_.+*#" for c in text):
        raise AdapterConfigError(setting, "must be 1..64 of letters, digits and -_.+*#")
    return text


def _line(i: int, raw: Any) -> SipLine:
    where = f"sip.lines[{i}]"
    if not isinstance(raw, dict):
        raise AdapterConfigError(where, "must be a mapping")
    unknown = set(raw) - _LINE_KEYS
    if unknown:
        raise AdapterConfigError(f"{where}.{sorted(unknown)[0]}", "unknown setting")
    channel = raw.get("channel")
    if not isinstance(channel, str) or not channel:
        raise AdapterConfigError(f"{where}.channel", "must be a channel name")
    priority = raw.get("priority", "normal")
    if priority not in PRIORITIES:
        raise AdapterConfigError(f"{where}.priority", f"must be one of {', '.join(PRIORITIES)}")
    floor_args = {k: raw[k] for k in _LINE_KEYS - _NOT_FLOOR if k in raw}
    if "floor" in floor_args:
        floor_args["mode"] = floor_args.pop("floor")
    try:
        floor = FloorConfig(**floor_args)
    except (TypeError, ValueError) as exc:
        raise AdapterConfigError(f"{where}.floor", str(exc))
    answer_after = raw.get("answer_after", 0)
    if (
        isinstance(answer_after, bool)
        or not isinstance(answer_after, int | float)
        or not (0 <= answer_after <= 60)
    ):
        raise AdapterConfigError(f"{where}.answer_after", "must be 0..60 seconds")
    return SipLine(_user_part(f"{where}.extension", raw.get("extension")), channel, priority,
                   floor, float(answer_after))  # fmt: skip


def load_sip_config(raw: Any) -> SipConfig:
    """Validate the ``sip:`` mapping (module docstring)."""
    if not isinstance(raw, dict):
        raise AdapterConfigError("sip", "must be a mapping")
    unknown = set(raw) - _KEYS
    if unknown:
        raise AdapterConfigError(f"sip.{sorted(unknown)[0]}", "unknown setting")
    host, port = _listen(raw.get("listen", "127.0.0.1:5060"))
    rtp_host = _host("sip.rtp_host", raw.get("rtp_host", host))
    codecs = raw.get("codecs", list(CODECS))
    if not isinstance(codecs, list) or not codecs or not all(c in CODECS for c in codecs):
        raise AdapterConfigError("sip.codecs", f"must be a list of {', '.join(CODECS)}")
    if len(set(codecs)) != len(codecs):
        raise AdapterConfigError("sip.codecs", "lists a codec twice")
    rate = raw.get("rate", 8000)
    if rate not in PCM_RATES:
        raise AdapterConfigError("sip.rate", f"must be one of {PCM_RATES}")
    lines_raw = raw.get("lines")
    if not isinstance(lines_raw, list) or not lines_raw:
        raise AdapterConfigError("sip.lines", "must list at least one line")
    lines = tuple(_line(i, line) for i, line in enumerate(lines_raw))
    seen: set[str] = set()
    for i, line in enumerate(lines):
        if line.extension in seen:
            raise AdapterConfigError(f"sip.lines[{i}].extension", "is used twice")
        seen.add(line.extension)
    register = _register(raw["register"]) if "register" in raw else None
    return SipConfig(host, port, rtp_host, _user_part("sip.user", raw.get("user", "crossband")),
                     tuple(codecs), rate, lines, register)  # fmt: skip
