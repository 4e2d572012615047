"""Private key files: written 0600, optionally sealed under a passphrase.

This is the only module of :mod:`crypto` that touches the file system, and only for the
private keys it is handed. A key file is canonical JSON::

    {"v": 1, "type": "agency-root" | "device" | "relay", "name": ..., "sealed": null |
     {"kdf": "argon2id", "salt", "m", "t", "p"}, "data": base64url}

``data`` is the key material (canonical JSON) or, with a passphrase, its AES-256-GCM encryption
under a key derived by Argon2id (RFC 9106; 64 MiB, 3 passes, 4 lanes: ~0.3 s here) with the
file header as AAD. Files sealed by earlier versions with scrypt (``{"kdf": "scrypt", "salt",
"n", "r", "p"}``, n = 2^15) still open; :func:`open_keyfile` reports them as weak
(:data:`WEAK`) so the CLI can say to re-seal them, which any save does with Argon2id.

Reading refuses rather than guesses: a passphrase given for a file that is not sealed is an
error (the operator believes it is protected); a key file is opened without following a
symbolic link, and refused unless it is a regular file owned by the user reading it that
group and others cannot read (checked on the open file, not on the path).

Composite keys (:mod:`crypto.composite`): an agency root's material is ``{"composite": …}``
(the 64-byte ML-DSA-65 seed || Ed25519 key) instead of ``{"sign": …}``; a device's gains
``"statement"`` (its composite statement key) beside ``sign`` and ``hpke``. Files without
them are the Ed25519-only files of earlier versions and load as before.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .composite import CompositeSigningKey
from .encoding import b64d, b64e, canonical, parse
from .encoding import field as get
from .errors import KeyFileError, VerificationError
from .identity import AgencyRoot, DeviceKeys, check_agency_id
from .keys import HpkePrivateKey, Kem, SigningKey

log = logging.getLogger("crossband.keys")
ARGON2 = {"m": 64 * 1024, "t": 3, "p": 4}  # KiB of memory, passes, lanes
WEAK = "weak-kdf"  # what open_keyfile's caller is told about a legacy scrypt file
_LIMITS = {"m": (8 * 1024, 1024 * 1024), "t": (1, 10), "p": (1, 8)}  # what a file may ask


def _argon2(passphrase: str, salt: bytes, m: int, t: int, p: int) -> bytes:
    kdf = Argon2id(salt=salt, length=32, iterations=t, lanes=p, memory_cost=m)
    return kdf.derive(passphrase.encode("utf-8"))


def _scrypt(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def seal_keyfile(kind: str, name: str, material: dict[str, Any], passphrase: str | None) -> bytes:
    header: dict[str, Any] = {"v": 1, "type": kind, "name": name, "sealed": None}
    data = canonical(material)
    if passphrase == "":
        raise KeyFileError("empty passphrase: give a real one, or none for an unsealed file")
    if passphrase:
        salt = os.urandom(16)
        header["sealed"] = {"kdf": "argon2id", "salt": b64e(salt), **ARGON2}
        nonce = os.urandom(12)
        key = _argon2(passphrase, salt, ARGON2["m"], ARGON2["t"], ARGON2["p"])
        data = nonce + AESGCM(key).encrypt(nonce, data, canonical(header))
    return canonical({**header, "data": b64e(data)})


def _derive(sealed: dict[str, Any], passphrase: str) -> tuple[bytes, bool]:
    """The file's key, and whether its KDF is a weak legacy one."""
    kdf, salt = sealed["kdf"], b64d(sealed["salt"])
    if kdf == "argon2id":
        m, t, p = int(sealed["m"]), int(sealed["t"]), int(sealed["p"])
        for name, value in (("m", m), ("t", t), ("p", p)):
            lo, hi = _LIMITS[name]
            if not lo <= value <= hi:
                raise KeyFileError("key file asks for unreasonable Argon2id parameters")
        return _argon2(passphrase, salt, m, t, p), False
    if kdf == "scrypt":
        n, r, p = int(sealed["n"]), int(sealed["r"]), int(sealed["p"])
        if not (2 <= n <= 1 << 20 and 1 <= r <= 16 and 1 <= p <= 4):
            raise KeyFileError("key file asks for unreasonable scrypt parameters")
        return _scrypt(passphrase, salt, n, r, p), n < 1 << 20
    raise KeyFileError("key file is sealed with an unknown key derivation")


