"""Audit log: the chain verifies, and every kind of tampering is found at the right record."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from bridge.errors import AuditLogError
from bridge.relay.audit import GENESIS, AuditLog, verify_command, verify_file


def write_log(path: Path, n: int = 6) -> None:
    with AuditLog(path) as log:
        for i in range(n):
            log.append(
                "floor.granted", 1000.0 + i, channel="c1", device=f"us-cbp/r{i}", size=100 + i
            )


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_chain_verifies_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    with AuditLog(path) as log:
        assert log.head[0] == 3
        assert log.append("channel.expired", 2000, channel="c1", members=["a", "b"], ok=True) == 4
    result = verify_file(path)
    assert result.ok and result.records == 4 and result.first_bad is None
    first = json.loads(lines(path)[0])
    assert first["prev"] == GENESIS and first["seq"] == 1
    unhashed = {k: v for k, v in first.items() if k != "hash"}
    canonical = json.dumps(unhashed, sort_keys=True, separators=(",", ":")).encode()
    assert first["hash"] == hashlib.sha256(canonical).hexdigest()
    assert result.head == json.loads(lines(path)[-1])["hash"]


def test_empty_log_verifies(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    AuditLog(path).close()
    assert verify_file(path).ok and verify_file(path).records == 0


def test_edited_field_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path)
    data = lines(path)
    data[2] = data[2].replace(b"us-cbp/r2", b"mx-gn/r2")
    path.write_bytes(b"".join(data))
    result = verify_file(path)
    assert not result.ok and result.first_bad == 3 and result.records == 2
    assert "hash" in result.reason


def test_edited_and_rehashed_detected_at_next(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path)
    data = lines(path)
    record = json.loads(data[2])
    record["fields"]["device"] = "mx-gn/r2"
    del record["hash"]
    record["hash"] = hashlib.sha256(
        json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    data[2] = json.dumps(record, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    path.write_bytes(b"".join(data))
    result = verify_file(path)
    assert result.first_bad == 4 and "chain" in result.reason


def test_dropped_record_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path)
    data = lines(path)
    del data[3]
    path.write_bytes(b"".join(data))
    result = verify_file(path)
    assert not result.ok and result.first_bad == 4 and "sequence" in result.reason


def test_swapped_records_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path)
    data = lines(path)
    data[1], data[2] = data[2], data[1]
    path.write_bytes(b"".join(data))
    assert verify_file(path).first_bad == 2


def test_inserted_copy_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path)
    data = lines(path)
    data.insert(4, data[1])
    path.write_bytes(b"".join(data))
    assert verify_file(path).first_bad == 5


def test_inserted_forgery_detected_at_next(tmp_path: Path) -> None:
    # a forger who computes a valid record for slot 3 is caught by the original record 3
    path = tmp_path / "audit.jsonl"
    write_log(path)
    data = lines(path)
    forged = json.loads(data[2])
    forged["fields"] = {"device": "forged"}
    del forged["hash"]
    forged["hash"] = hashlib.sha256(
        json.dumps(forged, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    data.insert(2, json.dumps(forged, sort_keys=True, separators=(",", ":")).encode() + b"\n")
    path.write_bytes(b"".join(data))
    result = verify_file(path)
    assert result.first_bad == 4 and result.records == 3


def test_truncated_tail_detected_and_refused_on_open(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path)
    raw = path.read_bytes()
    path.write_bytes(raw[:-20])
    result = verify_file(path)
    assert not result.ok and result.first_bad == 6 and result.records == 5
    assert "truncated" in result.reason
    with pytest.raises(AuditLogError) as info:
        AuditLog(path)
    assert "corrupt" in str(info.value)
    path.write_bytes(raw[:-1])  # just the newline missing
    assert verify_file(path).first_bad == 6
    with pytest.raises(AuditLogError):
        AuditLog(path)


def test_reopen_refuses_unhashable_tail(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path)
    data = lines(path)
    data[-1] = data[-1].replace(b"us-cbp/r5", b"us-cbp/r9")
    path.write_bytes(b"".join(data))
    with pytest.raises(AuditLogError):
        AuditLog(path)


def test_anchor_for_rotated_logs(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    anchor = "ab" * 32
    with AuditLog(path, anchor=anchor) as log:
        log.append("relay.started", 1.0, node="r1")
    assert not verify_file(path).ok
    assert verify_file(path, anchor=anchor).ok


def test_second_writer_is_locked_out(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path):
        with pytest.raises(AuditLogError) as info:
            AuditLog(path)
        assert "locked" in str(info.value)


@pytest.mark.parametrize(
    "name", ["content", "plaintext", "body", "key", "epoch_secret", "signingKey", "Body_size"]
)
def test_forbidden_field_names_refused(tmp_path: Path, name: str) -> None:
    with AuditLog(tmp_path / "audit.jsonl") as log:
        with pytest.raises(ValueError):
            log.append("message.accepted", 1.0, **{name: "x"})
        assert log.head[0] == 0


@pytest.mark.parametrize(
    "value", [b"bytes", {"nested": 1}, [["nested"]], float("nan"), "x" * 10_000, object()]
)
def test_non_metadata_values_refused(tmp_path: Path, value: object) -> None:
    with AuditLog(tmp_path / "audit.jsonl") as log:
        with pytest.raises(ValueError):
            log.append("message.accepted", 1.0, msg_id=value)  # type: ignore[arg-type]
    assert (tmp_path / "audit.jsonl").read_bytes() == b""


def test_verify_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 2)
    assert verify_command(str(path)) == 0
    assert "OK, 2 records" in capsys.readouterr().out
    path.write_bytes(path.read_bytes()[:-3])
    assert verify_command(str(path)) == 1
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "FAILED at record 2" in out
    assert verify_command(str(tmp_path / "missing.jsonl")) == 1


def test_background_log_writes_in_order_and_flushes_on_close(tmp_path: Path) -> None:
    from bridge.relay.audit import BackgroundAuditLog, verify_file

    log = BackgroundAuditLog(tmp_path / "bg.log")
    for i in range(200):
        log.append("floor", 1000.0 + i, channel="c1", n=i)
    with pytest.raises(ValueError):
        log.append("message", 1.0, body="never logged")  # refused in the caller
    log.close()
    result = verify_file(tmp_path / "bg.log")
    assert result.ok and result.records == 200 and log.failures == 0
    lines = (tmp_path / "bg.log").read_text().splitlines()
    assert [json.loads(line)["fields"]["n"] for line in lines] == list(range(200))
