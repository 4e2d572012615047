"""Password hashes (scrypt) and sessions with a fake clock."""

from __future__ import annotations

import pytest

from bridge.console.auth import Sessions, csrf_ok, hash_password, parse_hash, verify_password


def test_hash_verifies_and_is_salted() -> None:
    h1, h2 = hash_password("s3cret", log_n=10), hash_password("s3cret", log_n=10)
    assert h1 != h2 and h1.startswith("scrypt$10$8$1$")
    assert verify_password("s3cret", h1) and verify_password("s3cret", h2)
    assert not verify_password("s3cret ", h1)
    assert not verify_password("s3cret", None)  # unknown user: false (after the same work)


def test_default_cost_is_n_2_15() -> None:
    assert parse_hash(hash_password("x"))[0] == 15


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "plain",
        "scrypt$15$8$1$c2FsdA$aGFzaA",
        "scrypt$30$8$1$" + "A" * 22 + "$" + "A" * 43,
        "bcrypt$15$8$1$x$y",
        "scrypt$x$8$1$a$b",
    ],
)
def test_malformed_hashes_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_hash(bad)


def test_empty_or_huge_password_refused() -> None:
    with pytest.raises(ValueError):
        hash_password("")
    with pytest.raises(ValueError):
        hash_password("x" * 2000)


def test_sessions_expire_absolute_and_idle() -> None:
    s = Sessions(ttl=100, idle=30)
    token, sess = s.open("alice", 0.0)
    assert s.get(token, 29.0) is sess  # touched at 29
    assert s.get(token, 58.0) is sess  # idle 29 s: alive, touched again
    assert s.get(token, 89.0) is None  # idle 31 s: gone
    assert s.get(token, 1.0) is None  # and forgotten
    token, _ = s.open("alice", 0.0)
    for t in range(20, 100, 20):
        assert s.get(token, float(t)) is not None
    assert s.get(token, 100.0) is None  # absolute expiry though in use


def test_session_limit_drops_the_oldest_and_close() -> None:
    s = Sessions(limit=2)
    a, _ = s.open("a", 1.0)
    b, _ = s.open("b", 2.0)
    c, _ = s.open("c", 3.0)
    assert s.get(a, 4.0) is None and s.get(b, 4.0) is not None and len(s) == 2
    s.close(c)
    assert s.get(c, 4.0) is None


def test_csrf_compare() -> None:
    s = Sessions()
    _, sess = s.open("a", 0.0)
    assert csrf_ok(sess, sess.csrf)
    assert not csrf_ok(sess, None) and not csrf_ok(sess, "") and not csrf_ok(sess, sess.csrf + "x")
