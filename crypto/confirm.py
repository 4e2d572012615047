"""Commit confirmations: "I hold this commit of this channel", signed by a member.

A hostile relay can withhold a commit from some members (the device a commit removed keeps
reading the old epoch) or show two members two different commits for one epoch. Members
therefore say, every few seconds, which commit they hold: a :class:`Confirmation` names the
channel, the epoch and the commit's hash, the device and the time, Ed25519-signed. It is not
secret (the relay knows epochs and hashes anyway) and travels in the clear, so a member still
on an old epoch can read and check the confirmations of members already on a newer one.
Comparing them is :mod:`bridge.endpoint.freshness`.

:func:`decode_confirmation` parses hostile input: a valid object or
``VerificationError(MALFORMED)``, nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from .encoding import b64d, b64e, canonical, parse, signing_input
from .encoding import field as get
from .errors import Refusal, VerificationError
from .identity import Credential, check_device_id
from .keys import SigningKey

CONFIRM_DOMAIN = "crossband/v1/confirm"
_HASH = re.compile(r"[0-9a-f]{64}")
MAX_CHANNEL = 128


@dataclass(frozen=True)
class Confirmation:
    channel: str
    epoch: int
    commit: str  # the commit's hash, hex
    device: str
    timestamp: int  # seconds since the epoch, as the signer claims
    signature: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        if not 1 <= len(self.channel) <= MAX_CHANNEL:
            raise ValueError("channel must be 1..128 characters")
        if not 1 <= self.epoch < 1 << 63 or not 0 <= self.timestamp < 1 << 63:
            raise ValueError("epoch or timestamp out of range")
        if not _HASH.fullmatch(self.commit):
            raise ValueError("commit hash must be 64 hex digits")

    def _body(self) -> dict[str, Any]:
        return {
            "type": "confirm",
            "channel": self.channel,
            "epoch": self.epoch,
            "commit": self.commit,
            "device": self.device,
            "ts": self.timestamp,
        }

    def signed(self, key: SigningKey) -> Confirmation:
        return replace(self, signature=key.sign(signing_input(CONFIRM_DOMAIN, self._body())))

    def verify(self, cred: Credential) -> Confirmation:
        if cred.device != self.device:
            raise VerificationError(Refusal.BAD_SIGNATURE, "signer is not the credential's device")
        cred.sign_key.verify(self.signature, signing_input(CONFIRM_DOMAIN, self._body()))
        return self

    def encode(self) -> bytes:
        return canonical({**self._body(), "sig": b64e(self.signature)})


def decode_confirmation(data: bytes) -> Confirmation:
    body = parse(data)
    if get(body, "type", str) != "confirm":
        raise VerificationError(Refusal.MALFORMED, "not a confirmation")
    if set(body) != {"type", "channel", "epoch", "commit", "device", "ts", "sig"}:
        raise VerificationError(Refusal.MALFORMED, "unexpected or missing fields")
    try:
        return Confirmation(
            get(body, "channel", str),
            get(body, "epoch", int),
            get(body, "commit", str),
            check_device_id(get(body, "device", str)),
            get(body, "ts", int),
            b64d(get(body, "sig", str)),
        )
    except ValueError as exc:
        raise VerificationError(Refusal.MALFORMED, f"confirmation: {exc}") from None
