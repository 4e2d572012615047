"""Names on the NATS side: subjects, stream, buckets and keys, and the token encoding.

Device and channel names may hold characters a subject token or a KV key may not (``.``,
``*``, ``>``, spaces, ``:``), so every name is carried as lowercase base32 without padding,
which is reversible and uses only ``a-z2-7``.
"""

from __future__ import annotations

import base64

PREFIX = "cb"
QUEUE_STREAM = "CB_QUEUE"  # store-and-forward: one subject per member
QUEUE_SUBJECTS = f"{PREFIX}.q.>"
STATE_BUCKET = "cb_state"  # relay state (channel heads, revocation lists, credentials)
FLOOR_BUCKET = "cb_floor"  # one floor lease per channel
VOICE = f"{PREFIX}.v"  # cb.v.<channel>: checked voice frames, core NATS (no persistence)
COMMITS = f"{PREFIX}.c.commit"  # a node accepted a commit: the others install its head
FLOOR = f"{PREFIX}.c.floor"  # a node's floor events, with the lease revision


def token(name: str) -> str:
    """``name`` as one subject token / KV key (lowercase base32, no padding)."""
    return base64.b32encode(name.encode()).decode().rstrip("=").lower()


def untoken(tok: str) -> str:
    pad = "=" * (-len(tok) % 8)
    return base64.b32decode(tok.upper() + pad).decode()


def queue_subject(recipient: str) -> str:
    return f"{PREFIX}.q.{token(recipient)}"


def consumer_name(recipient: str) -> str:
    return f"m-{token(recipient)}"


def voice_subject(channel: str) -> str:
    return f"{VOICE}.{token(channel)}"


def state_key(key: str) -> str:
    return token(key)


def floor_key(channel: str) -> str:
    return token(channel)
