"""One XMPP chat room as an adapter (``adapters.base``): room messages ↔ channel text.

For one :class:`~adapters.xmpp.mapping.RoomMapping` of an
:class:`~adapters.xmpp.mapping.XmppConfig`, a :class:`~adapters.xmpp.driver.RoomDriver` keeps
the bridge account joined to the room (reconnecting, rejoining, draining what waited):

* **room → channel**: every live groupchat message of somebody else becomes
  ``Text(source="xmpp:<nick>", body=<text>)``, relayed by the gateway as
  ``"xmpp:<nick> via <device>: <text>"``: the bridge's device signs it, and the alias says
  so. Our own echo, history (delay-tagged) and empty bodies (the subject) are dropped
  (:func:`adapters.xmpp.room.inbound_text`);
* **channel → room**: :meth:`post` writes ``"[<sender>] <text>"``; :meth:`talk_ended` a
  burst notice (``"<talker> talked, verified"``); :meth:`emergency` the raised/cleared notice,
  saying whether a member signed it or only the relay claims it. With ``burst_notices`` (the
  default) the adapter asks for ``wants_talk_notices``: the gateway tells it each sealed
  burst without decoding any audio for it.

:func:`read_password` reads the account's password file (0600, or refused);
:func:`xmpp_adapters` builds one adapter per configured room.
"""

from __future__ import annotations

import os
import stat

from adapters.base import Adapter, EmergencyState, EventSink, SecurityAlarm
from adapters.errors import AdapterConfigError
from adapters.xmpp.driver import Link, RoomDriver
from adapters.xmpp.mapping import RoomMapping, XmppConfig
from adapters.xmpp.room import (
    RoomMessage,
    format_burst,
    format_emergency,
    format_post,
    inbound_text,
)

__all__ = ["XmppAdapter", "read_password", "xmpp_adapters"]


def read_password(path: str, setting: str = "xmpp.password_file") -> str:
    """The password in ``path`` (first line), refusing a file others can read."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise AdapterConfigError(setting, f"cannot open {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        if stat.S_IMODE(os.fstat(f.fileno()).st_mode) & 0o077:
            raise AdapterConfigError(setting, f"{path} must be readable by its owner only (0600)")
        raw = f.read(4096)
    try:
        password = raw.decode("utf-8").splitlines()[0] if raw.strip() else ""
    except UnicodeDecodeError:
        raise AdapterConfigError(setting, f"{path} is not UTF-8 text") from None
    if not password:
        raise AdapterConfigError(setting, f"{path} is empty")
    return password


class XmppAdapter(Adapter):
    """One room of the ``xmpp`` section (see the module docstring)."""

    yields_audio = False

    def __init__(
        self,
        config: XmppConfig,
        room: RoomMapping,
        password: str,
        *,
        plaintext: bool = False,
        ca_file: str | None = None,
        burst_notices: bool = True,
        where: str = "xmpp",
        backoff_initial: float = 0.2,
        backoff_max: float = 10.0,
        join_timeout: float = 10.0,
        keepalive: float = 30.0,
        ping_timeout: float = 10.0,
    ) -> None:
        if room not in config.rooms:
            raise AdapterConfigError(f"{where}.rooms", f"{room.room} is not in this config")
        index = config.rooms.index(room)
        self.config = config
        self.mapping = room
        self.wants_talk_notices = burst_notices
        link = Link(
            config.host,
            config.port,
            config.jid,
            password,
            plaintext=plaintext,
            ca_file=ca_file,
            where=where,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            join_timeout=join_timeout,
            keepalive=keepalive,
            ping_timeout=ping_timeout,
        )
        setting = f"{where}.rooms[{index}]"
        self.driver = RoomDriver(link, room.room, room.nick, self._on_message, setting=setting)
        self._sink: EventSink | None = None
        self._emergency: EmergencyState | None = None

    @property
    def connected(self) -> bool:
        """Joined to the room right now."""
        return self.driver.joined.is_set()

    async def start(self, sink: EventSink) -> None:
        self._sink = sink
        try:
            await self.driver.start()
        except BaseException:
            self._sink = None
            raise

    async def stop(self) -> None:
        self._sink = None
        await self.driver.stop()

    def _on_message(self, msg: RoomMessage) -> None:
        sink = self._sink
        text = inbound_text(msg, self.driver.nick)
        if sink is not None and text is not None:
            sink(text)

    def post(self, text: str, sender: str) -> None:
        if text.strip():
            self.driver.send(format_post(text, sender))

    def talk_ended(self, talker: str, verified: bool) -> None:
        if self.wants_talk_notices:
            self.driver.send(format_burst(talker, verified))

    def alarm(self, alarm: SecurityAlarm) -> None:
        self.driver.send(alarm.describe())

    def emergency(self, state: EmergencyState) -> None:
        if state != self._emergency:  # the same state told twice is posted once
            self._emergency = state
            self.driver.send(format_emergency(state))


def xmpp_adapters(
    config: XmppConfig,
    *,
    plaintext: bool | None = None,
    ca_file: str | None = None,
    where: str = "xmpp",
) -> list[tuple[str, XmppAdapter]]:
    """``(channel, adapter)`` for every room of ``config``, the password read once;
    ``plaintext`` and ``ca_file`` default to the config's ``tls`` and ``ca_file``."""
    password = read_password(config.password_file, f"{where}.password_file")
    if plaintext is None:
        plaintext = config.tls == "none"
    ca_file = ca_file if ca_file is not None else config.ca_file
    return [
        (
            r.channel,
            XmppAdapter(config, r, password, plaintext=plaintext, ca_file=ca_file, where=where),
        )
        for r in config.rooms
    ]
