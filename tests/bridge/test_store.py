"""Store-and-forward: both implementations share one behavioural suite; SQLite also crashes."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.errors import StoreError
from bridge.relay.memory_store import MemoryStore
from bridge.relay.store import ForwardStore, SqliteStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ForwardStore]:
    s: ForwardStore = (
        SqliteStore(tmp_path / "fwd.db") if request.param == "sqlite" else MemoryStore()
    )
    yield s
    s.close()


def test_implements_protocol(store: ForwardStore) -> None:
    assert isinstance(store, ForwardStore)


def test_order_preserved_per_recipient(store: ForwardStore) -> None:
    seqs = [
        store.enqueue(["v1", "v2"], "c", "message", f"m{i}", b"x%d" % i, 0.0, 60) for i in range(5)
    ]
    store.enqueue(["v2"], "c", "commit", "only-v2", b"c", 0.0, 60)
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    v1 = store.pending("v1", 1.0)
    assert [i.msg_id for i in v1] == [f"m{i}" for i in range(5)]
    assert [i.seq for i in v1] == seqs
    assert v1[2].body == b"x2" and v1[2].channel == "c" and v1[2].kind == "message"
    assert v1[2].accepted_at == 0.0 and v1[2].expires_at == 60.0
    assert [i.msg_id for i in store.pending("v2", 1.0)][-1] == "only-v2"
    assert [i.msg_id for i in store.pending("v1", 1.0, after_seq=seqs[1], limit=2)] == ["m2", "m3"]
    assert store.pending("nobody", 1.0) == []


def test_ack_is_cumulative_and_per_recipient(store: ForwardStore) -> None:
    seqs = [store.enqueue(["v1", "v2"], "c", "message", f"m{i}", b"x", 0.0, 60) for i in range(4)]
    assert store.depth() == 8 and store.depth("v1") == 4
    assert store.ack("v1", seqs[1]) == 2
    assert store.ack("v1", seqs[1]) == 0  # repeated ack
    assert [i.msg_id for i in store.pending("v1", 1.0)] == ["m2", "m3"]
    assert len(store.pending("v2", 1.0)) == 4  # v2's copy is untouched
    assert store.ack("v2", seqs[-1]) == 4 and store.ack("v1", 10**9) == 2
    assert store.depth() == 0 and store.ack("ghost", 10) == 0


def test_same_msg_id_stored_once(store: ForwardStore) -> None:
    first = store.enqueue(["v1"], "c", "message", "m", b"one", 0.0, 60)
    assert store.enqueue(["v1", "v1"], "c", "message", "m", b"two", 1.0, 60) == first
    assert [(i.seq, i.body) for i in store.pending("v1", 2.0)] == [(first, b"one")]
    # a new recipient of the same id gets it, under a new, later seq
    later = store.enqueue(["v1", "v2"], "c", "message", "m", b"one", 2.0, 60)
    assert later > first and store.depth("v1") == 1 and store.depth("v2") == 1
    # a retry after delivery is still recognised until expiry
    store.ack("v1", first)
    assert store.enqueue(["v1"], "c", "message", "m", b"one", 3.0, 60) == first
    assert store.pending("v1", 3.0) == []


def test_expiry(store: ForwardStore) -> None:
    store.enqueue(["v1"], "c", "message", "short", b"s", 0.0, 10)
    store.enqueue(["v1"], "c", "message", "long", b"l", 0.0, 100)
    assert [i.msg_id for i in store.pending("v1", 9.9)] == ["short", "long"]
    assert [i.msg_id for i in store.pending("v1", 10.0)] == ["long"]  # skipped before expire()
    assert store.expire(50.0) == 1
    assert store.depth("v1") == 1 and store.expire(50.0) == 0
    # once its tombstone expired, the same id may be stored again
    assert store.enqueue(["v1"], "c", "message", "short", b"s2", 60.0, 10) > 0
    assert store.depth("v1") == 2


def test_state_kv(store: ForwardStore) -> None:
    assert store.get_state("chain/c1") is None
    store.put_state("chain/c1", b"\x00head1")
    store.put_state("chain/c1", b"\x00head2")
    assert store.get_state("chain/c1") == b"\x00head2"


def test_bad_arguments(store: ForwardStore) -> None:
    with pytest.raises(ValueError):
        store.enqueue([], "c", "message", "m", b"x", 0.0, 60)
    with pytest.raises(ValueError):
        store.enqueue(["v"], "c", "message", "m", b"x", 0.0, 0)
    with pytest.raises(ValueError):
        store.enqueue(["v"], "c", "message", "", b"x", 0.0, 60)
    with pytest.raises(ValueError):
        store.pending("v", 0.0, limit=0)


def test_repr_hides_body(store: ForwardStore) -> None:
    store.enqueue(["v"], "c", "message", "m", b"TOP-SECRET-CIPHERTEXT", 0.0, 60)
    assert "TOP-SECRET" not in repr(store.pending("v", 0.0))


def test_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "fwd.db"
    s = SqliteStore(path)
    seqs = [s.enqueue(["v1"], "c", "message", f"m{i}", bytes([i]) * 100, 0.0, 60) for i in range(3)]
    s.ack("v1", seqs[0])
    s.put_state("chain/c", b"head")
    s.close()
    s = SqliteStore(path)
    assert [i.seq for i in s.pending("v1", 1.0)] == seqs[1:]
    assert s.get_state("chain/c") == b"head"
    assert s.enqueue(["v1"], "c", "message", "m1", b"dup", 1.0, 60) == seqs[1]
    assert s.enqueue(["v1"], "c", "message", "new", b"n", 1.0, 60) > seqs[-1]  # never reused
    s.close()


def test_file_is_in_wal_mode(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "fwd.db")
    s.enqueue(["v"], "c", "message", "m", b"x", 0.0, 60)
    other = sqlite3.connect(tmp_path / "fwd.db")  # journal_mode=WAL is stored in the file
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other.close()
    s.close()


def test_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError) as info:
        SqliteStore(path)
    assert "store unavailable" in str(info.value) and str(path) in str(info.value)


CHILD = """
import sys
from bridge.relay.store import SqliteStore
store = SqliteStore(sys.argv[1])
for i in range(100000):
    seq = store.enqueue(["vessel", "console"], "c1", "message", f"m{i}", b"\\xab" * 200, 0.0, 3600)
    print(seq, flush=True)
