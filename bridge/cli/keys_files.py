"""Files and formats shared by the ``crossband keys`` commands (:mod:`bridge.cli.keys`).

- **Passphrases** come only from the environment variable named by ``--passphrase-env``.
- **Private key files** are never overwritten; **public statements** are replaced atomically
  (or written straight into a device such as ``/dev/stdout``).
- **Statements** are read with errors that name the file and what it should have been.
- **Serials**: ``<root>.serials`` beside each root key records what that root has issued, under
  an exclusive lock, so serials are unique per agency (revocation is by serial).
- **Formats**: UTC times, fingerprints in groups of four, validity windows.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import stat
import tempfile
from datetime import UTC, datetime
from typing import Any

from bridge.errors import ConfigError
from crypto.encoding import canonical, parse
from crypto.errors import KeyFileError, VerificationError
from crypto.identity import AgencyRoot, TrustBundle, check_agency_id
from crypto.keyfile import load_root

log = logging.getLogger("bridge.cli.keys")


def passphrase_from_env(var: str | None) -> str | None:
    """The passphrase held in environment variable ``var``, or None if no variable is named."""
    if var is None:
        return None
    value = os.environ.get(var)
    if value is None:
        raise ConfigError(f"environment variable {var} is not set")
    if not value:
        raise ConfigError(f"environment variable {var} is empty")
    return value


def passphrase_for_new_key(var: str | None, path: str) -> str | None:
    passphrase = passphrase_from_env(var)
    if passphrase is None:
        log.warning(
            "writing unencrypted private key file; use --passphrase-env VAR to seal it",
            extra={"path": path},
        )
    return passphrase


def refuse_overwrite(path: str) -> None:
    if os.path.lexists(path):
        raise ConfigError(f"{path} exists; refusing to overwrite a private key (move it away)")


def write_public(path: str, data: bytes) -> None:
    """Write a public statement (readable by all: it holds no secret).

    A regular file is replaced atomically through a fresh temporary file beside it; anything
    else that already exists (``/dev/stdout``, a pipe, ``/dev/null``) is written to directly,
    never replaced.
    """
    if os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode):
        with open(path, "wb") as f:
            f.write(data + b"\n")
        return
    target = os.path.realpath(path)  # through a symlink: replace the file, keep the link
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".crossband-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data + b"\n")
            f.flush()
            os.fchmod(f.fileno(), 0o644)
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_statement(path: str, what: str) -> dict[str, Any]:
    with open(path, "rb") as f:
        data = f.read()
    try:
        return parse(data)
    except VerificationError as exc:
        raise VerificationError(exc.code, f"{path} is not a {what} ({exc.detail})")


def decode(path: str, what: str, decoder: Any) -> Any:
    obj = read_statement(path, what)
    try:
        return decoder(obj)
    except VerificationError as exc:
        raise VerificationError(exc.code, f"{path}: {what}: {exc.detail}")


def load_root_file(path: str, passphrase_env: str | None) -> AgencyRoot:
    try:
        root = load_root(path, passphrase_from_env(passphrase_env))
        check_agency_id(root.agency)
    except (KeyError, TypeError, ValueError, VerificationError):  # damaged but well-formed file
        raise KeyFileError(f"{path}: damaged agency root key file")
    except KeyFileError as exc:
        hint = " with --passphrase-env VAR" if passphrase_env is None else ""
        raise KeyFileError(f"{path}: {exc}{hint if 'passphrase-protected' in str(exc) else ''}")
    return root


def utc(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def grouped(fingerprint: str) -> str:
    """A fingerprint in groups of four, for reading aloud to a partner agency."""
    return " ".join(fingerprint[i : i + 4] for i in range(0, len(fingerprint), 4))


def window(not_before: int, not_after: int, now: float) -> str:
    state = "valid now"
    if now < not_before:
        state = "NOT YET VALID"
    elif now > not_after:
        state = "EXPIRED"
    return f"{utc(not_before)} to {utc(not_after)} ({state})"


def load_bundle(path: str) -> TrustBundle:
    bundle: TrustBundle = decode(path, "trust bundle", lambda o: TrustBundle.decode(canonical(o)))
    return bundle


def reserve_serial(root_path: str, agency: str, requested: int | None) -> int:
    """Record a serial as issued in ``<root>.serials``: the next one, or ``requested``."""
    path = root_path + ".serials"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    with os.fdopen(fd, "r+", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the file is closed
        text = f.read()
        issued: set[int] = set()
        if text.strip():
            try:
                obj = json.loads(text)
                owner, issued = obj["agency"], set(obj["issued"])
                if not all(isinstance(s, int) for s in issued):
                    raise TypeError("serials")
            except (ValueError, KeyError, TypeError):
                raise ConfigError(f"{path} is damaged; it should list issued serials")
            if owner != agency:
                raise ConfigError(f"{path} belongs to agency {owner}, not {agency}")
        serial = requested if requested is not None else max(issued, default=0) + 1
        if serial in issued:
            raise ConfigError(f"serial {serial} was already issued by {agency} (see {path})")
        issued.add(serial)
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"agency": agency, "issued": sorted(issued)}) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return serial
