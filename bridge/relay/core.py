"""The relay's protocol core: sessions, channels, commits, floor, routing, store-and-forward.

Theory of operation
-------------------
:class:`RelayCore` touches no socket, reads no clock and never calls the store. The driver
(:mod:`bridge.relay.server`) feeds it connections, parsed control messages, media datagrams and
timer expiries with ``now`` (monotonic) and ``wall`` (the wall clock, for validity checks);
the core answers with an :class:`~bridge.relay.state.Outcome`: control messages to send,
sessions to close, and store :class:`~bridge.relay.jobs.Job` descriptions that the driver runs
on its single store thread, in order, handing each result back through :meth:`complete`.
The driver arms one timer at :meth:`next_timer` and calls :meth:`handle_timer` when it fires.

The parts, one mixin each: :mod:`~bridge.relay.sessions` (caps, authentication, backlog,
directory, revocations), :mod:`~bridge.relay.commits` (first valid commit wins, channel
expiry), :mod:`~bridge.relay.messages` (store-and-forward, acks, floor requests) and
:mod:`~bridge.relay.media` (the voice hot path); :mod:`~bridge.relay.base` holds the shared
state. A store job that fails is answered with ``store-failed`` and changes nothing in memory;
while the store fails (or the audit log, :attr:`audit_failing`) :meth:`health` says so.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, ClassVar

from bridge.errors import RemoteProtocolError
from bridge.relay.commits import CommitsMixin
from bridge.relay.jobs import Expire, Job, PutStates, StoreFailure
from bridge.relay.media import MediaMixin
from bridge.relay.messages import MessagesMixin
from bridge.relay.metrics import Gauges
from bridge.relay.sessions import SessionsMixin
from bridge.relay.state import (
    Outcome,
    RelayConfig,
    Send,
    Session,
)
from bridge.relay.store import ForwardStore
from bridge.wire import control as p
from crypto.agreement import RevocationList, verify_revocation_list
from crypto.channel import CommitBundle

__all__ = ["Job", "Outcome", "RelayConfig", "RelayCore", "Send"]

log = logging.getLogger("crossband.relay")

EXPIRE_EVERY = 60.0  # seconds between sweeps of expired stored items
COST_UNIT = 64 * 1024  # a control message costs one more rate-limit token per 64 KiB
MAX_READ_PAUSE = 2.0  # seconds, at most, that a session over its budget is not read
PENALTY = 30.0  # seconds a device that sent a message too large for its role may not log in

Handler = Callable[[Any, Session, dict[str, Any], float, float], Outcome]


class RelayCore(SessionsMixin, CommitsMixin, MessagesMixin, MediaMixin):
    HANDLERS: ClassVar[dict[str, Handler]] = {
        "ping": MessagesMixin._on_ping,
        "msg": MessagesMixin._on_msg,
        "confirm": MessagesMixin._on_confirm,
        "ack": MessagesMixin._on_ack,
        "floor-request": MessagesMixin._on_floor_request,
        "floor-release": MessagesMixin._on_floor_release,
        "emergency-clear": MessagesMixin._on_emergency_clear,
        "commit": CommitsMixin._on_commit,
        "lookup": SessionsMixin._on_lookup,
        "revocation": SessionsMixin._on_revocation,
    }

    def _restore(self, store: ForwardStore) -> None:
        """Start-up only, before the driver serves anybody: the last heads and revocations."""
        for agency in self.trust.roots:
            blob = store.get_state(f"crl:{agency}")
            if blob is not None:
                rl = verify_revocation_list(RevocationList.decode(blob), self.trust)
                if rl.number > getattr(self.revocations.get(agency), "number", -1):
                    self.revocations[agency] = rl
        raw = store.get_state("channels")
        for ch in json.loads(raw) if raw else []:
            blob = store.get_state(f"channel:{ch}")
            if blob:
                bundle = CommitBundle.decode(blob)
                self._install(bundle.commit, bundle.agreement)
                self.listed.add(ch)

    # -- inputs --------------------------------------------------------------------------------

    def admit(self, sid: int, size: int, now: float) -> None:
        """Charge a message's size to its session's rate limit *before* it is parsed, so a
        flood of large messages (4 MB commits) costs the relay no parsing; raises
        ``rate-limited``. :meth:`handle` then charges one token per message."""
        s = self.sessions[sid]
        if size > p.MAX_SMALL_CONTROL and s.cred is not None and not s.cred.has_role("dispatcher"):
            # Only commits are that large once logged in, and only dispatchers send them: this
            # device is flooding. Its session ends and it may not log in again for a while, so
            # its flood costs one such read per PENALTY seconds.
            self.penalized[s.cred.device] = now + PENALTY
            raise RemoteProtocolError(p.Codes.TOO_LARGE, "large messages are for dispatchers")
        cost = size // COST_UNIT
        if cost and not s.control_rate.allow(now, cost):
            raise RemoteProtocolError(p.Codes.RATE_LIMITED, "large messages are charged by size")

    def read_pause(self, sid: int, size: int, now: float) -> float:
        """After :meth:`admit` refused a ``size``-byte message: how long the driver should
        stop reading this session (0: read on). Until its rate limit could take such a message
        again, bounded by :data:`MAX_READ_PAUSE` (which a message it may never send, too large
        for its role, always costs), so a flood is read no faster than its budget (TCP
        backpressure holds the rest at the sender) and costs the relay its budget's worth of
        reading instead of everything the sender can push."""
        s = self.sessions.get(sid)
        if s is None:
            return 0.0
        if s.cred is not None and s.cred.device in self.penalized:
            pause = MAX_READ_PAUSE  # and the driver closes the session (see :meth:`banned`)
        else:
            pause = min(MAX_READ_PAUSE, s.control_rate.wait(now, size // COST_UNIT + 1))
        if pause > 0:
            self.metrics.c["read_pauses"] += 1
        return pause

    def banned(self, sid: int, now: float) -> bool:
        """Is this session's device under a penalty (see :meth:`admit`)? Expired ones go."""
        s = self.sessions.get(sid)
        device = s.cred.device if s is not None and s.cred is not None else None
        until = self.penalized.get(device) if device is not None else None
        if until is not None and now >= until:
            del self.penalized[device]  # type: ignore[arg-type]
            return False
        return until is not None

    def handle(
        self, sid: int, msg: dict[str, Any], now: float, wall: float | None = None
    ) -> Outcome:
        """Handle one validated control message; raises RemoteProtocolError with its code."""
        wall = self._wall(now, wall)
        s = self.sessions[sid]
        if not s.control_rate.allow(now):
            raise RemoteProtocolError(p.Codes.RATE_LIMITED)
        t = msg["t"]
        if s.device is None:
            if t != "auth":
                raise RemoteProtocolError(p.Codes.AUTH_REQUIRED)
            return self.authenticate(sid, msg, now, wall)
        handler = self.HANDLERS.get(t)
        if handler is None:
            raise RemoteProtocolError(p.Codes.UNKNOWN_TYPE)
        return handler(self, s, msg, now, wall)

    def complete(self, job: Job, result: Any, now: float) -> Outcome:
        """A job's op ran on the store thread: its result, or a :class:`StoreFailure`."""
        if isinstance(result, StoreFailure):
            if getattr(job.op, "cpu", False):  # no store involved: a bug in the op
                self.metrics.c["internal_errors"] += 1
                return job.failed(now)
            self.metrics.c["store_failures"] += 1
            self.store_failing = True
            return job.failed(now)
        if job.op.writes:
            self.store_failing = False
        return job.then(result, now)

    def probe_job(self) -> Job:
        """A small write that tells whether the store accepts writes again."""
        return Job(PutStates((("health-probe", b"ok"),)))

    # -- timers --------------------------------------------------------------------------------

    def handle_timer(self, now: float, wall: float | None = None) -> Outcome:
        wall = self._wall(now, wall)
        out = Outcome()
        deadline = now - self.config.auth_timeout
        for sid, s in list(self.unauthenticated.items()):
            if s.opened > deadline:
                break  # oldest first: the rest are younger
            del self.unauthenticated[sid]
            self.metrics.c["auth_timeouts"] += 1
            out.close.append((sid, p.Codes.AUTH_TIMEOUT))
        out.extend(self._retry_backlogs(now, wall))
        expired = []
        for chan in self.channels.values():
            if wall >= chan.head.expires:
                expired.append(chan)
                continue
            t = chan.floor.get_timer()
            if t is not None and now >= t:
                out.extend(self._floor_events(chan, chan.floor.handle_timer(now), wall))
        if expired:
            out.extend(self._tear_down(expired, wall))
        if self.next_expire is None or now >= self.next_expire:
            self.next_expire = now + EXPIRE_EVERY
            out.jobs.append(Job(Expire(wall)))
        return out

    def next_timer(self) -> float | None:
        """When :meth:`handle_timer` must next run (monotonic), or None."""
        times = [s.backlog_retry for s in self.backlog_due.values() if s.backlog_retry]
        if self.unauthenticated:
            oldest = next(iter(self.unauthenticated.values()))
            times.append(oldest.opened + self.config.auth_timeout)
        offset = self.wall_offset
        for c in self.channels.values():
            times.append(c.head.expires - offset)
            t = c.floor.get_timer()
            if t is not None:
                times.append(t)
        if self.next_expire is not None:
            times.append(self.next_expire)
        return min(times) if times else None

    # -- health --------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        store = "failing" if self.store_failing else "ok"
        audit = "failing" if self.audit_failing else "ok"
        ok = store == audit == "ok"
        return {"ok": ok, "store": store, "audit": audit, "channels": len(self.channels)}

    def gauges(self, depth: int) -> Gauges:
        return Gauges(
            connections=len(self.sessions),
            authenticated=len(self.by_device),
            channels=len(self.channels),
            store_queue_depth=depth,
            store_failing=self.store_failing,
            audit_failing=self.audit_failing,
            audit_failures=int(self.audit.failures),
            audit_dropped=int(getattr(self.audit, "dropped", 0)),
            emergency=tuple((c.id, c.floor.emergency) for c in self.channels.values()),
        )
