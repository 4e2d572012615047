"""Authentication transcripts of the relay protocol (DESIGN §5).

A device proves its key by signing ``AUTH_DOMAIN`` over the relay's challenge; the relay proves
its own key (when a device pins it) by signing :func:`relay_proof` over the device's nonce.
Both sides build these bytes from here, so the transcripts cannot drift apart.
"""

from __future__ import annotations

from crypto.encoding import signing_input

AUTH_DOMAIN = "crossband/v1/auth"
RELAY_AUTH_DOMAIN = "crossband/v1/relay-auth"


def relay_proof(challenge: str, relay_id: str, device: str, nonce: str) -> bytes:
    """What the relay signs in its welcome (and a device verifies against the pinned key)."""
    return signing_input(
        RELAY_AUTH_DOMAIN,
        {"challenge": challenge, "relay": relay_id, "device": device, "nonce": nonce},
    )
