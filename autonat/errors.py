"""The one exception type the command line turns into a one-line message, and the hints for a misspelt name or
path."""
from __future__ import annotations

import difflib
from itertools import islice
from pathlib import Path
from typing import Iterable


class AutonatError(Exception):
    """A problem with the user's input: the message names it and the fix."""


def closest(word: str, known: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The known name ``word`` most likely misspells (difflib's similarity ratio at least ``cutoff``), or None."""
    match = difflib.get_close_matches(str(word), list(known), n=1, cutoff=cutoff)
    return match[0] if match else None


def misspellings(words: Iterable, known: Iterable[str], cutoff: float = 0.6) -> list[tuple]:
    """``(word, meant)`` for each of ``words`` that :func:`closest` matches to a known name, in order: what a
    message lists as ``word -> meant`` when several words can be wrong."""
    known = list(known)
    return [(word, meant) for word in words if (meant := closest(word, known, cutoff))]


def path_hint(path: str | Path) -> str:
    """`` (did you mean runs/x/strategy.yaml?)`` for a missing ``path`` whose folder holds a close name (a mistyped
    file name or extension), else ""."""
    path = Path(path)
    try:  # a folder of a dataset's million files is not read through for a hint
        names = [p.name for p in islice(path.parent.iterdir(), 10_000)] if path.parent.is_dir() else []
    except OSError:
        return ""
    close = closest(path.name, names, cutoff=0.75)
    return f" (did you mean {path.parent / close}?)" if close else ""