def open_keyfile(
    blob: bytes, passphrase: str | None, notes: list[str] | None = None
) -> tuple[str, str, dict[str, Any]]:
    """Return (type, name, material) or raise KeyFileError; ``notes`` gets :data:`WEAK` for a
    file sealed with a legacy key derivation (it opens; save it again to re-seal it)."""
    try:
        obj = parse(blob)
        header = {k: obj[k] for k in ("v", "type", "name", "sealed")}
        data = b64d(get(obj, "data", str))
    except (VerificationError, KeyError):
        raise KeyFileError("not a Crossband key file")
    sealed = header["sealed"]
    if sealed is None and passphrase:
        raise KeyFileError(
            "key file is not sealed, yet a passphrase was given: it is stored in the clear; "
            "seal it (save it again with the passphrase) or give no passphrase"
        )
    if sealed is not None:
        if not passphrase:
            raise KeyFileError("key file is passphrase-protected: give the passphrase")
        try:
            key, weak = _derive(sealed, passphrase)
            data = AESGCM(key).decrypt(data[:12], data[12:], canonical(header))
        except (InvalidTag, KeyError, TypeError, ValueError, VerificationError):
            raise KeyFileError("wrong passphrase or damaged key file")
        if weak and notes is not None:
            notes.append(WEAK)
    try:
        return str(header["type"]), str(header["name"]), parse(data)
    except VerificationError:
        raise KeyFileError("damaged key file")


def _open(path: str | os.PathLike[str], passphrase: str | None) -> tuple[str, str, dict[str, Any]]:
    notes: list[str] = []
    opened = open_keyfile(read_private(path), passphrase, notes)
    if WEAK in notes:
        log.warning(
            "event=weak-key-file path=%s: sealed with a legacy key derivation (scrypt 2^15); "
            "save it again to re-seal it with Argon2id",
            path,
        )
    return opened


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
    """Read a private key file: opened without following a symbolic link, and refused unless
    the open file is a regular file owned by us that group and others cannot read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise KeyFileError(f"key file {path} is a symbolic link: give the file itself")
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}")
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"key file {path} is not a regular file")
        if st.st_uid != os.geteuid():
            raise KeyFileError(
                f"key file {path} belongs to user {st.st_uid}, not to this user "
                f"({os.geteuid()}): run as its owner, or chown it"
            )
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(
                f"key file {path} is accessible by group/others "
                f"(mode {stat.S_IMODE(st.st_mode):o}); run: chmod 600 {path}"
            )
        return f.read()


def save_root(path: str | os.PathLike[str], root: AgencyRoot, passphrase: str | None) -> None:
    field = "composite" if isinstance(root.key, CompositeSigningKey) else "sign"
    material = {field: b64e(root.key.to_bytes())}
    write_private(path, seal_keyfile("agency-root", root.agency, material, passphrase))


def load_root(path: str | os.PathLike[str], passphrase: str | None) -> AgencyRoot:
    kind, name, material = _open(path, passphrase)
    if kind != "agency-root":
        raise KeyFileError(f"{path} is a {kind} key file, not an agency root")
    try:
        if set(material) == {"composite"}:
            return AgencyRoot(
                check_agency_id(name), CompositeSigningKey(b64d(material["composite"]))
            )
        return AgencyRoot(check_agency_id(name), SigningKey.from_bytes(b64d(material["sign"])))
    except (KeyError, TypeError, ValueError, VerificationError):
        raise KeyFileError(f"{path}: damaged agency root key material")


def save_relay_key(
    path: str | os.PathLike[str], relay_id: str, key: SigningKey, passphrase: str | None
) -> None:
    """A relay's Ed25519 identity key: it signs every welcome so devices can pin the relay."""
    write_private(path, seal_keyfile("relay", relay_id, {"sign": b64e(key.to_bytes())}, passphrase))


def load_relay_key(path: str | os.PathLike[str], passphrase: str | None) -> tuple[str, SigningKey]:
    kind, name, material = _open(path, passphrase)
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
    if keys.statement is not None:
        material["statement"] = b64e(keys.statement.to_bytes())
    write_private(path, seal_keyfile("device", device, material, passphrase))


def load_device(path: str | os.PathLike[str], passphrase: str | None) -> tuple[str, DeviceKeys]:
    kind, name, material = _open(path, passphrase)
    if kind != "device":
        raise KeyFileError(f"{path} is a {kind} key file, not a device key")
    try:
        statement = material.get("statement")
        keys = DeviceKeys(
            SigningKey.from_bytes(b64d(material["sign"])),
            HpkePrivateKey(Kem(material["hpke_kem"]), b64d(material["hpke"])),
            None if statement is None else CompositeSigningKey(b64d(statement)),
        )
    except (KeyError, TypeError, ValueError, VerificationError):
        raise KeyFileError(f"{path}: damaged device key material") from None
    return name, keys
