"""The floor lease of a channel across relay nodes: one KV entry whose revision fences.

Theory of operation
-------------------
Each channel's floor holder is one entry of the KV bucket ``cb_floor`` (R3), key = the
channel, value = ``{device, node, prio, until}``. Whoever writes it through compare-and-set
holds the floor; every write gets a new *revision*, which is the lease's fencing token:

* **acquire** (a member asks its node for the floor): read the entry. Absent, deleted,
  expired (``until`` passed: the holder's node died mid-burst), the asker's own, or held at a
  strictly lower priority (preemption, as in :class:`bridge.floor.control.FloorControl`):
  write it with ``create`` or ``update(last=revision read)``. If another node wrote in between,
  the compare-and-set fails and the read is done again; so of two simultaneous requests on
  two nodes exactly one is granted (nats-server ≥ 2.11: Debian's 2.9.10 lets both win).
  Otherwise the request is denied, naming the holder.
* **release** (the holder let go, left, or its talk time ran out): ``delete(last=the revision
  it was granted)``. A node whose holder was preempted meanwhile holds a stale revision: its
  delete fails and changes nothing.
* Floor events a node publishes carry the revision they were decided under; a node ignores an
  event older than the newest revision it has seen for the channel, so a stale owner's
  messages cannot undo a newer grant.

The node's own :class:`~bridge.floor.control.FloorControl` still decides locally (grants,
preemption, the talk timer) once the lease is won; the lease only arbitrates between nodes.
These ops run on the relay's store thread like every other :mod:`~bridge.relay.jobs` op.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from nats.js.errors import BadRequestError, KeyNotFoundError, KeyWrongLastSequenceError

from bridge.relay.nats import subjects as s

__all__ = ["Acquire", "Lease", "Release"]

ATTEMPTS = 5  # compare-and-set rounds before a request under heavy contention is denied


@dataclass(frozen=True, slots=True)
class Lease:
    """The answer to :class:`Acquire`: granted with ``revision``, or held by ``holder``."""

    granted: bool
    revision: int
    holder: str | None = None


@dataclass(frozen=True, slots=True)
class Acquire:
    channel: str
    device: str
    priority: int
    node: str
    wall: float
    hold: float  # seconds the lease lasts unless released: the talk time limit
    writes = True

    def run(self, store: Any) -> Lease:
        return store.run(self._acquire(store.floor))  # type: ignore[no-any-return]

    async def _acquire(self, kv: Any) -> Lease:
        key = s.floor_key(self.channel)
        value = json.dumps(
            {
                "device": self.device,
                "node": self.node,
                "prio": self.priority,
                "until": self.wall + self.hold,
            }
        ).encode()
        holder: str | None = None
        for _ in range(ATTEMPTS):
            try:
                entry = await kv.get(key)
            except KeyNotFoundError:
                entry = None
            try:
                if entry is None or not entry.value:
                    return Lease(True, int(await kv.create(key, value)))
                cur = json.loads(entry.value)
                holder = str(cur["device"])
                if (
                    holder == self.device
                    or float(cur["until"]) <= self.wall
                    or self.priority > int(cur["prio"])
                ):
                    rev = await kv.update(key, value, last=entry.revision)
                    return Lease(True, int(rev))
                return Lease(False, int(entry.revision), holder)
            except KeyWrongLastSequenceError:
                continue  # another node wrote in between: read again
        return Lease(False, 0, holder)


@dataclass(frozen=True, slots=True)
class Release:
    channel: str
    revision: int  # the revision this node was granted: a stale one changes nothing
    writes = True

    def run(self, store: Any) -> bool:
        return store.run(self._release(store.floor))  # type: ignore[no-any-return]

    async def _release(self, kv: Any) -> bool:
        try:
            await kv.delete(s.floor_key(self.channel), last=self.revision)
        except BadRequestError:  # "wrong last sequence" (10071): fenced, a newer lease holds
            return False
        return True
