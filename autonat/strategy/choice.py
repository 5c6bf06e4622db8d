"""The strategy a command runs, from the values of ``--strategy``, ``--schedule``, ``--steps`` and ``--cfg``."""
from __future__ import annotations

from autonat.errors import AutonatError
from autonat.strategy.core import Strategy
from autonat.strategy.files import DEFAULT_STEPS, check_steps, load_strategy
from autonat.strategy.zoo import build_strategy


def choose_strategy(path: str | None, schedule: str | None, steps: int | None, cfg: float | None,
                    default_schedule: str = "cosine") -> Strategy:
    """A strategy file (``path``), else the named ``schedule`` (``default_schedule`` when None) with ``steps`` steps.

    ``steps`` None means the file's own T, or :data:`DEFAULT_STEPS` for a named
    schedule; an explicit ``steps`` that disagrees with a file is an error.
    ``cfg`` replaces every step's guidance scale by one constant.
    """
    if path and schedule:
        raise AutonatError(f"give --strategy {path} or --schedule {schedule}, not both")
    if path:
        strategy = check_steps(load_strategy(path), steps, path)
    else:
        strategy = build_strategy(schedule or default_schedule, DEFAULT_STEPS if steps is None else steps)
    return strategy if cfg is None else with_constant_cfg(strategy, cfg)


def with_constant_cfg(strategy: Strategy, cfg: float) -> Strategy:
    """``strategy`` with the guidance scale ``cfg`` at every step."""
    return Strategy.create(strategy.mask_ratio, strategy.remask_temp, strategy.sample_temp, [cfg] * strategy.steps)
