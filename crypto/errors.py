"""Exception tree for the whole project, rooted here because ``crypto`` is the lowest layer.

::

    CrossbandError                      root of every error this project raises on purpose
    ├── CryptoError                     crypto/: something about keys, signatures or frames
    │   ├── DecryptError                THE opaque failure of unprotect/open: bad tag, unknown
    │   │                               KID, replay, expired epoch, malformed header — an
    │   │                               attacker learns nothing about which check failed
    │   ├── VerificationError           a signed statement was refused; ``code`` (a Refusal)
    │   │                               says why (operator-facing: a precise, content-free
    │   │                               reason). Every statement decoder raises only this
    │   │                               (``Refusal.MALFORMED``) on any input
    │   ├── KeyFileError                a key file is unreadable, has loose permissions, or the
    │   │                               passphrase is wrong
    │   ├── CounterExhaustedError       a sender ran out of SFrame counters for a key: rekey
    │   └── NotPermittedError           crypto.group: this device may not send in the channel
    ├── ProtocolError                   bridge.errors: the relay protocol was broken (wire Code)
    │   ├── RemoteProtocolError         the peer sent something malformed or unexpected; the
    │   │                               only error the wire decoders (bridge.wire) raise
    │   └── LocalProtocolError          our own caller misused the API
    ├── RelayError                      bridge.errors: the relay refused a request (wire Code)
    ├── StoreError                      bridge.errors: the store-and-forward database failed
    ├── AuditLogError                   bridge.errors: the audit log could not be written
    ├── ConfigError                     bridge.errors: a configuration file is wrong
    ├── AdapterError                    adapters.errors: a native-system adapter failed (its
    │                                   subclasses are drawn there)
    └── CodecError                      adapters.codecs: audio could not be encoded or decoded

Outside the tree: ``ValueError`` for misuse of a crypto primitive by the caller (a negative KID,
a wrong-sized key), and :class:`crypto.strict_json.JsonRefused`, a ``ValueError`` that every
decoder turns into one of the errors above before it leaves the decoder.

``VerificationError.code`` values are stable strings (see ``Refusal``) so that the relay can
put them on the wire and tests can assert on them; messages never contain key material.
"""

from __future__ import annotations

from enum import Enum


class CrossbandError(Exception):
    """Root of every exception Crossband raises on purpose."""


class CryptoError(CrossbandError):
    """Root of the errors raised by :mod:`crypto`."""


class DecryptError(CryptoError):
    """A frame or sealed secret could not be opened. Deliberately says nothing more."""

    def __init__(self) -> None:
        super().__init__("decryption failed")


class Refusal(str, Enum):  # noqa: UP042 - StrEnum would change str() of members
    """Why a signed statement (credential, agreement, commit, …) was refused."""

    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad-signature"
    UNPINNED_ROOT = "unpinned-root"
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    REVOKED = "revoked"
    NOT_DISPATCHER = "not-dispatcher"
    ROLE_NOT_ALLOWED = "role-not-allowed"
    AGENCY_NOT_IN_AGREEMENT = "agency-not-in-agreement"
    AGREEMENT_UNSIGNED = "agreement-unsigned"
    AGREEMENT_MISMATCH = "agreement-mismatch"
    EPOCH_SKIP = "epoch-skip"
    WRONG_PREVIOUS = "wrong-previous-hash"
    WRONG_CHANNEL = "wrong-channel"
    NOT_A_MEMBER = "not-a-member"
    KEY_CONFIRMATION = "key-confirmation"
    UNKNOWN_DEVICE = "unknown-device"
    EXPIRY_BEYOND_VALIDITY = "expiry-beyond-validity"  # outlives agreement, issuer or member
    # Commit policy (crypto.channel): what a genuine dispatcher may not do to a channel.
    ISSUER_NOT_LISTED = "issuer-not-listed"  # the issuer is not in the roster it issues
    NOT_PREVIOUS_DISPATCHER = "not-previous-dispatcher"  # no dispatcher in the previous roster
    AGREEMENT_CHANGED = "agreement-changed"  # another agreement than the chain's
    CHANNEL_RENAMED = "channel-renamed"  # another name than the chain's
    ISSUED_OUT_OF_ORDER = "issued-out-of-order"  # issued before the previous commit
    ISSUED_IN_FUTURE = "issued-in-future"  # issued later than the verifier's now (past skew)


class VerificationError(CryptoError):
    """A credential, agreement, revocation list, commit or signed message was refused."""

    def __init__(self, code: Refusal, detail: str = "") -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{code.value}: {detail}" if detail else code.value)


class KeyFileError(CryptoError):
    """A key file could not be read or written safely."""


class CounterExhaustedError(CryptoError):
    """The sender's SFrame counter space for this key is used up; a new epoch is needed."""
