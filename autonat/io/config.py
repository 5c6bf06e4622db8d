"""Run configuration: YAML files with ``key.sub=value`` overrides, into typed dataclasses.

One YAML file describes a whole recipe (data, tokenizer, generator, masking,
optimiser, training). Values are parsed with YAML's safe loader; nothing in a
config is ever imported or evaluated as code.

:func:`build` turns a mapping into a dataclass, checking everything a person
can get wrong before any work starts, each as a one-line
:class:`~autonat.errors.AutonatError` that names the key by its dotted path:

* unknown keys, anywhere (with a "did you mean" for misspellings);
* missing required keys (fields without a default; a field's
  ``metadata["missing"]`` says what to write instead);
* types, read from the dataclass annotations: ``int``, ``float`` (ints
  accepted; so is ``1e-3``, which YAML 1.1 reads as text), ``bool``, ``str``,
  ``tuple[float, float]`` / ``tuple[int, ...]`` / ``list[...]`` (from YAML
  lists), nested dataclasses (from mappings) and ``X | None``;
* ranges, which each dataclass checks in ``__post_init__`` with the helpers
  :func:`require_counts`, :func:`require_positive`, :func:`require_nonnegative`
  and :func:`require_fractions`, raising :class:`FieldError`.
"""
from __future__ import annotations

import copy
import json
import re
import types
import typing
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from autonat.errors import AutonatError, closest, path_hint


def read_yaml(path: str | Path, what: str = "config file") -> Any:
    """Parse a YAML file with the safe loader; a missing or malformed file is a clear error."""
    path = Path(path)
    if not path.exists():
        raise AutonatError(f"{what} not found: {path}{path_hint(path)}")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise AutonatError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    except UnicodeDecodeError:  # an .npz, a checkpoint, an image given for a YAML file
        raise AutonatError(f"{path} is not a text file, so it cannot be a {what} (YAML); check the path") from None


def read_json(path: str | Path, fix: str) -> Any:
    """Parse one of the toolkit's own JSON files; a corrupt (truncated, hand-edited) one is a one-line error."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:  # json.JSONDecodeError is a ValueError
        raise AutonatError(f"{path} is corrupt ({str(exc).splitlines()[0]}); {fix}") from None


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping (a recipe) with the safe loader."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise AutonatError(f"{path} must hold a YAML mapping at the top level")
    return data


def apply_overrides(config: dict, overrides: list[str]) -> dict:
    """Return a copy of ``config`` with ``a.b.c=value`` overrides applied (values parsed as YAML).

    Keys are not checked here: the result goes through :func:`build`, which
    refuses unknown sections and keys whether they came from the file or an override.
    """
    config = copy.deepcopy(config)
    for item in overrides:
        if "=" not in item:
            raise AutonatError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        node = config
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if node.get(part) is None:  # a missing or empty (`data:`) section
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                raise AutonatError(f"override {item!r}: {part} is not a section")
        try:
            node[parts[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise AutonatError(f"override {item!r}: the value is not valid YAML ({str(exc).splitlines()[0]})") from exc
    return config


# --------------------------------------------------------------------------- typed building
class FieldError(ValueError):
    """A bad value of one field, raised in ``__post_init__``; :func:`build` prefixes the section's path."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key, self.message = key, message


