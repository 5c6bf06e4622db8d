"""The generation strategy: four per-step schedule vectors for T-step parallel decoding."""
from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass
from typing import Callable

import numpy as np

from autonat.errors import AutonatError, misspellings

OFFICIAL_KEYS = {
    "manual_ratios": "mask_ratio",
    "manual_temp": "remask_temp",
    "manual_samp_temp": "sample_temp",
    "manual_cfg": "cfg_scale",
}
FIELDS = ("mask_ratio", "remask_temp", "sample_temp", "cfg_scale")
REUSE_FIELDS = ("cfg_reuse", "deep_reuse")  # optional per-step 0/1 schedules of work reuse (absent: off)
KNOWN_KEYS = (*FIELDS, *REUSE_FIELDS, "steps")  # what :meth:`Strategy.to_dict` writes; any other key is an error


@dataclass(frozen=True)
class Strategy:
    """Four per-step schedule vectors; construct through :meth:`create` to validate.

    Two optional per-step 0/1 vectors let the sampler reuse work of an earlier
    step (see :mod:`autonat.sampling.reuse`); ``None`` (the default, and a file
    without them) means every step computes everything:

    * ``cfg_reuse[t] = 1``: a guided step runs only the conditional pass and
      takes the guidance residual ``cond - uncond`` from the last step that
      computed both;
    * ``deep_reuse[t] = 1``: every pass of the step recomputes only the
      shallow blocks at both ends of the U-ViT and takes the deep features
      from the last step that computed them in full.

    Step 0 has nothing to reuse, so both vectors must hold 0 there.
    """

    mask_ratio: tuple[float, ...]
    remask_temp: tuple[float, ...]
    sample_temp: tuple[float, ...]
    cfg_scale: tuple[float, ...]
    cfg_reuse: tuple[int, ...] | None = None
    deep_reuse: tuple[int, ...] | None = None

    @classmethod
    def create(cls, mask_ratio, remask_temp, sample_temp, cfg_scale, cfg_reuse=None, deep_reuse=None) -> Strategy:
        s = cls(*(tuple(float(v) for v in np.asarray(x, dtype=float).reshape(-1))
                  for x in (mask_ratio, remask_temp, sample_temp, cfg_scale)),
                *(None if x is None else tuple(_flag(v) for v in x) for x in (cfg_reuse, deep_reuse)))
        s.validate()
        return s

    def with_reuse(self, cfg_reuse=None, deep_reuse=None) -> Strategy:
        """This strategy with the given reuse schedules (``None`` keeps the current one, ``()`` drops it)."""
        cfg_reuse = self.cfg_reuse if cfg_reuse is None else (cfg_reuse or None)
        deep_reuse = self.deep_reuse if deep_reuse is None else (deep_reuse or None)
        return Strategy.create(self.mask_ratio, self.remask_temp, self.sample_temp, self.cfg_scale,
                               cfg_reuse, deep_reuse)

    @property
    def reuses(self) -> bool:
        """Whether any step reuses work of an earlier one."""
        return any(any(getattr(self, name) or ()) for name in REUSE_FIELDS)

    @property
    def steps(self) -> int:
        return len(self.sample_temp)

    def validate(self) -> None:
        """Raise :class:`AutonatError` naming the first problem found."""
        t = len(self.sample_temp)
        if t < 1:
            raise AutonatError("a strategy needs at least one step (sample_temp is empty)")
        expected = {"mask_ratio": t - 1, "remask_temp": t - 1, "sample_temp": t, "cfg_scale": t}
        for name, n in expected.items():
            values = getattr(self, name)
            if len(values) != n:
                raise AutonatError(
                    f"strategy {name} has {len(values)} values; {t} steps need {n} "
                    "(mask_ratio and remask_temp: steps - 1; sample_temp and cfg_scale: steps)")
            if any(not math.isfinite(v) for v in values):
                raise AutonatError(f"strategy {name} holds NaN or infinite values: {list(values)}")
        if any(not 0.0 <= r < 1.0 for r in self.mask_ratio):
            raise AutonatError(f"strategy mask_ratio values must lie in [0, 1): {list(self.mask_ratio)}")
        if any(b > a + 1e-12 for a, b in zip(self.mask_ratio, self.mask_ratio[1:])):
            raise AutonatError(f"strategy mask_ratio must be non-increasing: {list(self.mask_ratio)}")
        for name in ("remask_temp", "sample_temp"):
            if any(v < 0 for v in getattr(self, name)):
                raise AutonatError(f"strategy {name} must be >= 0: {list(getattr(self, name))}")
        for name in REUSE_FIELDS:
            values = getattr(self, name)
            if values is None:
                continue
            if len(values) != t or any(v not in (0, 1) for v in values):
                raise AutonatError(f"strategy {name} must hold one 0 or 1 per step ({t} values), got {list(values)}")
            if values[0]:
                raise AutonatError(f"strategy {name} is 1 at step 0, which has no earlier step to reuse; "
                                   "set its first value to 0")

    def masked_counts(self, length: int) -> list[int]:
        """Tokens still masked after each step for a sequence of ``length`` tokens.

        ``max(1, min(#masked - 1, floor(length * ratio)))`` for every step but
        the last, which leaves none (as MaskGIT and AutoNAT).
        """
        counts, masked = [], length
        for ratio in self.mask_ratio:
            masked = max(1, min(masked - 1, math.floor(length * ratio)))
            counts.append(masked)
        return counts + [0]

    def to_dict(self, official: bool = False) -> dict:
        """Our keys (with the reuse schedules that are set), or the official ``manual_*`` keys."""
        if official:
            if self.cfg_reuse is not None or self.deep_reuse is not None:
                raise AutonatError("the official strategy format has no reuse schedules (cfg_reuse, deep_reuse); "
                                   "save this strategy in ours, or drop them first")
            return {k: list(getattr(self, v)) for k, v in OFFICIAL_KEYS.items()}
        reuse = {k: list(getattr(self, k)) for k in REUSE_FIELDS if getattr(self, k) is not None}
        return {"steps": self.steps, **{k: list(getattr(self, k)) for k in FIELDS}, **reuse}

    def identity(self) -> str:
        """The strategy as one canonical JSON string: a cache of scores or features keyed by it is never read
        for another strategy."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict, where: str = "strategy") -> Strategy:
        """Read the four vectors (our key names or the official ``manual_*``) and an optional ``steps``.

        Every other key is an error naming it: a misspelt key would otherwise be
        dropped without a word.
        """
        if not isinstance(data, dict):
            raise AutonatError(f"{where} must be a mapping of the four schedule vectors")
        names = {OFFICIAL_KEYS.get(k, k): k for k in data}  # our name -> the name in the file
        unknown = [k for k in data if OFFICIAL_KEYS.get(k, k) not in KNOWN_KEYS]
        if unknown:
            guesses = misspellings(unknown, [*KNOWN_KEYS, *OFFICIAL_KEYS])
            named = [c if len(unknown) == 1 else f"{k} -> {c}" for k, c in guesses]
            guess = f" (did you mean {', '.join(named)}?)" if named else ""
            raise AutonatError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}{guess}; a strategy holds "
                               f"{', '.join(KNOWN_KEYS)} (or the official {', '.join(OFFICIAL_KEYS)})")
        if len(names) < len(data):
            both = [f"{k} and {v}" for k, v in OFFICIAL_KEYS.items() if k in data and v in data]
            raise AutonatError(f"{where} gives {', '.join(both)}: keep one name for each vector")
        missing = [k for k in FIELDS if k not in names]
        if missing:
            raise AutonatError(
                f"{where} lacks {', '.join(missing)} (need {', '.join(FIELDS)} or the official "
                f"{', '.join(OFFICIAL_KEYS)})")
        reuse = [_numbers(data[k], k, where) if k in data else None for k in REUSE_FIELDS]
        s = cls.create(*(_numbers(data[names[k]], names[k], where) for k in FIELDS), *reuse)
        if "steps" in data:
            steps = data["steps"]
            if isinstance(steps, bool) or not isinstance(steps, numbers.Integral):
                raise AutonatError(f"{where}: steps must be a whole number, found {steps!r}")
            if steps != s.steps:
                raise AutonatError(f"{where} says steps: {steps} but its vectors describe {s.steps} steps")
        return s


def _numbers(values, key: str, where: str) -> list[float]:
    """A schedule vector from a file: a list of numbers (a single number counts as a list of one)."""
    items = values if isinstance(values, list) else [values]
    for v in items:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise AutonatError(f"{where}: {key} must be a list of numbers, found {v!r}")
    return [float(v) for v in items]


def _flag(value) -> int:
    """A reuse schedule entry: 0 or 1 (a bool or a whole number; anything else fails validation)."""
    number = float(value)
    return int(number) if number.is_integer() else -1


# --------------------------------------------------------------------------- builders
def cosine_gamma(r: float) -> float:
    """MaskGIT's cosine mask schedule ``gamma(r) = cos(pi/2 * r)``: the fraction still masked at progress ``r``."""
    return math.cos(math.pi / 2 * r)


