"""Adapters import nothing from ``bridge`` (checked on the source, independently of import-linter).

Every ``import`` and ``from … import`` in every module under ``adapters/`` — including those
inside functions and ``TYPE_CHECKING`` blocks, which a runtime check would miss — must not
name ``bridge`` or a module under it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ADAPTERS = Path(__file__).resolve().parents[2] / "adapters"


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def bridge_imports(root: Path) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, module in imported_modules(tree):
            if module == "bridge" or module.startswith("bridge."):
                bad.append(f"{path.relative_to(root.parent)}:{line} imports {module}")
    return bad


def test_adapters_import_nothing_from_bridge() -> None:
    assert len(list(ADAPTERS.rglob("*.py"))) > 10  # the walk sees the package
    assert bridge_imports(ADAPTERS) == []


def test_the_check_sees_every_form_of_import(tmp_path: Path) -> None:
    pkg = tmp_path / "adapters"
    (pkg / "x").mkdir(parents=True)
    (pkg / "ok.py").write_text("import numpy\nfrom adapters.base import Pcm\nfrom . import ok\n")
    (pkg / "x" / "a.py").write_text("from bridge.audio import mixer\n")
    (pkg / "x" / "b.py").write_text("def f():\n    import bridge.errors\n")
    (pkg / "x" / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bridge import gateway\n"
    )
    assert bridge_imports(pkg) == [
        "adapters/x/a.py:1 imports bridge.audio",
        "adapters/x/b.py:2 imports bridge.errors",
        "adapters/x/c.py:3 imports bridge",
    ]