def build(cls, data: Any, where: str = ""):
    """Instantiate dataclass ``cls`` from the mapping ``data``, checking keys, types and ranges.

    ``where`` is the dotted path of the section (``"optim"``, ``"tokenizer.vqgan"``;
    ``""`` for a whole recipe) used to name keys in errors, e.g.
    ``optim.lr: expected a number, got 'abc'``.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise AutonatError(f"{where or 'the recipe'}: expected a section of key: value lines, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls) if f.init}
    for key in data:
        if key not in known:
            raise AutonatError(_unknown(str(key), sorted(known), where))
    values = {}
    for name, f in known.items():
        if name in data:
            values[name] = _convert(data[name], hints[name], _path(where, name))
        elif f.default is MISSING and f.default_factory is MISSING:
            hint = f.metadata.get("missing", "add it")
            raise AutonatError(f"{_path(where, name)} is missing; {hint}")
    try:
        return cls(**values)
    except FieldError as exc:
        raise AutonatError(f"{_path(where, exc.key)}: {exc.message}") from exc
    except (TypeError, ValueError) as exc:
        raise AutonatError(f"{where or 'recipe'}: {exc}") from exc


def _path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _unknown(key: str, known: list[str], where: str) -> str:
    """``unknown key 'sorce' in data (did you mean 'source'?); known: hflip, image_size, source``."""
    what, place = ("section", "the recipe") if not where else ("key", where)
    close = closest(key, known)
    guess = f" (did you mean {close!r}?)" if close else ""
    return f"unknown {what} {key!r} in {place}{guess}; known: {', '.join(known)}"


_SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")  # YAML 1.1 reads 1e-3 as text


def _convert(value: Any, hint: Any, key: str) -> Any:
    """``value`` checked against the annotation ``hint`` (and converted: lists to tuples, ints to floats)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _convert(value, options[0], key)
        return value
    if is_dataclass(hint):
        return value if isinstance(value, hint) else build(hint, value, key)
    if origin in (tuple, list):
        return _sequence(value, origin, args, key)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, bool):  # `no` in YAML 1.1 is false
            raise AutonatError(f"{key}: expected text, got {value!r} (YAML reads yes/no/on/off as true/false: "
                               f"quote the value)")
    else:
        return value
    raise AutonatError(f"{key}: expected {_expected(hint)}, got {value!r}")


def _sequence(value: Any, origin: type, args: tuple, key: str) -> tuple | list:
    """A YAML list checked element by element against ``tuple[X, ...]``, ``tuple[X, Y]`` or ``list[X]``."""
    hint = origin[args] if args else origin
    if not isinstance(value, (list, tuple)):
        raise AutonatError(f"{key}: expected {_expected(hint)}, got {value!r}")
    if origin is tuple and args and args[-1] is not Ellipsis and len(value) != len(args):
        raise AutonatError(f"{key}: expected {_expected(hint)}, got {len(value)} value(s): {list(value)!r}")
    if not args:
        element_hints = (Any,) * len(value)
    elif origin is list or args[-1] is Ellipsis:
        element_hints = args[:1] * len(value)
    else:
        element_hints = args
    items = [_convert(v, h, f"{key}[{i}]") for i, (v, h) in enumerate(zip(value, element_hints))]
    return tuple(items) if origin is tuple else items


_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "text"}


def _expected(hint: Any) -> str:
    """The words for a type in an error: ``a number``, ``a list of 2 numbers``, ``a list of integers``."""
    if hint in _NAMES:
        return _NAMES[hint]
    args = typing.get_args(hint)
    plural = {int: "integers", float: "numbers", bool: "true/false values", str: "texts"}
    if args and args[-1] is Ellipsis or typing.get_origin(hint) is list:
        return f"a list of {plural.get(args[0], 'values')}" if args else "a list"
    if args and len(set(args)) == 1:
        return f"a list of {len(args)} {plural.get(args[0], 'values')}"
    return f"a list of {len(args)} values" if args else "a list"


# --------------------------------------------------------------------------- range checks for __post_init__
def _check(obj: Any, names: tuple[str, ...], ok, words: str) -> None:
    for name in names:
        value = getattr(obj, name)
        for v in value if isinstance(value, (tuple, list)) else (value,):
            if v is not None and not ok(v):
                raise FieldError(name, f"must be {words}, got {value!r}")


def require_counts(obj: Any, *names: str) -> None:
    """Each named field (if not None) is an integer >= 1."""
    _check(obj, names, lambda v: v >= 1, ">= 1")


def require_positive(obj: Any, *names: str) -> None:
    """Each named field (if not None) is > 0 (and finite)."""
    _check(obj, names, lambda v: 0 < v < float("inf"), "positive")


def require_nonnegative(obj: Any, *names: str) -> None:
    """Each named field (if not None) is >= 0 (and finite)."""
    _check(obj, names, lambda v: 0 <= v < float("inf"), ">= 0")


def require_fractions(obj: Any, *names: str) -> None:
    """Each named field, or each element of a named tuple, lies in [0, 1)."""
    _check(obj, names, lambda v: 0 <= v < 1, "in [0, 1)")


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
