"""What a dispatcher sees, as data: the sans-IO core of the console (DESIGN §8).

:class:`ConsoleState` is fed the endpoint's events (:mod:`bridge.endpoint.events`) with
``handle_event(event, now)`` and the console's own actions (a message sent, its delivery, a
push-to-talk answer) with ``now`` passed in; it reads no clock and does no I/O. The web layer
reads :meth:`ConsoleState.snapshot` (plain JSON-able data) whenever :attr:`version` changed.

Per channel it keeps the roster (agency, alias, role), the talker now with the verification
state of that talker's voice (``unverified`` until a checkpoint it signed attributes its frames,
``verified`` after, ``forgery`` on a :class:`~bridge.endpoint.events.ForgeryAlarm`), the
emergency (the relay's claim and the members' signed word kept apart: only a signed declare
shows as verified), the last bursts with their seal verdict, the messages with their delivery
state, this console's own floor state (granted, queued at a position, denied) and alarms.
Voice frames arrive every 20 ms; they change :attr:`version` only when they change what is
shown. Message bodies are shown to the logged-in dispatcher and never logged.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from bridge.endpoint import events as ev

__all__ = [
    "FLOOR_STATES",
    "MAX_ALARMS",
    "MAX_BURSTS",
    "MAX_MESSAGES",
    "MESSAGE_STATES",
    "TALKER_STATES",
    "ChannelView",
    "ConsoleState",
    "Person",
]

MAX_BURSTS = 20
MAX_MESSAGES = 200
MAX_ALARMS = 20
TALKER_STATES = ("unverified", "verified", "forgery")
FLOOR_STATES = ("idle", "requesting", "granted", "queued", "denied", "revoked")
MESSAGE_STATES = ("sending", "delivered", "failed", "received")
SHOWN_KINDS = ("text",)  # data (positions) and emergency messages are shown otherwise


@dataclass(frozen=True)
class Person:
    """What the console knows of a device from its verified credential."""

    alias: str = ""
    kind: str = ""


@dataclass
class ChannelView:
    channel: str
    name: str = ""
    epoch: int = 0
    expires: int | None = None
    roster: dict[str, str] = field(default_factory=dict)  # device -> role
    people: dict[str, Person] = field(default_factory=dict)
    talker: str | None = None
    talker_priority: str | None = None
    talker_since: float | None = None
    talker_state: str = "unverified"  # unverified / verified / forgery
    talker_frames: int = 0
    emergency_claim: str | None = None  # the relay says this device declared one
    emergency_signed: str | None = None  # a member signed the declare
    emergency_unsigned: bool = False  # the relay's claim went unsigned past the bound
    my_floor: str = "idle"  # idle / requesting / granted / queued / denied
    my_queue: int | None = None
    bursts: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_BURSTS))
    messages: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_MESSAGES))
    alarms: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_ALARMS))
    removed: bool = False

    def as_json(self, device: str) -> dict[str, Any]:
        def who(d: str) -> dict[str, str]:
            p = self.people.get(d, Person())
            return {"device": d, "agency": d.split("/", 1)[0], "alias": p.alias, "kind": p.kind}

        members = [
            {**who(d), "role": role, "me": d == device, "talking": d == self.talker}
            for d, role in sorted(self.roster.items())
        ]
        talker = None
        if self.talker is not None:
            talker = {
                **who(self.talker),
                "priority": self.talker_priority,
                "state": self.talker_state,
                "since": self.talker_since,
            }
        active = self.emergency_signed is not None or self.emergency_claim is not None
        return {
            "channel": self.channel,
            "name": self.name,
            "epoch": self.epoch,
            "expires": self.expires,
            "removed": self.removed,
            "roster": members,
            "talker": talker,
            "emergency": {
                "active": active,
                "by": self.emergency_signed or self.emergency_claim,
                "verified": self.emergency_signed is not None,
                "unsigned": self.emergency_unsigned,
            },
            "floor": {"state": self.my_floor, "position": self.my_queue},
            "bursts": list(self.bursts),
            "messages": list(self.messages),
            "alarms": list(self.alarms),
        }


class ConsoleState:
    """The console's view of its endpoint's channels; see the module docstring."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.connected = False
        self.channels: dict[str, ChannelView] = {}
        self.version = 0
        self._sent: dict[str, tuple[str, str]] = {}  # local id -> (channel, message id or "")

    def _changed(self) -> None:
        self.version += 1

    def touch(self) -> None:
        """Something shown beside this state changed (an incident operation's outcome)."""
        self._changed()

    def view(self, channel: str) -> ChannelView:
        v = self.channels.get(channel)
        if v is None:
            v = self.channels[channel] = ChannelView(channel)
        return v

    # -- endpoint events -----------------------------------------------------------------------

    def handle_event(self, event: ev.Event, now: float) -> None:
        match event:
            case ev.Connected():
                self.connected = True
            case ev.Disconnected():
                self.connected = False
            case ev.ChannelUpdated(channel=ch, name=name, epoch=epoch, roster=roster):
                v = self.view(ch)
                v.name, v.epoch, v.roster, v.removed = name, epoch, dict(roster), event.removed
            case ev.TalkerChanged(channel=ch, talker=talker, priority=priority):
                self._talker(self.view(ch), talker, priority, now)
            case ev.FloorEvent():
                if not self._floor(event):
                    return
            case ev.Voice(channel=ch, sender=sender, verified=verified):
                if not self._voice(self.view(ch), sender, verified, now):
                    return
            case ev.TalkerVerified(channel=ch, sender=sender):
                v = self.view(ch)
                if v.talker != sender or v.talker_state != "unverified":
                    return
                v.talker_state = "verified"
            case ev.ForgeryAlarm(channel=ch, sender=sender, reason=reason):
                v = self.view(ch)
                if v.talker == sender:
                    v.talker_state = "forgery"
                self._alarm(v, "forgery", sender, reason, now)
            case ev.BurstSealed(channel=ch, sender=s, frames=n, verified=ok, received=got):
                seal = {"sender": s, "frames": n, "received": got, "verified": ok, "at": now}
                self.view(ch).bursts.appendleft(seal)
            case ev.Emergency(channel=ch, active=active, by=by):
                v = self.view(ch)
                v.emergency_claim = (by or "?") if active else None
                if not active:
                    v.emergency_unsigned = False
            case ev.EmergencySigned(channel=ch, active=active, by=by):
                self.emergency_signed(ch, active, by)
                return
            case ev.EmergencyUnsigned(channel=ch, by=by):
                v = self.view(ch)
                v.emergency_unsigned = True
                self._alarm(v, "emergency-unsigned", by or "?", "", now)
            case ev.Message(channel=ch):
                if not self._message(self.view(ch), event):
                    return
            case ev.CloneAlarm(channel=ch, sender=sender):
                self._alarm(self.view(ch), "clone", sender, "", now)
            case ev.FreshnessAlarm(channel=ch, kind=kind, detail=detail):
                self._alarm(self.view(ch), f"freshness-{kind}", "", detail, now)
            case ev.BindingRefused(channel=ch, sender=sender, reason=reason):
                self._alarm(self.view(ch), "binding-refused", sender, reason, now)
            case _:
                return
        self._changed()

    def _talker(self, v: ChannelView, talker: str | None, prio: str | None, now: float) -> None:
        if talker != v.talker:
            v.talker_state, v.talker_frames = "unverified", 0
            v.talker_since = now if talker is not None else None
        v.talker, v.talker_priority = talker, prio

    def _floor(self, e: ev.FloorEvent) -> bool:
        if e.device != self.device:
            return False
        v = self.view(e.channel)
        if e.event in ("granted", "denied", "queued"):
            v.my_floor = e.event
            v.my_queue = e.position if e.event == "queued" else None
        elif e.event in ("released", "revoked", "idle"):
            v.my_floor, v.my_queue = ("revoked" if e.event == "revoked" else "idle"), None
        else:
            return False
        return True

    def _voice(self, v: ChannelView, sender: str, verified: bool, now: float) -> bool:
        """A voice frame: shown only when it changes the talker or its verification."""
        changed = False
        if v.talker != sender:
            self._talker(v, sender, v.talker_priority if v.talker is None else None, now)
            changed = True
        v.talker_frames += 1
        if verified and v.talker_state == "unverified":
            v.talker_state = "verified"
            changed = True
        return changed

    def _message(self, v: ChannelView, m: ev.Message) -> bool:
        if m.kind not in SHOWN_KINDS:
            return False
        text = m.body.decode("utf-8", errors="replace")
        v.messages.append(_message(m.id, m.sender, text, m.timestamp, "received", self.device))
        return True

    def _alarm(self, v: ChannelView, kind: str, who: str, detail: str, now: float) -> None:
        v.alarms.appendleft({"kind": kind, "device": who, "detail": detail, "at": now})

    # -- the console's own actions --------------------------------------------------------------

    def emergency_signed(self, channel: str, active: bool, by: str) -> None:
        """A signed declare or clear: a member's (an event) or this console's own, sent."""
        v = self.view(channel)
        v.emergency_signed = by if active else None
        if not active:
            v.emergency_claim, v.emergency_unsigned = None, False
        self._changed()

    def message_sending(self, channel: str, local_id: str, text: str, now: float) -> None:
        """This console is sending ``text``: shown at once as ``sending``."""
        v = self.view(channel)
        v.messages.append(_message(local_id, self.device, text, int(now), "sending", self.device))
        self._sent[local_id] = (channel, "")
        self._changed()

    def message_result(self, local_id: str, msg_id: str | None) -> None:
        """The relay accepted the message (durably) as ``msg_id``, or it failed (None)."""
        sent = self._sent.pop(local_id, None)
        if sent is None:
            return
        for m in self.view(sent[0]).messages:
            if m["id"] == local_id:
                m["state"] = "delivered" if msg_id is not None else "failed"
                if msg_id is not None:
                    m["id"] = msg_id
        self._changed()

    def floor_answer(self, channel: str, state: str) -> None:
        """This console's push-to-talk: ``requesting`` on press, ``idle`` after release."""
        v = self.view(channel)
        v.my_floor = state
        if state != "queued":
            v.my_queue = None
        self._changed()

    def set_channel_info(
        self, channel: str, expires: int | None, people: dict[str, Person]
    ) -> None:
        """What the verified commit says beyond the event: expiry and members' credentials."""
        v = self.view(channel)
        v.expires, v.people = expires, dict(people)
        self._changed()

    def snapshot(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "connected": self.connected,
            "version": self.version,
            "channels": [self.channels[c].as_json(self.device) for c in sorted(self.channels)],
        }


def _message(msg_id: str, sender: str, text: str, at: int, state: str, me: str) -> dict[str, Any]:
    return {
        "id": msg_id,
        "sender": sender,
        "text": text,
        "at": at,
        "state": state,
        "mine": sender == me,
    }
