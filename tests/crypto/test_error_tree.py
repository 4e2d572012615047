"""The exception tree drawn in crypto/errors.py is the one the code has: every edge drawn is a
real subclass relation, and every error class of crypto/ and bridge/errors.py is drawn."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import adapters.codecs
import adapters.errors
import bridge.errors
import crypto
import crypto.errors
from crypto.errors import CrossbandError

BRANCH = re.compile(r"((?:│   |    )*)[├└]── (\w+)")


def drawn_edges() -> dict[str, str | None]:
    """class name -> parent name, read from the drawing in the docstring."""
    doc = crypto.errors.__doc__ or ""
    block = doc.split("::", 1)[1].split("\n\n", 2)[1]
    parents: dict[str, str | None] = {}
    stack: list[str] = []
    for line in block.splitlines():
        body = line[4:]
        if body[:1].isalpha():  # the root
            depth, name = 0, body.split()[0]
        elif (m := BRANCH.match(body)) is not None:
            depth, name = len(m.group(1)) // 4 + 1, m.group(2)
        else:
            continue  # a continuation line of a description
        del stack[depth:]
        parents[name] = stack[-1] if stack else None
        stack.append(name)
    return parents


def known_classes() -> dict[str, type]:
    modules = [bridge.errors, adapters.errors, adapters.codecs]
    modules += [
        importlib.import_module(f"crypto.{m.name}") for m in pkgutil.iter_modules(crypto.__path__)
    ]
    found: dict[str, type] = {}
    for module in modules:
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, CrossbandError):
                found[name] = obj
    return found


def test_the_drawing_is_read() -> None:
    edges = drawn_edges()
    assert edges["CrossbandError"] is None
    assert edges["DecryptError"] == "CryptoError"
    assert edges["RemoteProtocolError"] == "ProtocolError"
    assert edges["ConfigError"] == "CrossbandError"


def test_every_drawn_edge_is_a_subclass() -> None:
    classes = known_classes()
    for name, parent in drawn_edges().items():
        assert name in classes, f"{name} is drawn but does not exist"
        if parent is not None:
            assert classes[name].__bases__[0] is classes[parent], f"{name} is not a {parent}"


def test_every_error_of_crypto_and_bridge_errors_is_drawn() -> None:
    edges = drawn_edges()
    for name, cls in known_classes().items():
        if cls.__module__.startswith("crypto") or cls.__module__ == "bridge.errors":
            assert name in edges, f"{cls.__module__}.{name} is missing from crypto/errors.py"
