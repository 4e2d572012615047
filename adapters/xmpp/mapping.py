"""Which XMPP room is which channel: the ``xmpp`` section of a device's config::

    xmpp:
      server: 127.0.0.1:5222        # host:port
      jid: gw@example               # the bridge's account
      password_file: /etc/crossband/xmpp.pass
      tls: starttls                 # required and verified; "none" only on loopback
      ca_file: /etc/crossband/xmpp-ca.pem   # optional: trust this CA for the server
      rooms:
        - {room: incident@conference.example, nick: us-cbp-gw, channel: shiprider-7}

:func:`load_xmpp_config` returns an :class:`XmppConfig` or raises
:class:`~adapters.errors.AdapterConfigError` naming the setting; unknown keys are errors.
The password is never read here nor echoed in an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from adapters.errors import AdapterConfigError

__all__ = ["RoomMapping", "XmppConfig", "load_xmpp_config"]

_TOP = {"server", "jid", "password_file", "rooms", "tls", "ca_file"}
_ROOM = {"room", "nick", "channel"}


@dataclass(frozen=True, slots=True)
class RoomMapping:
    room: str
    nick: str
    channel: str


@dataclass(frozen=True, slots=True)
class XmppConfig:
    host: str
    port: int
    jid: str
    password_file: str
    rooms: tuple[RoomMapping, ...]
    tls: str = "starttls"  # or "none": plaintext, allowed on loopback only (the driver checks)
    ca_file: str | None = None  # a CA to trust for the server's certificate (else the system's)


def _string(d: Mapping[str, Any], key: str, where: str) -> str:
    if key not in d:
        raise AdapterConfigError(f"{where}.{key}", "missing")
    v = d[key]
    if not isinstance(v, str) or not v.strip():
        raise AdapterConfigError(f"{where}.{key}", "must be a non-empty string")
    return v


def _bare_jid(v: str, setting: str) -> str:
    local, at, domain = v.partition("@")
    if not at or not local or not domain or "/" in v or " " in v:
        raise AdapterConfigError(setting, "must be a bare JID like name@domain")
    return v


def _unknown(d: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(d) - allowed)
    if extra:
        raise AdapterConfigError(f"{where}.{extra[0]}", "unknown setting")


def load_xmpp_config(section: object, where: str = "xmpp") -> XmppConfig:
    if not isinstance(section, Mapping):
        raise AdapterConfigError(where, "must be a mapping")
    _unknown(section, _TOP, where)
    server = _string(section, "server", where)
    host, colon, port_s = server.rpartition(":")
    if not colon or not host or not port_s.isdigit() or not 0 < int(port_s) < 65536:
        raise AdapterConfigError(f"{where}.server", "must be host:port (port 1-65535)")
    jid = _bare_jid(_string(section, "jid", where), f"{where}.jid")
    password_file = _string(section, "password_file", where)
    rooms_v = section.get("rooms")
    if not isinstance(rooms_v, list) or not rooms_v:
        raise AdapterConfigError(f"{where}.rooms", "must be a non-empty list")
    rooms: list[RoomMapping] = []
    seen: set[str] = set()
    for i, r in enumerate(rooms_v):
        at = f"{where}.rooms[{i}]"
        if not isinstance(r, Mapping):
            raise AdapterConfigError(at, "must be a mapping")
        _unknown(r, _ROOM, at)
        room = _bare_jid(_string(r, "room", at), f"{at}.room")
        if room in seen:
            raise AdapterConfigError(f"{at}.room", f"{room} is mapped twice")
        seen.add(room)
        rooms.append(RoomMapping(room, _string(r, "nick", at), _string(r, "channel", at)))
    tls = section.get("tls", "starttls")
    if tls not in ("starttls", "none"):
        raise AdapterConfigError(f"{where}.tls", "must be starttls or none (loopback only)")
    ca_file = _string(section, "ca_file", where) if "ca_file" in section else None
    return XmppConfig(host, int(port_s), jid, password_file, tuple(rooms), str(tls), ca_file)
