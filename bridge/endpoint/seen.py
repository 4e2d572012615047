"""The message ids an endpoint has handled, kept exactly as long as the relay could redeliver one.

Two kinds of id. The relay's delivery id drops a plain redelivery cheaply, before decryption;
but the relay chooses it, so it only ever drops. What decides is the *inner* id, under the
sender's signature: a signed item is shown once per (sender, kind, inner id), whatever delivery
id, frame or counter it comes back with (a relay replaying an old text under a new id, an insider
re-encrypting a genuine one) — and across restarts, since both live in the state file.

The relay redelivers what was not acknowledged (a crash between handling a message and the
acknowledgement), so the endpoint remembers the ids it handed to the application and drops a
redelivery. The relay keeps a message at most its ``message_ttl`` (7 days unless configured
otherwise) after it accepted it; an id first seen here at ``at`` (on this endpoint's clock,
later than the relay accepted it) can therefore not come back after ``at + ttl``, and is
forgotten then — the table no longer grows for ever.

Part of the sans-IO :class:`~bridge.endpoint.core.EndpointCore`: the prune is a core timer
(:meth:`SeenIds.get_timer` / :meth:`SeenIds.handle_timer`), due :data:`PRUNE_SLACK` after the
oldest id expires, so one prune forgets up to that much time's worth at once and runs at most
once per :data:`PRUNE_SLACK`. ``now`` is wall-clock seconds, as the relay's TTL is.
"""

from __future__ import annotations

import logging
from typing import Final

from bridge.endpoint.state import EndpointState
from bridge.errors import StoreError

log = logging.getLogger("crossband.endpoint")

SEEN_TTL: Final = 7 * 86400.0  # the relay's default message_ttl
PRUNE_SLACK: Final = 3600.0  # seconds an expired id may outstay its TTL


class SeenIds:
    def __init__(self, state: EndpointState, ttl: float = SEEN_TTL) -> None:
        if not ttl > 0:
            raise ValueError("the seen-id TTL must be positive")
        self.state = state
        self.ttl = ttl
        self._oldest = state.oldest_seen()  # None: nothing to forget
        self._retry: float | None = None  # after a failed prune

    def __contains__(self, msg_id: str) -> bool:
        return self.state.seen(msg_id)

    def add(self, msg_id: str, now: float) -> None:
        self.state.mark_seen(msg_id, now)
        self._added(now)

    def has_inner(self, sender: str, kind: str, inner_id: str) -> bool:
        return self.state.seen_inner(sender, kind, inner_id)

    def add_inner(self, sender: str, kind: str, inner_id: str, now: float) -> None:
        self.state.mark_seen_inner(sender, kind, inner_id, now)
        self._added(now)

    def _added(self, now: float) -> None:
        if self._oldest is None or now < self._oldest:
            self._oldest = now

    def get_timer(self) -> float | None:
        if self._retry is not None:
            return self._retry
        return None if self._oldest is None else self._oldest + self.ttl + PRUNE_SLACK

    def handle_timer(self, now: float) -> None:
        at = self.get_timer()
        if at is None or now < at:
            return
        try:
            self.state.forget_seen(now - self.ttl)
            self._oldest = self.state.oldest_seen()
            self._retry = None
        except StoreError as exc:  # the next write will fail loudly; retry the prune later
            log.warning("event=seen-prune-failed error=%s", exc)
            self._retry = now + PRUNE_SLACK
