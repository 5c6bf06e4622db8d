"""The one exception type the command line turns into a one-line message, and the hint for a misspelt name."""
from __future__ import annotations

import difflib
from typing import Iterable


class AutonatError(Exception):
    """A problem with the user's input: the message names it and the fix."""


def closest(word: str, known: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The known name ``word`` most likely misspells (difflib's similarity ratio at least ``cutoff``), or None."""
    match = difflib.get_close_matches(str(word), list(known), n=1, cutoff=cutoff)
    return match[0] if match else None
