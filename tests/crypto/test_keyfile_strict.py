"""Key files refuse rather than guess (issue 10, item 5): Argon2id for new sealed files (legacy
scrypt files still open, reported weak), a passphrase given for an unsealed file is an error,
and a key file is read only if the open file is a regular file, ours, and private — never
through a symbolic link."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from crypto.encoding import b64e, canonical
from crypto.errors import KeyFileError
from crypto.keyfile import ARGON2, WEAK, open_keyfile, read_private, seal_keyfile, write_private

MATERIAL = {"sign": b64e(b"\x01" * 32)}


def test_new_sealed_files_use_argon2id() -> None:
    blob = seal_keyfile("device", "us-cbp/gw-1", MATERIAL, "correct horse")
    sealed = json.loads(blob)["sealed"]
    assert sealed["kdf"] == "argon2id" and {k: sealed[k] for k in ARGON2} == ARGON2
    notes: list[str] = []
    assert open_keyfile(blob, "correct horse", notes)[2] == MATERIAL and notes == []
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        open_keyfile(blob, "wrong horse")


def _legacy_scrypt_file(passphrase: str, n: int = 1 << 15) -> bytes:
    """A file as earlier versions sealed it (scrypt n=2^15, r=8, p=1)."""
    salt, nonce = os.urandom(16), os.urandom(12)
    header = {
        "v": 1,
        "type": "device",
        "name": "us-cbp/gw-1",
        "sealed": {"kdf": "scrypt", "salt": b64e(salt), "n": n, "r": 8, "p": 1},
    }
    key = Scrypt(salt=salt, length=32, n=n, r=8, p=1).derive(passphrase.encode())
    data = nonce + AESGCM(key).encrypt(nonce, canonical(MATERIAL), canonical(header))
    return canonical({**header, "data": b64e(data)})


def test_a_legacy_scrypt_file_still_opens_and_is_reported_weak() -> None:
    notes: list[str] = []
    assert open_keyfile(_legacy_scrypt_file("pw"), "pw", notes)[2] == MATERIAL
    assert notes == [WEAK]


def test_unreasonable_argon2id_parameters_are_refused_before_deriving() -> None:
    blob = json.loads(seal_keyfile("device", "us-cbp/gw-1", MATERIAL, "pw"))
    blob["sealed"]["m"] = 64 * 1024 * 1024  # 64 GiB
    with pytest.raises(KeyFileError, match="unreasonable"):
        open_keyfile(canonical(blob), "pw")


def test_a_passphrase_for_an_unsealed_file_is_an_error() -> None:
    """The operator believes the key is protected: it is stored in the clear. Before, the
    passphrase was silently ignored."""
    blob = seal_keyfile("device", "us-cbp/gw-1", MATERIAL, None)
    assert open_keyfile(blob, None)[2] == MATERIAL
    with pytest.raises(KeyFileError, match="not sealed"):
        open_keyfile(blob, "correct horse")


def test_a_symbolic_link_is_not_followed(tmp_path: Path) -> None:
    real = tmp_path / "real.key"
    write_private(real, seal_keyfile("device", "us-cbp/gw-1", MATERIAL, None))
    link = tmp_path / "link.key"
    link.symlink_to(real)
    assert read_private(real)
    with pytest.raises(KeyFileError, match="symbolic link"):
        read_private(link)


def test_only_a_regular_file_is_read(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.key"
    os.mkfifo(fifo, 0o600)  # opening it used to block until somebody wrote to it
    with pytest.raises(KeyFileError, match="not a regular file"):
        read_private(fifo)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_a_key_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "theirs.key"
    write_private(path, seal_keyfile("device", "us-cbp/gw-1", MATERIAL, None))
    os.chown(path, 65534, 65534)
    with pytest.raises(KeyFileError, match="belongs to user 65534"):
        read_private(path)