def schedule_ratios(gamma: Callable[[float], float], steps: int) -> list[float]:
    """``gamma((t + 1) / T)`` for ``t = 0 .. T - 2``: a mask schedule as per-step ratios (the last step masks none).

    Every mask-ratio vector is built here, so a schedule gives bit-identical
    ratios (and masked counts ``floor(L * ratio)``) under every name.
    """
    return [gamma((t + 1) / steps) for t in range(steps - 1)]


def cosine_mask_ratios(steps: int) -> list[float]:
    """MaskGIT's cosine schedule: ``cos(pi/2 * (t + 1) / T)`` for t = 0 .. T-2."""
    return schedule_ratios(cosine_gamma, steps)


def annealed_linear(start: float, steps: int) -> list[float]:
    """``start * (1 - (t + 1) / T)`` for ``t = 0 .. T - 2``: MaskGIT's annealed choice temperature."""
    return [start * (1 - (t + 1) / steps) for t in range(steps - 1)]


def maskgit_cosine(steps: int, remask_temp: float = 4.5, sample_temp: float = 1.0,
                   cfg_scale: float = 0.0) -> Strategy:
    """The MaskGIT heuristic (Chang et al., CVPR 2022; google-research/maskgit).

    Cosine mask schedule and Gumbel choice temperature ``remask_temp`` annealed
    linearly, ``remask_temp * (1 - (t + 1) / T)``; constant sampling
    temperature and CFG scale.
    """
    _check_steps(steps)
    return Strategy.create(
        cosine_mask_ratios(steps),
        annealed_linear(remask_temp, steps),
        [sample_temp] * steps,
        [cfg_scale] * steps,
    )


