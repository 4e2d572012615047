"""Drive :class:`~bridge.endpoint.core.EndpointCore` directly, on a fake clock.

The relay here is the test itself: it hands each core the control messages a relay would
send (``deliver``, ``floor``, …) and reads back what the core wants sent. Commit verification
jobs run inline, as the asyncio driver would run them on a worker thread.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from bridge.endpoint import events as ev
from bridge.endpoint.core import EndpointCore
from bridge.endpoint.seen import SEEN_TTL
from bridge.endpoint.state import EndpointState
from bridge.wire import control as p
from crypto.agreement import RevocationList
from crypto.channel import CommitBundle
from crypto.checkpoint import GENESIS, Checkpoint, frame_hash
from crypto.group import ChannelMember
from crypto.sframe import decode_header
from tests.world import Device, World

CH = "inc-1"
NO = 7


class Clock:
    """Seconds since the epoch, moved only by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def advance(self, dt: float) -> float:
        self.now += dt
        return self.now


class Node:
    """One core with its state file, and what it said so far."""

    def __init__(
        self,
        world: World,
        device: Device,
        path: Path,
        clock: Clock,
        *,
        transport: str = "udp",
        revocations: dict[str, RevocationList] | None = None,
        seen_ttl: float = SEEN_TTL,
    ) -> None:
        self.world, self.device, self.path, self.clock = world, device, path, clock
        self.transport, self.revocations, self.seen_ttl = transport, revocations, seen_ttl
        self.seq = 0
        self.sent: list[dict[str, Any]] = []
        self.events: list[ev.Event] = []
        self.start()

    def start(self) -> None:
        """(Re)start: a new core over the same state file, as after a crash."""
        self.state = EndpointState(self.path)
        self.core = EndpointCore(
            self.device.cred,
            self.device.keys,
            self.world.trust,
            self.state,
            now=self.clock.now,
            transport=self.transport,
            revocations=self.revocations,
            seen_ttl=self.seen_ttl,
        )
        self.core.receive_welcome({"channels": [{"ch": CH, "no": NO}]}, self.clock.now)
        self.pump()

    def restart(self) -> None:
        self.state.close()
        self.start()

    def pump(self) -> None:
        """Run the verification jobs inline; collect what the core sent and reported."""
        while jobs := self.core.jobs():
            for job in jobs:
                self.core.job_done(job, job.run(), self.clock.now)
        self.sent += [json.loads(c) for c in self.core.data_to_send()]
        self.events += self.core.events_received()

    def relay(self, t: str, **fields: Any) -> None:
        """A control message from the relay."""
        self.core.receive_control(p.control(t, **fields), self.clock.now)
        self.pump()

    def deliver(self, kind: str, body: bytes, msg_id: str = "m") -> int:
        self.seq += 1
        b64 = base64.b64encode(body).decode()
        self.relay("deliver", seq=self.seq, kind=kind, ch=CH, id=f"{msg_id}-{self.seq}", body=b64)
        return self.seq

    def commit(self, bundle: CommitBundle) -> int:
        return self.deliver("commit", bundle.encode(), "commit")

    def take(self, kind: type) -> list[Any]:
        """The events of ``kind`` reported since the last take (others are kept)."""
        out = [e for e in self.events if isinstance(e, kind)]
        self.events = [e for e in self.events if not isinstance(e, kind)]
        return out

    def sent_types(self) -> list[str]:
        out = [m["t"] for m in self.sent]
        self.sent = []
        return out

    def close(self) -> None:
        self.state.close()


def checkpoint_for(tx: ChannelMember, frames: list[bytes], ch: str = CH) -> bytes:
    """The signed checkpoint frame a talker sends in band over ``frames`` (consecutive voice
    frames of one KID, as :class:`~crypto.checkpoint.Checkpointer` would cut them)."""
    assert tx.last_commit is not None
    kid, first, _ = decode_header(frames[0])
    hashes = tuple(frame_hash(f) for f in frames)
    cp = Checkpoint(ch, bytes.fromhex(tx.last_commit.hash), kid, 0, GENESIS, first, hashes)
    return tx.sign_checkpoint(cp)
