"""Reading a YAML configuration file into a typed, validated settings object.

Every failure is one :class:`~bridge.errors.ConfigError` on one line::

    relay.yaml: limits.control_rate: must be greater than 0 (got -1)
    endpoint.yaml: relay_kye: unknown setting
    relay.yaml: cannot read the file: No such file or directory

naming the file, the setting as a dotted path (``revocation_lists[1]`` for a list entry) and
the problem. The models (:mod:`bridge.config.relay`, :mod:`bridge.config.endpoint`) derive from
:class:`Settings`: unknown keys are refused, values are checked strictly (``port: '8443'`` is a
string, not a port), and :data:`ConfigPath` values are resolved relative to the file's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationError, ValidationInfo

from bridge.errors import ConfigError

__all__ = [
    "ConfigPath",
    "SettingProblem",
    "Settings",
    "config_error",
    "parse_settings",
    "read_yaml",
]

S = TypeVar("S", bound="Settings")
_SHOWN = 40  # characters of an offending value quoted back to the operator
_NOT_SHOWN = frozenset({"passphrase_env"})  # a passphrase typed here must not reach any log
MAX_VALUES = 100_000  # values in one document (YAML aliases can make a small file huge)


class Settings(BaseModel):
    """Base of every settings model: frozen, strict, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SettingProblem(Exception):
    """Raised by a model's cross-field check: ``setting`` is the dotted path to blame.

    Not a ``ValueError``, so pydantic lets it through and :func:`parse_settings` reports the
    setting it names rather than the section that holds it."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem


def _resolve(value: Any, info: ValidationInfo) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a file path (a non-empty string)")
    if "\0" in value:
        raise ValueError("a file path cannot contain a NUL character")
    path = Path(value)
    base = (info.context or {}).get("base")
    return path if path.is_absolute() or base is None else Path(base) / path


ConfigPath = Annotated[Path, PlainValidator(_resolve)]
"""A file named in a config file: a string, resolved relative to that file's folder."""


def config_error(file: str | Path, setting: str | None, problem: str) -> ConfigError:
    """The one-line error ``FILE: SETTING: PROBLEM`` (no setting: ``FILE: PROBLEM``)."""
    text = f"{file}: {setting}: {problem}" if setting else f"{file}: {problem}"
    return ConfigError(" ".join(text.split("\n")).replace("\r", " "))


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is refused (PyYAML
    would keep the last one silently: an operator's earlier line would not count)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults`: keys given beside it override the merged ones
            key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            try:
                again = key in seen
            except TypeError:
                continue  # unhashable: the constructor below refuses it
            if again:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {_show(key)} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml(path: str | Path) -> Any:
    """The parsed YAML document of ``path``, or a one-line :class:`ConfigError`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise config_error(path, None, f"cannot read the file: {exc.strerror or exc}") from None
    except ValueError:  # UnicodeDecodeError
        raise config_error(path, None, "cannot read the file: not UTF-8 text") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise config_error(path, None, f"not valid YAML{where}: {exc.problem}") from None
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
        # ValueError: PyYAML builds dates such as 2026-13-45 and fails on them
        raise config_error(path, None, f"not valid YAML: {type(exc).__name__}") from None


def parse_settings(model: type[S], data: Any, file: str | Path) -> S:
    """Validate ``data`` (a parsed document) as ``model``; paths relative to ``file``."""
    if data is None:
        raise config_error(file, None, "the file is empty (expected a mapping of settings)")
    if not isinstance(data, dict):
        raise config_error(file, None, f"expected a mapping of settings, got {_kind(data)}")
    _check_names(data, file)
    try:
        return model.model_validate(data, context={"base": Path(file).parent})
    except SettingProblem as exc:
        raise config_error(file, exc.setting, exc.problem) from None
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        loc = first["loc"][:-1] if first["type"] == "invalid_key" else first["loc"]
        raise config_error(file, _dotted(loc), _problem(first, loc) + more) from None
    except RecursionError:
        raise config_error(file, None, "settings nested too deeply") from None


def _check_names(data: dict[Any, Any], file: str | Path) -> None:
    """Every key at every depth is a setting name (a string): ``{1: x}`` or ``? [a]`` is not.

    Checked here once for the whole document, so the loaders of sections (the RTP adapter's)
    see string keys only. Iterative: a deeply nested document cannot exhaust the stack."""
    stack: list[tuple[tuple[int | str, ...], Any]] = [((), data)]
    seen = 0
    while stack:
        loc, node = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise config_error(file, None, f"more than {MAX_VALUES} values: not a settings file")
        if isinstance(node, list):
            stack.extend(((*loc, i), item) for i, item in enumerate(node))
        elif isinstance(node, dict):
            for key, item in node.items():
                if not isinstance(key, str):
                    problem = f"setting names must be strings (got {_show(key)})"
                    raise config_error(file, _dotted(loc), problem)
                stack.append(((*loc, key), item))


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = part if part.isidentifier() else repr(part)[:_SHOWN]
            out += f".{name}" if out else name
    return out


def _problem(error: Any, loc: tuple[int | str, ...]) -> str:
    kind, msg = error["type"], str(error["msg"])
    if kind == "extra_forbidden":
        return "unknown setting"
    if kind == "missing":
        return "required setting is missing"
    if kind == "invalid_key":
        return f"setting names must be strings (got {_show(error['input'])})"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping, got {_kind(error['input'])}"
    if kind == "list_type":
        return f"must be a list, got {_kind(error['input'])}"
    if msg.startswith("Value error, "):
        msg = msg.removeprefix("Value error, ")
    elif msg.startswith("Input should be "):
        msg = "must be " + msg.removeprefix("Input should be ")
    if any(part in _NOT_SHOWN for part in loc):
        return msg
    return f"{msg} (got {_show(error['input'])})"


def _kind(value: Any) -> str:
    names = {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
    }
    if value is None:
        return "nothing (null)"
    return names.get(type(value), f"a {type(value).__name__}")


def _show(value: Any) -> str:
    if isinstance(value, dict | list):
        return _kind(value)
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
