"""The demo's voice: timestamped log lines, the checks, and what each position notices.

Every line is ``[  t.t s] WHAT   text``. :meth:`Narrator.observe` turns endpoint events into the
lines a person at the position would notice (the observer console narrates the channel) and
counts bursts, seals, messages and voice latency for the summary. Message bodies are the
demo's own scripted texts; nothing else of the content is printed.
"""

from __future__ import annotations

import time
from typing import Any

from bridge.demo.cast import OBSERVER, Check, Tally
from bridge.endpoint import events as ev


class Narrator:
    def __init__(self, out: Any = print) -> None:
        self._out = out
        self.t0 = time.monotonic()
        self.checks: list[Check] = []
        self.tally = Tally()
        self.sent_at: dict[tuple[str, int], float] = {}  # (talker, SFrame counter) -> send time

    def say(self, what: str, text: str) -> None:
        self._out(f"[{time.monotonic() - self.t0:6.1f}s] {what:<6} {text}", flush=True)

    def line(self, text: str) -> None:
        self._out(text, flush=True)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, ok, detail))
        self.say("CHECK", f"{'ok  ' if ok else 'FAIL'} {name}" + (f" ({detail})" if detail else ""))
        return ok

    def observe(self, device: str, e: ev.Event) -> None:
        """Log what a person at ``device`` would notice of event ``e``; count it."""
        main = device == OBSERVER
        if isinstance(e, ev.Voice):
            sent = self.sent_at.get((e.sender, e.ctr))
            if sent is not None and e.received_at >= sent:
                self.tally.latencies.append(e.received_at - sent)
        elif isinstance(e, ev.TalkerChanged) and main:
            self.say(
                "FLOOR",
                f"{e.channel}: talking now: {e.talker or 'nobody'}"
                + (f" [{e.priority}]" if e.priority else "")
                + f" ({e.reason})",
            )
        elif isinstance(e, ev.Emergency) and main:
            state = "DECLARED" if e.active else "cleared"
            self.say("EMERG", f"{e.channel}: emergency {state} by {e.by} (the relay says)")
        elif isinstance(e, ev.EmergencySigned) and main:
            state = "DECLARED" if e.active else "cleared"
            self.say("EMERG", f"{e.channel}: emergency {state}, signed by {e.by} (verified)")
        elif isinstance(e, ev.BurstSealed):
            self._sealed(e, main)
        elif isinstance(e, ev.Message):
            self.tally.messages_delivered += 1
            if main or device == "ca-rcmp/vessel-shiprider-1":
                self.say("MSG", f"{device} <- {e.sender}: {e.body.decode(errors='replace')!r}")
        elif (
            isinstance(e, ev.FloorEvent)
            and e.device == device
            and e.event in ("queued", "denied", "revoked")
        ):
            self.say(
                "FLOOR",
                f"{device}: floor {e.event}"
                + (f" ({e.reason})" if e.reason else "")
                + (f", position {e.position}" if e.position is not None else ""),
            )
        elif isinstance(e, ev.ChannelUpdated) and main:
            self.say("CHAN", f"{e.channel} '{e.name}' epoch {e.epoch}: {len(e.roster)} members")
        elif isinstance(e, ev.Error):
            self.say("ERROR", f"{device}: {e.code} {e.detail}")

    def _sealed(self, e: ev.BurstSealed, main: bool) -> None:
        if e.verified:
            self.tally.seals_verified += 1
        else:
            self.tally.seals_incomplete += 1
        if main:
            self.say(
                "SEAL",
                f"burst by {e.sender}: {e.frames} frames sealed, {e.received} received, "
                f"signature {'verified, complete' if e.verified else 'valid, frames missing'}",
            )