def linear_ramps(steps: int, remask_temp: tuple[float, float], cfg_scale: tuple[float, float],
                 sample_temp: float = 1.0) -> Strategy:
    """Cosine mask ratios with linear ramps: re-masking temperature ``remask_temp[0] -> remask_temp[1]``
    over the ``T - 1`` re-masking steps, CFG ``cfg_scale[0] -> cfg_scale[1]`` over the ``T`` steps, and a
    constant sampling temperature."""
    _check_steps(steps)
    return Strategy.create(
        cosine_mask_ratios(steps),
        np.linspace(remask_temp[0], remask_temp[1], steps - 1),
        [sample_temp] * steps,
        np.linspace(cfg_scale[0], cfg_scale[1], steps),
    )


def autonat_init(steps: int, remask_temp: tuple[float, float] | None = None,
                 cfg_scale: tuple[float, float] | None = None) -> Strategy:
    """AutoNAT's starting point for the generation-strategy search (Ni et al., CVPR 2024).

    The initial values of the official search (LeapLabTHU/ImprovedNAT,
    ``train.py``, ``DisPatcher``), for ``T`` steps:

    * mask ratios ``cos(linspace(0, pi/2, T + 1))[1:-1]``, i.e. ``cos(pi/2 * (t + 1) / T)``
      for ``t = 0 .. T - 2`` (this project's one cosine, :func:`cosine_mask_ratios`);
    * re-masking temperatures ``(1 - linspace(0, 1, T + 1))[:-2]``: ``1 - t / T``, from 1 down to ``2 / T``;
    * sampling temperatures 1;
    * CFG scales ``linspace(0, 1, T + 1)[1:]``: ``(t + 1) / T``, from ``1 / T`` up to 1.

    ``remask_temp`` / ``cfg_scale`` replace a ramp's endpoints (then
    :func:`linear_ramps`); the defaults give the official values.
    """
    _check_steps(steps)
    if remask_temp is not None or cfg_scale is not None:
        return linear_ramps(steps, remask_temp or (1.0, 2.0 / steps), cfg_scale or (1.0 / steps, 1.0))
    grid = np.linspace(0.0, 1.0, steps + 1)
    return Strategy.create(cosine_mask_ratios(steps), (1.0 - grid)[:-2], [1.0] * steps, grid[1:])


def _check_steps(steps: int) -> None:
    if steps < 1:
        raise AutonatError(f"the number of steps must be at least 1, got {steps}")
