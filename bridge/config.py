"""Reading YAML configuration files: one mapping, required keys, paths relative to the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bridge.errors import ConfigError


def load_yaml_config(
    path: str | Path, what: str, required: tuple[str, ...], paths: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Load ``path``; refuse it unless it is a mapping with every ``required`` key.

    Keys named in ``paths`` (when present), and every entry of ``revocation_lists``, are turned
    into :class:`Path` objects relative to the file's directory.
    """
    path = Path(path)
    try:
        cfg = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {what} config {path}: {exc}")
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: expected a mapping")
    missing = [k for k in required if cfg.get(k) in (None, "")]
    if missing:
        raise ConfigError(f"{path}: missing {', '.join(repr(k) for k in missing)}")
    base = path.parent

    def rel(value: Any) -> Path:
        p = Path(str(value))
        return p if p.is_absolute() else base / p

    for key in paths:
        if cfg.get(key):
            cfg[key] = rel(cfg[key])
    crls = cfg.get("revocation_lists") or []
    if not isinstance(crls, list):
        raise ConfigError(f"{path}: revocation_lists must be a list")
    cfg["revocation_lists"] = [rel(c) for c in crls]
    return cfg
