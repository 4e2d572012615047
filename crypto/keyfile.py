"""Private key files: written 0600, optionally sealed under a passphrase.

This is the only module of :mod:`crypto` that touches the file system, and only for the
private keys it is handed. A key file is canonical JSON::

    {"v": 1, "type": "agency-root" | "device", "name": ..., "sealed": null | {"kdf": "scrypt",
     "salt", "n", "r", "p"}, "data": base64url}

``data`` is the key material (canonical JSON) or, with a passphrase, its AES-256-GCM encryption
under a key derived by scrypt (RFC 7914; n=2^15, r=8, p=1) with the file header as AAD.
Files are created with mode 0600 and a file that group or others can read is refused rather
than trusted.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .encoding import b64d, b64e, canonical, parse
from .encoding import field as get
from .errors import KeyFileError, VerificationError
from .identity import AgencyRoot, DeviceKeys, check_agency_id
from .keys import HpkePrivateKey, Kem, SigningKey

SCRYPT_N = 1 << 15


def _kdf(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def seal_keyfile(kind: str, name: str, material: dict[str, Any], passphrase: str | None) -> bytes:
    header: dict[str, Any] = {"v": 1, "type": kind, "name": name, "sealed": None}
    data = canonical(material)
    if passphrase == "":
        raise KeyFileError("empty passphrase: give a real one, or none for an unsealed file")
    if passphrase:
        salt = os.urandom(16)
        header["sealed"] = {"kdf": "scrypt", "salt": b64e(salt), "n": SCRYPT_N, "r": 8, "p": 1}
        nonce = os.urandom(12)
        key = _kdf(passphrase, salt, SCRYPT_N, 8, 1)
        data = nonce + AESGCM(key).encrypt(nonce, data, canonical(header))
    return canonical({**header, "data": b64e(data)})


def open_keyfile(blob: bytes, passphrase: str | None) -> tuple[str, str, dict[str, Any]]:
    """Return (type, name, material) or raise KeyFileError."""
    try:
        obj = parse(blob)
        header = {k: obj[k] for k in ("v", "type", "name", "sealed")}
        data = b64d(get(obj, "data", str))
    except (VerificationError, KeyError):
        raise KeyFileError("not a Crossband key file")
    sealed = header["sealed"]
    if sealed is not None:
        if not passphrase:
            raise KeyFileError("key file is passphrase-protected: give the passphrase")
        try:
            n, r, p = int(sealed["n"]), int(sealed["r"]), int(sealed["p"])
            if not (2 <= n <= 1 << 20 and 1 <= r <= 16 and 1 <= p <= 4):
                raise KeyFileError("key file asks for unreasonable scrypt parameters")
            key = _kdf(passphrase, b64d(sealed["salt"]), n, r, p)
            data = AESGCM(key).decrypt(data[:12], data[12:], canonical(header))
        except (InvalidTag, KeyError, TypeError, ValueError, VerificationError):
            raise KeyFileError("wrong passphrase or damaged key file")
    try:
        return str(header["type"]), str(header["name"]), parse(data)
    except VerificationError:
        raise KeyFileError("damaged key file")


def write_private(path: str | os.PathLike[str], blob: bytes) -> None:
    """Write ``blob`` to ``path`` with mode 0600 (atomically, never world-readable)."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise KeyFileError(f"refusing to replace {path}: not a regular file")
    tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    # O_EXCL|O_NOFOLLOW: never write key material through a planted file or symlink.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(blob)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)


def read_private(path: str | os.PathLike[str]) -> bytes:
    """Read a private key file, refusing one that group or others may read."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}")
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"key file {path} is accessible by group/others (mode {stat.S_IMODE(st.st_mode):o});"
            " run: chmod 600 " + str(path)
        )
    with open(path, "rb") as f:
        return f.read()


def save_root(path: str | os.PathLike[str], root: AgencyRoot, passphrase: str | None) -> None:
    material = {"sign": b64e(root.key.to_bytes())}
    write_private(path, seal_keyfile("agency-root", root.agency, material, passphrase))


def load_root(path: str | os.PathLike[str], passphrase: str | None) -> AgencyRoot:
    kind, name, material = open_keyfile(read_private(path), passphrase)
    if kind != "agency-root":
        raise KeyFileError(f"{path} is a {kind} key file, not an agency root")
    try:
        return AgencyRoot(check_agency_id(name), SigningKey.from_bytes(b64d(material["sign"])))
    except (KeyError, TypeError, ValueError, VerificationError):
        raise KeyFileError(f"{path}: damaged agency root key material")


def save_relay_key(
    path: str | os.PathLike[str], relay_id: str, key: SigningKey, passphrase: str | None
) -> None:
    """A relay's Ed25519 identity key: it signs every welcome so devices can pin the relay."""
    write_private(path, seal_keyfile("relay", relay_id, {"sign": b64e(key.to_bytes())}, passphrase))


def load_relay_key(path: str | os.PathLike[str], passphrase: str | None) -> tuple[str, SigningKey]:
    kind, name, material = open_keyfile(read_private(path), passphrase)
    if kind != "relay":
        raise KeyFileError(f"{path} is a {kind} key file, not a relay key")
    try:
        return name, SigningKey.from_bytes(b64d(material["sign"]))
    except (KeyError, TypeError, ValueError, VerificationError):
        raise KeyFileError(f"{path}: damaged relay key material")


def save_device(
    path: str | os.PathLike[str], device: str, keys: DeviceKeys, passphrase: str | None
) -> None:
    material = {
        "sign": b64e(keys.sign.to_bytes()),
        "hpke_kem": keys.hpke.kem.value,
        "hpke": b64e(keys.hpke.to_bytes()),
    }
    write_private(path, seal_keyfile("device", device, material, passphrase))


def load_device(path: str | os.PathLike[str], passphrase: str | None) -> tuple[str, DeviceKeys]:
    kind, name, material = open_keyfile(read_private(path), passphrase)
    if kind != "device":
        raise KeyFileError(f"{path} is a {kind} key file, not a device key")
    try:
        keys = DeviceKeys(
            SigningKey.from_bytes(b64d(material["sign"])),
            HpkePrivateKey(Kem(material["hpke_kem"]), b64d(material["hpke"])),
        )
    except (KeyError, TypeError, ValueError, VerificationError):
        raise KeyFileError(f"{path}: damaged device key material") from None
    return name, keys
