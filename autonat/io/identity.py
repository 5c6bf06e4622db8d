"""What an output was made from: paths that resolve from anywhere, and inputs checked on resume.

A path recorded inside an output (a checkpoint's tokenizer, a token cache's
tokenizer) is stored relative to that output when both lie under one folder
below the filesystem root, and absolute otherwise, so the output works from
any working directory and keeps working when the folder holding both moves.

A run or search directory records the identity of its inputs (a small JSON
file) on its first run; a later run into the same directory must name the
same inputs, so one history never mixes two experiments.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from autonat.errors import AutonatError
from autonat.io.atomic import write_text


# --------------------------------------------------------------------------- content hashes
def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes as 64 hex digits, read in 1 MiB chunks (weights files are large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- recorded paths
def portable_path(target: str | os.PathLike, base: str | os.PathLike) -> str:
    """``target`` as recorded inside the directory ``base``: relative to it when they share a folder, else absolute."""
    target, base = os.path.abspath(target), os.path.abspath(base)
    try:
        common = os.path.commonpath([target, base])
    except ValueError:  # different drives
        return target
    if os.path.dirname(common) == common:  # only the root in common: another tree
        return target
    return os.path.relpath(target, base)


def resolve_recorded(recorded: str | os.PathLike, base: str | os.PathLike) -> Path | None:
    """Where a recorded path points, or None if nowhere.

    Relative to ``base`` first (how paths are recorded now), then as written:
    absolute, or relative to the working directory (how older outputs
    recorded them).
    """
    recorded = Path(recorded)
    for candidate in (Path(base) / recorded, recorded):
        if candidate.exists():
            return candidate
    return None


def with_portable_path(record: dict, base: str | os.PathLike) -> dict:
    """``record`` with its ``path`` (valid from here) rewritten by :func:`portable_path` for an output at ``base``.

    A path that does not exist from here (a placeholder, an earlier record) is kept as it is.
    """
    path = record.get("path")
    if not path or not Path(path).exists():
        return dict(record)
    return {**record, "path": portable_path(path, base)}


# --------------------------------------------------------------------------- recorded inputs
def _plain(value: dict) -> dict:
    """``value`` as JSON reads it back (tuples become lists), so a record compares equal to itself."""
    return json.loads(json.dumps(value))


def record_identity(file: str | os.PathLike, inputs: dict) -> None:
    """Write ``inputs`` to ``file`` (replacing an earlier record)."""
    write_text(file, json.dumps(_plain(inputs), indent=2) + "\n")


def check_identity(file: str | os.PathLike, inputs: dict, what: str, fix: str, record: bool = True) -> None:
    """Compare ``inputs`` with those recorded in ``file``; record them if there is no record yet.

    Only keys present in both are compared (a record written by an older
    version lacks newer keys). A difference is a one-line
    :class:`AutonatError` naming each differing key, its recorded and its
    new value, and ``fix``.
    """
    file = Path(file)
    if not file.exists():
        if record:
            record_identity(file, inputs)
        return
    try:
        recorded = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise AutonatError(f"{file} is unreadable ({str(exc).splitlines()[0]}); {fix}") from exc
    current = _plain(inputs)
    differs = [f"{key} {recorded[key]!r} now {current[key]!r}"
               for key in sorted(set(recorded) & set(current)) if recorded[key] != current[key]]
    if differs:
        raise AutonatError(f"{what} was started with other inputs ({'; '.join(differs)}); {fix}")
