"""The import contract (``.importlinter``) holds, covers every adapter, and bites.

``lint-imports`` is run from this interpreter's environment, from the repository root, so a
plain ``pytest`` run (and CI) enforces the layers of docs/architecture.md. Three checks:

- the contract holds on the code, and every contract in the file was checked (a contract that
  import-linter silently skipped would otherwise look like a pass);
- every concrete adapter under ``adapters/`` (anything but the interface, the adapter errors
  and the shared codecs) is named in the contracts that keep concrete adapters out of the
  runtime, so a new adapter cannot slip past them;
- each contract breaks when an import that violates it is added to a copy of the tree, so a
  contract that matches nothing (a misspelt module, a too-narrow expression) fails here.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".importlinter"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("crypto", "bridge", "adapters")
# What the runtime may know of ``adapters/``: the adapter interface, the adapter errors and the
# codecs shared with bridge.audio. Every other child of adapters/ is a concrete adapter.
ADAPTER_COMMONS = {"base", "errors", "codecs"}
ADAPTER_CONTRACTS = {
    "gateway-adapter-interface": "forbidden_modules",
    "concrete-adapters-named-only-at-the-top": "protected_modules",
}


def lint_imports(cwd: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    args = [str(LINT_IMPORTS), str(CONFIG), "--no-cache", "--no-logo"]
    for contract in contracts:
        args += ["--contract", contract]
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def contract_sections() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    assert parser.read(CONFIG), f"{CONFIG} is missing"
    return parser


def contract_ids() -> list[str]:
    prefix = "importlinter:contract:"
    return [s[len(prefix) :] for s in contract_sections().sections() if s.startswith(prefix)]


def test_the_import_contract_holds() -> None:
    proc = lint_imports(ROOT)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"lint-imports exited {proc.returncode}:\n{report}"
    summary = re.search(r"Contracts: (\d+) kept, (\d+) broken", report)
    assert summary, f"no summary line in:\n{report}"
    assert (int(summary[1]), int(summary[2])) == (len(contract_ids()), 0), report


def test_every_concrete_adapter_is_named_in_the_contract() -> None:
    children = {p.parent.name for p in (ROOT / "adapters").glob("*/__init__.py")}
    children |= {p.stem for p in (ROOT / "adapters").glob("*.py") if p.stem != "__init__"}
    on_disk = children - ADAPTER_COMMONS
    assert on_disk, "no concrete adapter found"
    sections = contract_sections()
    for contract, option in ADAPTER_CONTRACTS.items():
        listed = {
            m.strip().removeprefix("adapters.")
            for m in sections[f"importlinter:contract:{contract}"][option].split()
        }
        assert listed == on_disk, f"{contract}: {option} lists {listed}, adapters/ has {on_disk}"


# contract id -> (file to add an import to, importing module, imported module)
VIOLATIONS = {
    "layers": ("bridge/floor/control.py", "bridge.floor.control", "bridge.relay.core"),
    "wire-audio-independent": ("bridge/wire/control.py", "bridge.wire.control", "bridge.audio"),
    "crypto-is-the-bottom": ("crypto/keys.py", "crypto.keys", "adapters.rtp.packet"),
    "adapters-import-nothing-from-bridge": (
        "adapters/rtp/packet.py",
        "adapters.rtp.packet",
        "bridge.wire.codes",
    ),
    "runtime-never-imports-demo": (
        "bridge/relay/server.py",
        "bridge.relay.server",
        "bridge.demo.memscan",
    ),
    "gateway-adapter-interface": (
        "bridge/gateway/__init__.py",
        "bridge.gateway",
        "adapters.rtp.packet",
    ),
    "concrete-adapters-named-only-at-the-top": (
        "bridge/endpoint/state.py",
        "bridge.endpoint.state",
        "adapters.rtp.packet",
    ),
}


def test_every_contract_has_a_violation_check() -> None:
    assert sorted(VIOLATIONS) == sorted(contract_ids())


@pytest.mark.parametrize("contract", sorted(VIOLATIONS))
def test_each_contract_breaks_on_a_violating_import(contract: str, tmp_path: Path) -> None:
    path, importer, imported = VIOLATIONS[contract]
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    with open(tmp_path / path, "a") as f:
        f.write(f"\nimport {imported}  # a violation added by tests/test_layers.py\n")
    proc = lint_imports(tmp_path, contract)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 1, f"lint-imports exited {proc.returncode}:\n{report}"
    assert f"{importer} -> {imported}" in report, report