"""


def test_crash_durability_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "fwd.db"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None
    acknowledged: list[int] = []
    for line in child.stdout:
        acknowledged.append(int(line))
        if len(acknowledged) == 200:
            child.send_signal(signal.SIGKILL)  # mid-way, while it keeps writing
            break
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    acknowledged += [int(line) for line in child.stdout.read().split()]  # flushed before death
    store = SqliteStore(path)
    try:
        for recipient in ("vessel", "console"):
            seqs = [i.seq for i in store.pending(recipient, 1.0, limit=1_000_000)]
            assert set(acknowledged) <= set(seqs)
            assert seqs == sorted(seqs)
        assert all(i.body == b"\xab" * 200 for i in store.pending("vessel", 1.0))
    finally:
        store.close()


def test_store_runs_wal_with_synchronous_full(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "fwd.db")
    try:
        # FULL (2): the WAL is synced at every commit. NORMAL (1) would survive a SIGKILL but
        # lose acknowledged items on a power cut, which no kill test can tell apart.
        assert store.pragmas() == {"journal_mode": "wal", "synchronous": 2}
    finally:
        store.close()


FSYNC_CHILD = """
import os, sys
from bridge.relay.store import SqliteStore
store = SqliteStore(sys.argv[1])
for i in range(20):
    store.enqueue(["vessel"], "c1", "message", f"m{i}", b"x", 0.0, 3600)
    os.write(1, b"accepted %d\\n" % i)
store.close()
"""


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace to see the fsyncs")
def test_every_enqueue_fsyncs_the_wal_before_it_returns(tmp_path: Path) -> None:
    """What a SIGKILL test cannot show: the data reached the disk, not just the page cache.
    strace records, in order, each sync of the WAL file and each acceptance the child
    reports; every acceptance must come after a sync of its own."""
    trace = tmp_path / "trace"
    subprocess.run(
        [
            "strace",
            "-f",
            "-qq",
            "-y",
            "-e",
            "trace=fsync,fdatasync,write",
            "-o",
            str(trace),
            sys.executable,
            "-c",
            FSYNC_CHILD,
            str(tmp_path / "fwd.db"),
        ],
        check=True,
        capture_output=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    events = []
    for line in trace.read_text().splitlines():
        if re.search(r"f(data)?sync\(\d+<[^>]*fwd\.db-wal>\)\s+= 0", line):
            events.append("sync")
        elif re.search(r'write\(1<[^>]*>, "accepted \d+', line):
            events.append("accepted")
    assert events.count("accepted") == 20
    synced = False
    for event in events:
        if event == "sync":
            synced = True
        else:
            assert synced, "an item was acknowledged before the WAL was synced"
            synced = False
