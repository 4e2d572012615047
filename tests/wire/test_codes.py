"""Every wire code is a member of ``Code``, and the runtime passes members, not bare strings.

The check reads the source of ``bridge/`` (ast, no import): a string literal as the code of a
``RemoteProtocolError`` / ``LocalProtocolError`` / ``ProtocolError`` / ``RelayError``, of an
``error(...)`` message or of ``code=`` is refused, whether or not it names a member.
"""

from __future__ import annotations

import ast
from pathlib import Path

from bridge.wire import control as p
from bridge.wire.codes import Code

ROOT = Path(__file__).resolve().parents[2] / "bridge"
ERRORS = {"RemoteProtocolError", "LocalProtocolError", "ProtocolError", "RelayError"}
WIRE_MODULES = {"p", "control"}  # ``p.error(...)``, ``control.error(...)``; not ``log.error``


def _is_coded(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in ERRORS or func.id == "error"
    if isinstance(func, ast.Attribute):
        if func.attr in ERRORS:
            return True
        return (
            func.attr == "error"
            and isinstance(func.value, ast.Name)
            and (func.value.id in WIRE_MODULES)
        )
    return False


def bare_codes(source: str) -> list[tuple[int, str]]:
    """(line, literal) for every string literal passed as a wire code in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        candidates = [node.args[0]] if _is_coded(node.func) and node.args else []
        candidates += [k.value for k in node.keywords if k.arg == "code"]
        for arg in candidates:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append((node.lineno, arg.value))
    return sorted(found)


def test_codes_are_unique_kebab_case_strings() -> None:
    values = [c.value for c in Code]
    assert len(set(values)) == len(values)
    assert all(v == v.lower() and " " not in v and "_" not in v for v in values)
    assert p.Codes is Code


def test_the_check_finds_bare_strings() -> None:
    src = 'raise RelayError("auth-failed")\nws.send(p.error("malformed"))\nf(code="x")\n'
    assert [v for _, v in bare_codes(src)] == ["auth-failed", "malformed", "x"]
    fine = 'raise RelayError(Code.AUTH_FAILED, "detail")\nlog.error("event=%s", 1)\n'
    assert bare_codes(fine) == []


def test_runtime_uses_code_members() -> None:
    offenders = [
        f"{path.relative_to(ROOT.parent)}:{line}: {value!r}"
        for path in sorted(ROOT.rglob("*.py"))
        for line, value in bare_codes(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, "use bridge.wire.codes.Code members:\n" + "\n".join(offenders)
