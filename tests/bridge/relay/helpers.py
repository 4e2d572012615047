"""Shared pieces of the sans-IO relay tests: the driver loop, and a store and an audit sink
that fail on demand."""

from __future__ import annotations

import base64
import json
from typing import Any

from bridge.errors import StoreError
from bridge.relay.core import Outcome, RelayCore
from bridge.relay.jobs import execute
from bridge.relay.memory_store import MemoryStore
from bridge.wire.auth import AUTH_DOMAIN
from crypto.encoding import signing_input
from tests.world import NOW, Device


class NullAudit:
    """An audit sink that keeps records in memory; ``failing`` is set by the test."""

    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []
        self.failing = False
        self.failures = 0

    def append(self, event: str, now: float, **fields: Any) -> int:
        self.records.append((event, fields))
        return len(self.records)

    def close(self) -> None:
        pass


class GuardedStore(MemoryStore):
    """A store that fails the test if anybody calls it outside a job (``open`` unset), and
    whose writes raise :class:`StoreError` while ``fail_writes`` is set."""

    WRITES = ("enqueue", "ack", "put_state", "expire")
    READS = ("pending", "get_state", "depth")

    def __init__(self) -> None:
        super().__init__()
        self.open = True  # construction (the start-up restore) may read
        self.fail_writes = False
        self.calls: list[str] = []

    def __getattribute__(self, name: str) -> Any:
        attr = super().__getattribute__(name)
        if name in GuardedStore.WRITES + GuardedStore.READS:
            if not super().__getattribute__("open"):
                raise AssertionError(f"store.{name} called outside a job")
            super().__getattribute__("calls").append(name)
            if name in GuardedStore.WRITES and super().__getattribute__("fail_writes"):
                raise StoreError("store unavailable: disk I/O error (test)")
        return attr


def run(core: RelayCore, outcome: Outcome, now: float = NOW) -> list[tuple[int, dict[str, Any]]]:
    """Apply an outcome as the driver does (jobs run in order, results fed back); return the
    decoded sends."""
    sends = [(sid, json.loads(m)) for sid, m in outcome.sends]
    sends += [(sid, {"t": "closed", "code": code}) for sid, code in outcome.close]
    store = core.store
    for job in outcome.jobs:
        if isinstance(store, GuardedStore):
            store.open = True
        try:
            result = execute(job.op, store)
        finally:
            if isinstance(store, GuardedStore):
                store.open = False
        sends += run(core, core.complete(job, result, now), now)
    return sends


def auth_msg(d: Device, challenge: str, relay_id: str, nonce: str = "n") -> dict[str, Any]:
    proof = signing_input(
        AUTH_DOMAIN,
        {
            "challenge": json.loads(challenge)["nonce"],
            "relay": relay_id,
            "device": d.id,
            "nonce": nonce,
        },
    )
    return {
        "t": "auth",
        "v": 1,
        "credential": json.loads(d.cred.encode()),
        "nonce": nonce,
        "sig": base64.b64encode(d.keys.sign.sign(proof)).decode(),
    }


def login(
    core: RelayCore, d: Device, now: float = NOW, wall: float | None = None
) -> tuple[int, list[Any]]:
    sid, challenge = core.connect(now)
    msg = auth_msg(d, challenge, core.config.relay_id)
    return sid, run(core, core.handle(sid, msg, now, wall), now)


def commit_msg(bundle: Any, **hints: Any) -> dict[str, Any]:
    """A commit message naming the bundle's own channel and epoch unless ``hints`` say else."""
    hints = {"ch": bundle.commit.channel, "epoch": bundle.commit.epoch, **hints}
    return {"t": "commit", "v": 1, "bundle": base64.b64encode(bundle.encode()).decode(), **hints}
