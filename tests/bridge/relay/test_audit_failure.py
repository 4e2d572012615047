"""Fault 4: audit log write errors are not silent. The log says it is failing, keeps every
record it could not write and writes it once the disk recovers; the relay counts it in
``/metrics`` and answers ``/healthz`` 503 (fail-closed mode: test_fail_closed.py)."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import stat
import time
from pathlib import Path

import pytest

from bridge.errors import AuditLogError
from bridge.relay.audit import AuditLog, BackgroundAuditLog, verify_file
from tests.bridge.harness import RelayProcess, endpoint, until
from tests.bridge.relay.net import http_get, parse_metrics
from tests.world import make_world


class FlakyDisk:
    """``os.fsync`` that fails with EIO while ``broken`` is set (a disk that comes back)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.broken = False
        real = os.fsync

        def fsync(fd: int) -> None:
            if self.broken:
                raise OSError(errno.EIO, "Input/output error")
            real(fd)

        monkeypatch.setattr(os, "fsync", fsync)


def test_audit_log_recovers_after_a_failed_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = FlakyDisk(monkeypatch)
    path = tmp_path / "audit.log"
    with AuditLog(path) as log:
        log.append("auth", 1.0, device="a")
        disk.broken = True
        with pytest.raises(AuditLogError):
            log.append("auth", 2.0, device="b")
        assert log.failing and log.failures == 1
        disk.broken = False
        log.append("auth", 3.0, device="c")  # the chain goes on from the last good record
        assert not log.failing
    result = verify_file(path)
    assert result.ok and result.records == 2
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["fields"]["device"] for r in lines] == ["a", "c"]


def test_background_log_keeps_failed_records_and_writes_them_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = FlakyDisk(monkeypatch)
    log = BackgroundAuditLog(tmp_path / "audit.log", retry=0.01, max_retry=0.05)
    try:
        disk.broken = True
        for i in range(5):
            log.append("floor", float(i), n=i)
        deadline = time.monotonic() + 5
        while not log.failing:
            assert time.monotonic() < deadline, "the log never said it was failing"
            time.sleep(0.01)
        assert log.failures >= 1
        disk.broken = False
        deadline = time.monotonic() + 5
        while log.failing or verify_file(tmp_path / "audit.log").records < 5:
            assert time.monotonic() < deadline, "the kept records were never written"
            time.sleep(0.01)
    finally:
        log.close()
    lines = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert [r["fields"]["n"] for r in lines] == [0, 1, 2, 3, 4] and log.dropped == 0


async def test_relay_with_an_unwritable_audit_log_says_so(tmp_path: Path) -> None:
    world = make_world(now=int(time.time()))
    d = world.device("us-cbp", "dispatch-1", ("dispatcher", "member"))
    full = tmp_path / "full"  # our own node of /dev/full: every write fails with ENOSPC
    try:
        os.mknod(full, stat.S_IFCHR | 0o600, os.makedev(1, 7))
    except OSError as exc:
        pytest.skip(f"cannot create a /dev/full node here: {exc.strerror}")
    relay = RelayProcess(tmp_path, world, audit_log=str(full))
    relay.start()
    ep = None
    try:
        ep = await endpoint(relay, world, d, tmp_path)  # served: fail-open by default

        def failing() -> bool:
            m = parse_metrics(relay.metrics())
            return m["crossband_audit_failing"] == 1 and m["crossband_audit_failures_total"] >= 1

        await until(failing, timeout=10, what="crossband_audit_failing 1")
        status, body = await asyncio.to_thread(http_get, relay.port, "/healthz")
        assert status == 503 and json.loads(body)["audit"] == "failing"
        await ep.commit("inc-a", [(d.cred, "dispatcher")], agreement=world.agreement)
        assert relay.running
    finally:
        if ep is not None:
            await ep.stop()
        relay.stop()
