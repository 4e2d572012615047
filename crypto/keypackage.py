"""Key packages: short-lived HPKE keys a device publishes for forward secrecy (DESIGN §4a).

A device's credential names one static HPKE key for its whole life; whoever later takes the key
file opens every epoch ever sealed to it. Instead, a device publishes **key packages** — fresh
HPKE keys valid for a short time (at most :data:`MAX_LIFETIME`), each signed with the device's
credential key — and a dispatcher seals each epoch secret to the member's newest valid package
(:func:`newest`, :func:`seal_to_newest`). The device opens it with the package's private half
and then erases that half (:meth:`PackageKeys.erase`): a key file captured afterwards holds the
static keys only, which open no epoch sealed to a package. A package body::

    {"v": 1, "device", "cred": credential fingerprint, "seq", "hpke_kem", "hpke_key",
     "not_before", "not_after"}

signed under domain ``crossband/v1/keypackage`` with the credential's Ed25519 ``sign_key``:
a package lives for hours, so what must hold is that it cannot be forged *before it expires*
(a later break of Ed25519 unseals nothing: the sealed secret is protected by the package's KEM,
hybrid ML-KEM-768 + X25519 under a hybrid-minimum agreement, :meth:`Agreement.check_kem`).
``seq`` orders a device's packages; the newest is the valid one with the highest ``seq``.

A secret sealed to a package is ``MAGIC || ref || enc || ct`` where ``ref`` is the SHA-256 of
the package's encoding, and the HPKE ``info`` is the commit's (:func:`~crypto.commit.seal_info`)
followed by ``ref``: the member knows which private half to use, and a secret sealed to one
package does not open as another's.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .channel import CommitBundle
from .commit import seal_info
from .encoding import b64d, b64e, canonical, parse, signing_input
from .encoding import field as get
from .errors import DecryptError, Refusal, VerificationError
from .identity import Credential, DeviceKeys, check_device_id, check_window
from .keys import HpkePrivateKey, HpkePublicKey, Kem

KEYPACKAGE_DOMAIN = "crossband/v1/keypackage"
MAX_LIFETIME = 24 * 3600
DEFAULT_LIFETIME = 3600
MAGIC = b"cbkp"
REF_LEN = 32


@dataclass(frozen=True)
class KeyPackage:
    device: str
    cred: str  # fingerprint of the credential whose key signed it
    seq: int
    hpke_key: HpkePublicKey
    not_before: int
    not_after: int
    signature: bytes = field(repr=False)

    def body(self) -> dict[str, Any]:
        return {
            "v": 1,
            "device": self.device,
            "cred": self.cred,
            "seq": self.seq,
            "hpke_kem": self.hpke_key.kem.value,
            "hpke_key": b64e(self.hpke_key.raw),
            "not_before": self.not_before,
            "not_after": self.not_after,
        }

    def encode(self) -> bytes:
        return canonical({"body": self.body(), "sig": b64e(self.signature)})

    @cached_property
    def ref(self) -> bytes:
        return hashlib.sha256(self.encode()).digest()

    @classmethod
    def decode(cls, data: bytes) -> KeyPackage:
        obj = parse(data)
        body = get(obj, "body", dict)
        if get(body, "v", int) != 1:
            raise VerificationError(Refusal.MALFORMED, "unknown key package version")
        cred = get(body, "cred", str)
        if len(cred) != 64 or cred.strip("0123456789abcdef"):
            raise VerificationError(Refusal.MALFORMED, "key package credential fingerprint")
        try:
            kem = Kem(get(body, "hpke_kem", str))
        except ValueError:
            raise VerificationError(Refusal.MALFORMED, "unknown HPKE KEM") from None
        seq = get(body, "seq", int)
        if seq < 0:
            raise VerificationError(Refusal.MALFORMED, "negative key package seq")
        return cls(
            device=check_device_id(get(body, "device", str)),
            cred=cred,
            seq=seq,
            hpke_key=HpkePublicKey(kem, b64d(get(body, "hpke_key", str))),
            not_before=get(body, "not_before", int),
            not_after=get(body, "not_after", int),
            signature=b64d(get(obj, "sig", str)),
        )


def create_key_package(
    cred: Credential,
    keys: DeviceKeys,
    seq: int,
    now: int,
    *,
    lifetime: int = DEFAULT_LIFETIME,
    kem: Kem | None = None,
) -> tuple[KeyPackage, HpkePrivateKey]:
    """A fresh package (of the credential's KEM unless told) and its private half."""
    if not 0 < lifetime <= MAX_LIFETIME:
        raise ValueError(f"key package lifetime must be 1..{MAX_LIFETIME} s")
    private = HpkePrivateKey.generate(kem or cred.hpke_key.kem)
    unsigned = KeyPackage(
        cred.device, cred.fingerprint, seq, private.public, now, now + lifetime, b""
    )
    sig = keys.sign.sign(signing_input(KEYPACKAGE_DOMAIN, unsigned.body()))
    obj = {"body": unsigned.body(), "sig": b64e(sig)}
    return KeyPackage.decode(canonical(obj)), private


def verify_key_package(kp: KeyPackage, cred: Credential, now: float) -> KeyPackage:
    """Check ``kp`` against its device's (already verified) credential at ``now``."""
    if kp.device != cred.device or not hmac.compare_digest(kp.cred, cred.fingerprint):
        raise VerificationError(Refusal.UNKNOWN_DEVICE, f"key package not of {cred.device}")
    cred.sign_key.verify(kp.signature, signing_input(KEYPACKAGE_DOMAIN, kp.body()))
    if kp.not_after - kp.not_before > MAX_LIFETIME:
        raise VerificationError(Refusal.MALFORMED, f"key package lives over {MAX_LIFETIME} s")
    check_window(kp.not_before, kp.not_after, now, f"key package {kp.seq} of {kp.device}")
    return kp


def newest(packages: list[KeyPackage], cred: Credential, now: float) -> KeyPackage | None:
    """The valid package of ``cred``'s device with the highest ``seq``, or None."""
    best: KeyPackage | None = None
    for kp in packages:
        try:
            verify_key_package(kp, cred, now)
        except VerificationError:
            continue
        if best is None or kp.seq > best.seq:
            best = kp
    return best


def _info(channel: str, epoch: int, commit_hash: str, ref: bytes) -> bytes:
    return seal_info(channel, epoch, commit_hash) + ref


def seal_to_package(
    kp: KeyPackage, secret: bytes, channel: str, epoch: int, commit_hash: str
) -> bytes:
    """The epoch secret sealed to ``kp`` (a verified package): ``MAGIC || ref || enc || ct``."""
    return MAGIC + kp.ref + kp.hpke_key.seal(secret, _info(channel, epoch, commit_hash, kp.ref))


def seal_to_newest(
    bundle: CommitBundle, secret: bytes, packages: dict[str, list[KeyPackage]], now: float
) -> CommitBundle:
    """``bundle`` (from :func:`~crypto.channel.create_commit`, with its ``secret``) with the
    secret of every member that has a valid package sealed to its newest one instead of its
    static key; a package weaker than the agreement's minimum KEM is refused like a weak
    credential (:meth:`Agreement.check_kem`). Members without a package keep the static seal."""
    c = bundle.commit
    sealed = dict(bundle.sealed)
    for device in sealed:
        kp = newest(packages.get(device, []), bundle.credentials[device], now)
        if kp is None:
            continue
        bundle.agreement.check_kem(device, kp.hpke_key.kem)
        sealed[device] = seal_to_package(kp, secret, c.channel, c.epoch, c.hash)
    return CommitBundle(c, bundle.agreement, bundle.credentials, sealed)


def is_package_sealed(sealed: bytes) -> bool:
    return sealed[: len(MAGIC)] == MAGIC and len(sealed) > len(MAGIC) + REF_LEN


class PackageKeys:
    """A device's private halves of the packages it published, by ref (sans-IO, in memory).

    :meth:`open` opens a secret sealed to one of them without changing anything (a commit may
    still be refused); :meth:`erase` deletes that half once the epoch is installed, and
    :meth:`expire` those whose package is past ``not_after``."""

    def __init__(self) -> None:
        self._keys: dict[bytes, tuple[HpkePrivateKey, int]] = {}

    def add(self, kp: KeyPackage, private: HpkePrivateKey) -> None:
        if private.public != kp.hpke_key:
            raise ValueError("private half does not match the package")
        self._keys[kp.ref] = (private, kp.not_after)

    def __len__(self) -> int:
        return len(self._keys)

    def open(
        self, sealed: bytes, channel: str, epoch: int, commit_hash: str
    ) -> tuple[bytes, bytes]:
        """(ref, epoch secret); DecryptError if it is not sealed to a package we still hold."""
        if not is_package_sealed(sealed):
            raise DecryptError()
        ref = sealed[len(MAGIC) : len(MAGIC) + REF_LEN]
        held = self._keys.get(ref)
        if held is None:
            raise DecryptError()
        body = sealed[len(MAGIC) + REF_LEN :]
        return ref, held[0].open(body, _info(channel, epoch, commit_hash, ref))

    def erase(self, ref: bytes) -> None:
        self._keys.pop(ref, None)

    def expire(self, now: float) -> int:
        gone = [ref for ref, (_, not_after) in self._keys.items() if now > not_after]
        for ref in gone:
            del self._keys[ref]
        return len(gone)
