"""What a hostile dispatcher can send: a commit bundle with its body changed and signed again."""

from __future__ import annotations

import json
from typing import Any

from crypto.channel import COMMIT_DOMAIN, CommitBundle
from crypto.encoding import b64e, canonical, signing_input
from tests.world import Device


def resigned(bundle: CommitBundle, issuer: Device, **changes: Any) -> bytes:
    """The encoded bundle with its commit body updated by ``changes`` and signed by ``issuer``
    (the sealed secrets stay as they were)."""
    body = {**bundle.commit.body(), **changes}
    sig = issuer.keys.sign.sign(signing_input(COMMIT_DOMAIN, body))
    obj = json.loads(bundle.encode())
    obj["commit"] = {"body": body, "sig": b64e(sig)}
    return canonical(obj)
