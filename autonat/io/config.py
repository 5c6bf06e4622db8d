"""Run configuration: YAML files with ``key.sub=value`` overrides, into typed dataclasses.

One YAML file describes a whole recipe (data, tokenizer, generator, masking,
optimiser, training). Values are parsed with YAML's safe loader; nothing in a
config is ever imported or evaluated as code.
"""
from __future__ import annotations

import copy
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from autonat.errors import AutonatError


def read_yaml(path: str | Path, what: str = "config file") -> Any:
    """Parse a YAML file with the safe loader; a missing or malformed file is a clear error."""
    path = Path(path)
    if not path.exists():
        raise AutonatError(f"{what} not found: {path}")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise AutonatError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from exc


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping (a recipe) with the safe loader."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise AutonatError(f"{path} must hold a YAML mapping at the top level")
    return data


def apply_overrides(config: dict, overrides: list[str]) -> dict:
    """Return a copy of ``config`` with ``a.b.c=value`` overrides applied (values parsed as YAML)."""
    config = copy.deepcopy(config)
    for item in overrides:
        if "=" not in item:
            raise AutonatError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        node = config
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise AutonatError(f"override {item!r}: {part} is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return config


def build(cls, data: dict | None, where: str):
    """Instantiate dataclass ``cls`` from ``data``, naming unknown keys clearly."""
    data = dict(data or {})
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise AutonatError(f"unknown key(s) in {where}: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    try:
        return cls(**data)
    except (TypeError, ValueError) as exc:
        raise AutonatError(f"bad {where}: {exc}") from exc


def to_plain(obj: Any) -> Any:
    """Dataclasses, tuples and paths to JSON/YAML-ready builtins."""
    if is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
