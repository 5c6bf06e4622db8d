"""Strategy files: our YAML and the official AutoNAT files, read and written."""
from __future__ import annotations

from pathlib import Path

import yaml

from autonat.errors import AutonatError
from autonat.io.atomic import write_text
from autonat.strategy.core import Strategy

DEFAULT_STEPS = 8  # T of a named schedule when neither --steps nor a strategy file says


# --------------------------------------------------------------------------- files
def load_strategy(path: str | Path) -> Strategy:
    """Read a strategy YAML: ours or an official AutoNAT strategy file."""
    from autonat.io.config import read_yaml

    path = Path(path)
    data = read_yaml(path, "strategy file")
    try:
        return Strategy.from_dict(data, where=str(path))
    except AutonatError as exc:
        msg = str(exc)
        raise AutonatError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from exc


def save_strategy(strategy: Strategy, path: str | Path, official: bool = False) -> None:
    """Write ``strategy`` as YAML atomically; ``official=True`` uses AutoNAT's key names."""
    strategy.validate()
    write_text(path, yaml.safe_dump(strategy.to_dict(official), sort_keys=False))


def check_steps(strategy: Strategy, requested_steps: int | None, source: str) -> Strategy:
    """``strategy`` (read from ``source``) when ``--steps`` was not given or agrees with it, else an error.

    A strategy file fixes T; an explicit ``--steps`` that says otherwise must not be dropped silently.
    """
    if requested_steps is not None and requested_steps != strategy.steps:
        raise AutonatError(f"{source} has {strategy.steps} steps but --steps is {requested_steps}; "
                           f"drop --steps or give a strategy of {requested_steps} steps")
    return strategy
