"""A stored item as a JetStream message: its payload and its de-duplication id.

Payload: one JSON line of metadata (channel, kind, message id, accepted and expiry times),
then the opaque body. ``Nats-Msg-Id`` is a hash of (recipient, message id), so the same item
for the same member is stored once within the stream's duplicate window.
"""

from __future__ import annotations

import hashlib
import json

from bridge.relay.store import StoredItem

__all__ = ["decode_item", "dedup_id", "encode_item"]


def dedup_id(recipient: str, msg_id: str) -> str:
    return hashlib.sha256(f"{recipient}\0{msg_id}".encode()).hexdigest()


def encode_item(channel: str, kind: str, msg_id: str, at: float, exp: float, body: bytes) -> bytes:
    meta = json.dumps({"ch": channel, "kind": kind, "id": msg_id, "at": at, "exp": exp})
    return meta.encode() + b"\n" + bytes(body)


def decode_item(seq: int, recipient: str, data: bytes) -> StoredItem:
    head, _, body = data.partition(b"\n")
    m = json.loads(head)
    return StoredItem(seq, recipient, m["ch"], m["kind"], m["id"], body, m["at"], m["exp"])
