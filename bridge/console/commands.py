"""The WebSocket commands of the console page, one JSON object each::

    {"t": "send", "channel": CH, "text": "...", "ref": 1}
    {"t": "emergency", "channel": CH, "active": true, "ref": 2}      # signed declare / clear
    {"t": "ptt", "channel": CH, "down": true, "ref": 3}              # press / release
    {"t": "listen", "channel": CH, "on": false, "ref": 4}            # mute / unmute
    {"t": "open", "channel": CH, "name": "...", "agreement": ID, "hours": 6,
     "members": [{"device": D, "role": R}, ...]}                      # a new incident channel
    {"t": "add", "channel": CH, "device": D, "role": R}               # a member, next epoch
    {"t": "remove", "channel": CH, "device": D}
    {"t": "end", "channel": CH}                                       # expires in a moment

answered ``{"t": "ok", "ref": 1}`` or ``{"t": "error", "ref": 1, "detail": "..."}`` (the detail
names what was wrong with the command, never more). A browser holds push-to-talk on one channel
at a time; what it holds and mutes is its :class:`~bridge.console.conn.Connection`.
"""

from __future__ import annotations

import json
from typing import Any

from bridge.console.conn import Connection
from bridge.console.service import CommandError, ConsoleService

__all__ = ["run_command"]


def run_command(svc: ConsoleService, data: str, conn: Connection) -> dict[str, Any]:
    try:
        cmd = json.loads(data)
    except ValueError:
        return {"t": "error", "detail": "not JSON"}
    if not isinstance(cmd, dict):
        return {"t": "error", "detail": "a command is a JSON object"}
    ref = cmd.get("ref") if isinstance(cmd.get("ref"), (int, str)) else None
    ch = cmd.get("channel")
    try:
        match cmd.get("t"):
            case "send":
                svc.send_text(ch, cmd.get("text"))
            case "emergency":
                svc.emergency(ch, cmd.get("active"))
            case "ptt":
                down = cmd.get("down")
                if down is True and conn.held not in (None, ch):
                    raise CommandError("push-to-talk is held on another channel")
                svc.ptt(ch, down)
                if down is True:
                    conn.held = str(ch)
                elif conn.held == ch:
                    conn.held = None
            case "listen":
                on = cmd.get("on")
                if not isinstance(ch, str) or ch not in svc.state.channels:
                    raise CommandError("not a channel of this console")
                if not isinstance(on, bool):
                    raise CommandError("on must be true or false")
                (conn.muted.discard if on else conn.muted.add)(ch)
            case "open" | "add" | "remove" | "end":
                svc.incident(cmd)
            case _:
                raise CommandError("unknown command")
    except CommandError as exc:
        return {"t": "error", "ref": ref, "detail": str(exc)}
    return {"t": "ok", "ref": ref}
