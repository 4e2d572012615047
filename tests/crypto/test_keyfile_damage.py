"""A damaged key file is a KeyFileError, whatever is wrong inside it (before, a device file whose
material held a non-string key raised VerificationError from the base64 decoder)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from crypto.errors import KeyFileError
from crypto.keyfile import load_device, load_relay_key, load_root, seal_keyfile, write_private

KEY = "A" * 43  # 32 bytes in base64url
LOADERS: dict[str, Callable[[Path, str | None], object]] = {
    "device": load_device,
    "agency-root": load_root,
    "relay": load_relay_key,
}
BAD_SIGN = [{"sign": 5}, {"sign": "AA=="}, {"sign": "A" * 40}, {}]
BAD_HPKE = [
    {"sign": KEY, "hpke_kem": "nope", "hpke": KEY},
    {"sign": KEY, "hpke_kem": "x25519", "hpke": None},
    {"sign": KEY, "hpke_kem": "x25519", "hpke": "AA"},
    {"sign": KEY, "hpke_kem": 7, "hpke": KEY},
]
CASES = [(kind, m) for kind in LOADERS for m in BAD_SIGN] + [("device", m) for m in BAD_HPKE]


@pytest.mark.parametrize(("kind", "material"), CASES)
def test_damaged_material_is_a_key_file_error(
    tmp_path: Path, kind: str, material: dict[str, object]
) -> None:
    path = tmp_path / "x.key"
    write_private(path, seal_keyfile(kind, "us-cbp", material, None))
    with pytest.raises(KeyFileError):
        LOADERS[kind](path, None)


def test_damaged_material_inside_a_sealed_file(tmp_path: Path) -> None:
    path = tmp_path / "x.key"
    write_private(path, seal_keyfile("device", "us-cbp/gw", {"sign": 5}, "pw"))
    with pytest.raises(KeyFileError):
        load_device(path, "pw")
