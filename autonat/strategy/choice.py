"""The strategy a command runs, from the values of ``--strategy``, ``--schedule``, ``--steps`` and ``--cfg``."""
from __future__ import annotations

from pathlib import Path

from autonat.errors import AutonatError
from autonat.strategy.core import Strategy
from autonat.strategy.files import DEFAULT_STEPS, check_steps, load_strategy
from autonat.strategy.zoo import BUILDERS, build_strategy, name_hint


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


def is_schedule_name(source: str, flag: str = "") -> bool:
    """Whether ``source`` names a zoo schedule (True) or a strategy file (False): a YAML name or an existing
    path is a file; anything else must be a zoo name, else the error (naming the option ``flag``) lists them."""
    path = Path(source)
    if path.suffix.lower() in (".yaml", ".yml") or path.exists():
        return False
    if source in BUILDERS:
        return True
    raise AutonatError(f"{flag + ' ' if flag else ''}{source!r} is neither a strategy file nor a named schedule"
                       f"{name_hint(source)}")


def strategy_by_name(name: str, steps: int, flag: str) -> Strategy:
    """The zoo schedule ``name`` built for ``steps`` steps, else the strategy file ``name``, which must have
    ``steps`` steps (``flag`` names the option that gave it in the error)."""
    strategy = build_strategy(name, steps) if is_schedule_name(name, flag) else load_strategy(name)
    if strategy.steps != steps:
        raise AutonatError(f"{flag} {name} has {strategy.steps} steps, not {steps}; give a strategy of {steps} steps "
                           "or a zoo name")
    return strategy


def with_constant_cfg(strategy: Strategy, cfg: float) -> Strategy:
    """``strategy`` with the guidance scale ``cfg`` at every step."""
    return Strategy.create(strategy.mask_ratio, strategy.remask_temp, strategy.sample_temp, [cfg] * strategy.steps,
                           strategy.cfg_reuse, strategy.deep_reuse)


def with_reuse_steps(strategy: Strategy, cfg_reuse: list[int] | None, deep_reuse: list[int] | None) -> Strategy:
    """``strategy`` with the reuse schedules marking the listed steps (``--cfg-reuse``, ``--deep-reuse``).

    ``None`` keeps the strategy's own schedule; an empty list turns it off.
    """
    return strategy.with_reuse(*(None if steps is None else _step_flags(steps, strategy.steps, flag)
                                 for steps, flag in ((cfg_reuse, "--cfg-reuse"), (deep_reuse, "--deep-reuse"))))


def _step_flags(steps: list[int], count: int, flag: str) -> list[int]:
    """0/1 per step: 1 at the listed steps."""
    bad = [s for s in steps if not 1 <= s < count]
    if bad:
        raise AutonatError(f"{flag} {' '.join(map(str, bad))}: only steps 1..{count - 1} of this strategy can "
                           "reuse an earlier step's work; give steps in that range")
    return [int(t in steps) for t in range(count)] if steps else []
