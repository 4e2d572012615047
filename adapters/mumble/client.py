"""Sans-IO Mumble client: the control channel's state machine, driven by bytes and ``now``.

It touches no socket and reads no clock. The driver (:mod:`adapters.mumble.driver`) calls
:meth:`~MumbleClient.connection_made` once TLS is up, feeds what it reads to
:meth:`~MumbleClient.receive_data`, writes :meth:`~MumbleClient.data_to_send`, and calls
:meth:`~MumbleClient.handle_timer` at :meth:`~MumbleClient.get_timer`.

**Theory of operation.** ``auth``: the client has sent ``Version`` and ``Authenticate``
(with ``opus``: murmurd only switches a server to Opus when every client says it can); the
server answers with ``CryptSetup``, ``CodecVersion``, the channel tree (``ChannelState``),
the users (``UserState``), then ``ServerSync`` carrying our session → ``ready``, event
:class:`Connected`. In ``ready`` the client joins the configured channel (a path of names
from the root, ``""`` being the root) by sending its own ``UserState`` with that channel;
the server's echo of it is :class:`Joined`. If the channel does not exist the client says so
(:class:`ChannelMissing`) and joins it when it appears; if an admin moves the bridge away it
moves back. A ``Reject``, a ping timeout or a missing ``ServerSync`` is ``closed`` with
:class:`Closed`. Pings go every ``ping_interval`` seconds; nothing heard for ``timeout``
seconds is a dead link (murmurd itself drops a client after 30 s without a ping).

Voice comes and goes as ``UDPTunnel`` frames (:func:`~adapters.mumble.proto.parse_voice`):
in, :class:`VoiceReceived` with the talker's name; out, :meth:`~MumbleClient.send_voice`
numbers the packets in 10 ms units as Mumble clients do (a 20 ms packet advances it by 2).
A malformed frame raises :class:`~adapters.mumble.proto.MumbleProtocolError` from
``receive_data`` and the client is ``closed``: the driver drops the connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from adapters.mumble.events import (
    ChannelMissing,
    Closed,
    Connected,
    Denied,
    Joined,
    MumbleEvent,
    TextReceived,
    UserLeft,
    VoiceReceived,
)
from adapters.mumble.proto import (
    FrameDecoder,
    MsgType,
    MumbleError,
    MumbleProtocolError,
    decode_message,
    encode_frame,
    encode_message,
)
from adapters.mumble.voice import VoicePacket, encode_voice, parse_voice

__all__ = [
    "ChannelMissing",
    "ClientConfig",
    "Closed",
    "Connected",
    "Denied",
    "Joined",
    "MumbleClient",
    "MumbleEvent",
    "TextReceived",
    "UserLeft",
    "VoiceReceived",
]

CLIENT_VERSION = (1 << 16) | (3 << 8) | 4  # speak the protocol of murmurd 1.3.4
MAX_TEXT = 5000  # murmurd's default textmessagelength


@dataclass(frozen=True, slots=True)
class ClientConfig:
    username: str
    channel: str = ""  # a path of channel names from the root, "" = the root
    password: str = ""
    ping_interval: float = 15.0
    timeout: float = 35.0
    sync_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not self.username or len(self.username) > 128:
            raise ValueError("a Mumble username is 1..128 characters")
        if not 0 < self.ping_interval < self.timeout:
            raise ValueError("ping_interval must be positive and below timeout")


State = Literal["idle", "auth", "ready", "closed"]


class MumbleClient:
    """One control connection's protocol state (see the module docstring)."""

    def __init__(self, config: ClientConfig, *, max_frame: int = 1 << 20) -> None:
        self.config = config
        self.state: State = "idle"
        self.session: int | None = None
        self.channel_id: int | None = None  # where we are
        self.channels: dict[int, tuple[str, int | None]] = {}  # id → (name, parent)
        self.users: dict[int, tuple[str, int]] = {}  # session → (name, channel id)
        self.dropped_voice = 0
        self._decoder = FrameDecoder(max_frame)
        self._out = bytearray()
        self._events: list[MumbleEvent] = []
        self._sequence = 0
        self._next_ping = 0.0
        self._heard = 0.0
        self._sync_deadline: float | None = None
        self._wanted: int | None = None  # the channel we asked to join
        self._missing_told = False

    # -- driver side -----------------------------------------------------------------------

    def connection_made(self, now: float) -> None:
        if self.state != "idle":
            raise MumbleError("connection_made called twice")
        self.state = "auth"
        self._heard, self._next_ping = now, now + self.config.ping_interval
        self._sync_deadline = now + self.config.sync_timeout
        self._send(MsgType.Version, version=CLIENT_VERSION, release="crossband", os="Linux")
        self._send(
            MsgType.Authenticate,
            username=self.config.username,
            password=self.config.password,
            opus=True,
        )

    def receive_data(self, data: bytes, now: float) -> None:
        if self.state == "closed":
            return
        self._heard = now
        try:
            for kind, payload in self._decoder.feed(data):
                self._frame(kind, payload)
        except MumbleProtocolError as exc:
            self._close(exc.code)
            raise

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    def events_received(self) -> list[MumbleEvent]:
        events, self._events = self._events, []
        return events

    def get_timer(self) -> float | None:
        if self.state in ("idle", "closed"):
            return None
        deadlines = [self._next_ping, self._heard + self.config.timeout]
        if self._sync_deadline is not None:
            deadlines.append(self._sync_deadline)
        return min(deadlines)

    def handle_timer(self, now: float) -> None:
        if self.state in ("idle", "closed"):
            return
        if self._sync_deadline is not None and now >= self._sync_deadline:
            self._close("sync-timeout")
        elif now >= self._heard + self.config.timeout:
            self._close("ping-timeout")
        elif now >= self._next_ping:
            self._send(MsgType.Ping, timestamp=int(now * 1000) & (1 << 64) - 1)
            self._next_ping = now + self.config.ping_interval

    def connection_lost(self, reason: str = "connection-lost") -> None:
        if self.state != "closed":
            self._close(reason)

    # -- API ---------------------------------------------------------------------------------

    @property
    def joined(self) -> bool:
        return (
            self.state == "ready"
            and self.channel_id is not None
            and (self.channel_id == self._wanted)
        )

    def send_text(self, message: str) -> None:
        """A chat line (HTML) to our channel."""
        if not message or len(message) > MAX_TEXT:
            raise ValueError(f"a Mumble text message is 1..{MAX_TEXT} characters")
        if self.joined:
            self._send(MsgType.TextMessage, channel_id=[self.channel_id], message=message)

    def send_voice(self, opus: bytes, last: bool = False, frame_ms: int = 20) -> bool:
        """One Opus packet into our channel; False (and counted) when not in it."""
        if not self.joined:
            self.dropped_voice += 1
            return False
        packet = VoicePacket(None, self._sequence, opus, last)
        self._sequence += max(frame_ms // 10, 1)
        self._send_raw(MsgType.UDPTunnel, encode_voice(packet))
        return True

    def set_comment(self, comment: str) -> None:
        if self.state == "ready" and self.session is not None:
            self._send(MsgType.UserState, session=self.session, comment=comment[:MAX_TEXT])

    def create_channel(self, name: str, parent: int = 0) -> None:
        """Ask for a permanent channel (needs the MakeChannel permission, e.g. SuperUser)."""
        if self.state == "ready":
            self._send(MsgType.ChannelState, parent=parent, name=name, temporary=False)

    def find_channel(self, path: str) -> int | None:
        """The id of a channel by its path of names from the root."""
        current = 0 if 0 in self.channels else None
        for name in filter(None, path.split("/")):
            if current is None:
                return None
            current = next(
                (cid for cid, (n, p) in self.channels.items() if p == current and n == name), None
            )
        return current

    # -- internals ----------------------------------------------------------------------------

    def _send(self, kind: MsgType, **fields: Any) -> None:
        self._send_raw(kind, encode_message(kind, **fields))

    def _send_raw(self, kind: MsgType, payload: bytes) -> None:
        self._out += encode_frame(kind, payload)

    def _close(self, reason: str) -> None:
        self.state = "closed"
        self._events.append(Closed(reason))

    def _frame(self, kind: int, payload: bytes) -> None:
        if kind == MsgType.UDPTunnel:
            self._voice(payload)
            return
        try:
            msg = MsgType(kind)
        except ValueError:
            return  # messages we do not use (ACL, UserStats, ServerConfig, …)
        if msg not in _HANDLERS:
            return
        _HANDLERS[msg](self, decode_message(msg, payload))

    def _voice(self, payload: bytes) -> None:
        packet = parse_voice(payload)
        if packet is None or packet.session is None:
            return
        user = self.users.get(packet.session)
        if user is None or self.state != "ready":
            self.dropped_voice += 1
            return
        self._events.append(
            VoiceReceived(packet.session, user[0], packet.sequence, packet.opus, packet.last)
        )

    def _on_reject(self, f: dict[str, Any]) -> None:
        self._close(f"rejected: {f.get('reason', '')}".strip())

    def _on_sync(self, f: dict[str, Any]) -> None:
        if "session" not in f:
            raise MumbleProtocolError("sync-without-session")
        self.session = f["session"]
        self.state, self._sync_deadline = "ready", None
        user = self.users.get(f["session"])
        self.channel_id = user[1] if user else 0
        self._events.append(Connected(f["session"]))
        self._join()

    def _on_channel(self, f: dict[str, Any]) -> None:
        if "channel_id" not in f:
            raise MumbleProtocolError("channel-without-id")
        old = self.channels.get(f["channel_id"], ("", None))
        self.channels[f["channel_id"]] = (f.get("name", old[0]), f.get("parent", old[1]))
        if self.state == "ready" and self._wanted is None:
            self._join()

    def _on_channel_remove(self, f: dict[str, Any]) -> None:
        self.channels.pop(f.get("channel_id", -1), None)
        if self._wanted == f.get("channel_id"):
            self._wanted, self._missing_told = None, False

    def _on_user(self, f: dict[str, Any]) -> None:
        if "session" not in f:
            raise MumbleProtocolError("user-without-session")
        session = f["session"]
        known, old = session in self.users, self.users.get(session, ("", 0))
        name, channel = f.get("name", old[0]), f.get("channel_id", old[1])
        self.users[session] = (name, channel)
        if session != self.session:
            if known and old[1] == self.channel_id and channel != self.channel_id:
                self._events.append(UserLeft(session, name))
            return
        self.channel_id = channel
        if channel == self._wanted and "channel_id" in f:
            self._events.append(Joined(channel, self.config.channel))
        elif self._wanted is not None and channel != self._wanted and "channel_id" in f:
            self._wanted = None  # moved away (or out of a removed channel): go back
            self._join()

    def _on_user_remove(self, f: dict[str, Any]) -> None:
        user = self.users.pop(f.get("session", -1), None)
        if user is not None and user[1] == self.channel_id:
            self._events.append(UserLeft(f["session"], user[0]))

    def _on_text(self, f: dict[str, Any]) -> None:
        actor = f.get("actor")
        if actor is None or actor == self.session or not f.get("message"):
            return
        private = self.session in f.get("session", [])
        if not private and self.channel_id not in f.get("channel_id", []):
            return  # tree messages to other channels
        name = self.users.get(actor, (f"session-{actor}", 0))[0]
        self._events.append(TextReceived(actor, name, f["message"], private))

    def _on_denied(self, f: dict[str, Any]) -> None:
        self._events.append(Denied(f.get("reason", "") or f"permission {f.get('permission')}"))

    def _join(self) -> None:
        target = self.find_channel(self.config.channel)
        if target is None:
            if not self._missing_told:
                self._missing_told = True
                self._events.append(ChannelMissing(self.config.channel))
            return
        self._wanted = target
        if self.channel_id == target:
            self._events.append(Joined(target, self.config.channel))
        else:
            self._send(MsgType.UserState, session=self.session, channel_id=target)


_HANDLERS = {
    MsgType.Reject: MumbleClient._on_reject,
    MsgType.ServerSync: MumbleClient._on_sync,
    MsgType.ChannelState: MumbleClient._on_channel,
    MsgType.ChannelRemove: MumbleClient._on_channel_remove,
    MsgType.UserState: MumbleClient._on_user,
    MsgType.UserRemove: MumbleClient._on_user_remove,
    MsgType.TextMessage: MumbleClient._on_text,
    MsgType.PermissionDenied: MumbleClient._on_denied,
}
