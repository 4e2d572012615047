"""Store calls as job descriptions: what the core asks of the durable store, and its answer.

The relay core never calls the store. It returns :class:`Job` values in its
:class:`~bridge.relay.state.Outcome`; the driver runs each job's ``op`` on its single store
thread, in submission order (which keeps deliveries in acceptance order), and hands the result
— or a :class:`StoreFailure` — back to :meth:`bridge.relay.core.RelayCore.complete` on the
event loop. In-memory state that depends on a write changes only in the job's ``then``, so a
write that fails never leaves memory ahead of disk.

Each op is a small frozen dataclass with ``run(store)``; ``writes`` says whether it changes
the store (a successful write clears the relay's "store failing" state). An op with ``cpu``
set (:class:`VerifyCommit`) needs no store but much CPU: the driver runs it on a thread of its
own, so a 500-member rekey's ~150 ms of decoding and signature checks never stops the event
loop for longer than the interpreter's switch interval.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bridge.errors import RemoteProtocolError
from bridge.relay.state import Outcome
from bridge.relay.store import ForwardStore, StoredItem
from bridge.wire.control import unb64
from crypto.agreement import RevocationList
from crypto.channel import Commit, CommitBundle, verify_commit
from crypto.errors import Refusal, VerificationError
from crypto.identity import TrustBundle

__all__ = [
    "Ack",
    "Backlog",
    "Depth",
    "Enqueue",
    "Expire",
    "GetStates",
    "Job",
    "PutStates",
    "StoreFailure",
    "StoreOp",
    "VerifyCommit",
    "execute",
]

log = logging.getLogger("crossband.relay")


class StoreOp(Protocol):
    @property
    def writes(self) -> bool: ...

    def run(self, store: ForwardStore) -> Any: ...


@dataclass(frozen=True, slots=True)
class StoreFailure:
    """What a job returns when its op raised: the error's type name only (no content)."""

    error: str


def _nothing(*_args: Any) -> Outcome:
    return Outcome()


@dataclass(frozen=True, slots=True)
class Job:
    """One store op, what to do with its result, and what to do if it failed."""

    op: StoreOp
    then: Callable[[Any, float], Outcome] = _nothing  # with the op's result and ``now``
    failed: Callable[[float], Outcome] = _nothing  # with ``now`` (monotonic)


def execute(op: StoreOp, store: ForwardStore) -> Any:
    """Run ``op`` (on the store thread); any exception becomes a :class:`StoreFailure`."""
    try:
        return op.run(store)
    except Exception as exc:  # the driver must survive anything the store raises
        log.warning("event=store-failed op=%s error=%s", type(op).__name__, type(exc).__name__)
        return StoreFailure(type(exc).__name__)


@dataclass(frozen=True, slots=True, repr=False)
class Enqueue:
    """Store ``body`` for each recipient and, in the same transaction, ``state`` entries."""

    recipients: tuple[str, ...]
    channel: str
    kind: str
    msg_id: str
    body: bytes
    wall: float
    ttl: float
    state: tuple[tuple[str, bytes], ...] = ()
    writes = True

    def run(self, store: ForwardStore) -> int:
        return store.enqueue(
            list(self.recipients),
            self.channel,
            self.kind,
            self.msg_id,
            self.body,
            self.wall,
            self.ttl,
            state=dict(self.state),
        )

    def __repr__(self) -> str:  # never a body, not even in a traceback
        return f"Enqueue({self.kind} {self.msg_id!r} for {len(self.recipients)})"


@dataclass(frozen=True, slots=True)
class Backlog:
    """Record a device's credential (the directory) if given, then read its next page."""

    device: str
    wall: float
    after_seq: int
    limit: int
    credential: bytes | None = None
    writes = False

    def run(self, store: ForwardStore) -> list[StoredItem]:
        if self.credential is not None:
            store.put_state(f"cred:{self.device}", self.credential)
        return store.pending(self.device, self.wall, after_seq=self.after_seq, limit=self.limit)


@dataclass(frozen=True, slots=True)
class Ack:
    recipient: str
    up_to_seq: int
    writes = True

    def run(self, store: ForwardStore) -> int:
        return store.ack(self.recipient, self.up_to_seq)


@dataclass(frozen=True, slots=True)
class PutStates:
    items: tuple[tuple[str, bytes], ...]
    writes = True

    def run(self, store: ForwardStore) -> None:
        for key, value in self.items:
            store.put_state(key, value)


@dataclass(frozen=True, slots=True)
class GetStates:
    keys: tuple[str, ...]
    writes = False

    def run(self, store: ForwardStore) -> dict[str, bytes]:
        found = {}
        for key in self.keys:
            value = store.get_state(key)
            if value is not None:
                found[key] = value
        return found


@dataclass(frozen=True, slots=True)
class Expire:
    wall: float
    writes = True

    def run(self, store: ForwardStore) -> int:
        return store.expire(self.wall)


@dataclass(frozen=True, slots=True)
class Depth:
    """Undelivered items, for ``/metrics``."""

    writes = False

    def run(self, store: ForwardStore) -> int:
        return store.depth()


@dataclass(frozen=True, slots=True, repr=False)
class VerifyCommit:
    """Decode a commit bundle and check it exactly as a member would (no key needed).

    The result is the :class:`CommitBundle`, or the :class:`VerificationError` that refused
    it (a verdict, not a failure of the store); ``decoded`` says whether decoding got that far.
    """

    text: str  # the message's base64 field, decoded here too (4 MB: milliseconds)
    sender: str  # the device that sent it: a bundle it did not issue is not verified at all
    trust: TrustBundle
    wall: float
    previous: Commit | None
    revocations: tuple[tuple[str, RevocationList], ...]
    writes = False
    cpu = True

    def run(self, store: ForwardStore | None = None) -> CommitBundle | Refused:
        try:
            bundle = CommitBundle.decode(unb64(self.text))
        except VerificationError as exc:
            return Refused(exc, decoded=False)
        except RemoteProtocolError:
            return Refused(VerificationError(Refusal.MALFORMED, "not base64"), decoded=False)
        if bundle.commit.issuer != self.sender:  # the caller refuses it: skip the signatures
            return Refused(VerificationError(Refusal.MALFORMED, "issuer"), True, bundle)
        try:
            verify_commit(
                bundle,
                self.trust,
                self.wall,
                previous=self.previous,
                revocations=dict(self.revocations),
            )
        except VerificationError as exc:
            return Refused(exc, decoded=True, bundle=bundle)
        return bundle

    def __repr__(self) -> str:
        return f"VerifyCommit({len(self.text)} characters)"


@dataclass(frozen=True, slots=True)
class Refused:
    """A commit :class:`VerifyCommit` refused, and why."""

    error: VerificationError
    decoded: bool
    bundle: CommitBundle | None = None
