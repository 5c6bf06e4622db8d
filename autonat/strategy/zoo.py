"""The field's published sampling schedules, expressed as our four per-step vectors.

Every masked-generative codebase names and shapes its sampling knobs
differently; a per-step :class:`~autonat.strategy.core.Strategy` can hold all of
them. Each builder here takes the number of steps ``T`` and returns a
validated strategy; its docstring cites the paper or code it follows.

Conventions used throughout (step ``t`` counts from 0; ``r = (t + 1) / T``):

* mask schedules give the fraction still masked after step ``t``,
  ``gamma(r)``, for ``t = 0 .. T - 2`` (the last step masks none);
* "annealed linearly to 0" re-masking temperature is ``tau * (1 - r)``, as in
  MaskGIT's ``choice_temperature``;
* CFG is ours, ``cond + s * (cond - uncond)``; the helpers below convert the
  other two common formulas (see ``docs/strategies.md`` for the table).

This module owns the registry of named schedules, :data:`BUILDERS` (with
MaskGIT's cosine and AutoNAT's initialisation from :mod:`autonat.strategy.core`),
so ``build_strategy(name, steps)``, ``autonat sample --schedule NAME`` and
``autonat strategy show NAME`` find them.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from autonat.errors import AutonatError, closest
from autonat.strategy.core import (
    Strategy,
    _check_steps,
    annealed_linear,
    autonat_init,
    cosine_gamma,
    linear_ramps,
    maskgit_cosine,
    schedule_ratios,
)


# --------------------------------------------------------------------------- CFG conventions
def cfg_from_uncond_form(g: float) -> float:
    """``uncond + g * (cond - uncond)`` (diffusers, aMUSEd, RAR) is ours with ``s = g - 1``."""
    return float(g) - 1.0


def cfg_to_uncond_form(s: float) -> float:
    """Our ``s`` as the ``g`` of ``uncond + g * (cond - uncond)``: ``g = s + 1``."""
    return float(s) + 1.0


def cfg_from_one_plus_w_form(w: float) -> float:
    """``(1 + w) * cond - w * uncond`` (MUSE, Halton-MaskGIT) is ours with ``s = w``."""
    return float(w)


def cfg_to_one_plus_w_form(s: float) -> float:
    """Our ``s`` as the ``w`` of ``(1 + w) * cond - w * uncond``: ``w = s``."""
    return float(s)


# --------------------------------------------------------------------------- mask schedules
MASK_SCHEDULES: dict[str, Callable[[float], float]] = {
    "cosine": cosine_gamma,
    "arccos": lambda r: math.acos(r) / (math.pi / 2),
    "linear": lambda r: 1.0 - r,
    "sqrt": lambda r: 1.0 - math.sqrt(r),
    "square": lambda r: 1.0 - r * r,
}


def mask_ratios(schedule: str, steps: int) -> list[float]:
    """``gamma((t + 1) / T)`` for ``t = 0 .. T - 2`` under a named mask schedule.

    The functions are those of MaskGIT's ``mask_schedule.py`` (cosine,
    linear = "uniform", square = "pow2", sqrt = "pow0.5") and of the
    MaskGIT-PyTorch / MaskBit code (arccos).
    """
    if schedule not in MASK_SCHEDULES:
        raise AutonatError(f"unknown mask schedule {schedule!r}; choose one of {', '.join(MASK_SCHEDULES)}")
    _check_steps(steps)
    return schedule_ratios(MASK_SCHEDULES[schedule], steps)


# --------------------------------------------------------------------------- CFG ramps
def linear_cfg_ramp(steps: int, cfg_max: float) -> list[float]:
    """``s_t = cfg_max * t / T``: no guidance at the first step, rising linearly.

    MaskBit's ``guidance_annealing="linear"`` (markweberdev/maskbit,
    ``modeling/modules/sampling.py``) and the TiTok MaskGIT generator's
    ``guidance_decay`` (bytedance/1d-tokenizer), both following MUSE's
    "linearly increase the guidance scale" (Chang et al., 2023).
    """
    return [cfg_max * t / steps for t in range(steps)]


def power_cosine_cfg_ramp(steps: int, cfg_max: float, power: float) -> list[float]:
    """``s_t = cfg_max * (1 - cos(pi * (t / T) ** power)) / 2``: little guidance early, most late.

    The power-cosine guidance schedule of MDT (Gao et al., ICCV 2023) as used
    by MaskBit's ``guidance_annealing="cosine"`` with ``scale_pow``
    (markweberdev/maskbit, ``modeling/modules/sampling.py``), which writes
    CFG in our form ``cond + scale * (cond - uncond)``.
    """
    return [cfg_max * (1 - math.cos(math.pi * (t / steps) ** power)) / 2 for t in range(steps)]


# --------------------------------------------------------------------------- builders
def maskgit(steps: int, schedule: str = "cosine", choice_temp: float = 4.5, sample_temp: float = 1.0,
            cfg: list[float] | float = 0.0) -> Strategy:
    """MaskGIT's default sampler (Chang et al., CVPR 2022; google-research/maskgit).

    Cosine mask schedule, tokens sampled at temperature 1, Gumbel "choice
    temperature" 4.5 annealed linearly to 0 (``4.5 * (1 - (t + 1) / T)``) on
    the log-probability confidences, and no classifier-free guidance. The
    other builders vary one of these knobs.
    """
    _check_steps(steps)
    cfg_values = [float(cfg)] * steps if np.isscalar(cfg) else list(cfg)
    return Strategy.create(mask_ratios(schedule, steps), annealed_linear(choice_temp, steps),
                           [sample_temp] * steps, cfg_values)


def arccos_schedule(steps: int) -> Strategy:
    """MaskGIT defaults with the arccos mask schedule ``gamma(r) = arccos(r) / (pi / 2)``.

    Besnier & Chen, "A Pytorch Reproduction of Masked Generative Image
    Transformer" (arXiv:2310.14400), found it better than cosine; MaskBit
    (Weber et al., TMLR 2024) and the Halton scheduler work use it too.
    """
    return maskgit(steps, schedule="arccos")


def linear_schedule(steps: int) -> Strategy:
    """MaskGIT defaults with the linear mask schedule ``gamma(r) = 1 - r`` (MaskGIT's "uniform")."""
    return maskgit(steps, schedule="linear")


def sqrt_schedule(steps: int) -> Strategy:
    """MaskGIT defaults with ``gamma(r) = 1 - sqrt(r)`` (MaskGIT's "pow0.5"; many tokens decoded early)."""
    return maskgit(steps, schedule="sqrt")


def square_schedule(steps: int) -> Strategy:
    """MaskGIT defaults with ``gamma(r) = 1 - r ** 2`` (MaskGIT's "pow2"; few tokens decoded early)."""
    return maskgit(steps, schedule="square")


def cfg_linear(steps: int, cfg_max: float = 3.0) -> Strategy:
    """MaskGIT defaults plus a linear CFG ramp ``s_t = cfg_max * t / T``.

    MUSE (Chang et al., ICML 2023) linearly increases its guidance scale
    during sampling; the ramp's exact shape and the default maximum 3.0 are
    those of MaskBit's and the TiTok generator's ``guidance_scale=3.0`` with
    linear annealing (see :func:`linear_cfg_ramp`).
    """
    _check_steps(steps)
    return maskgit(steps, cfg=linear_cfg_ramp(steps, cfg_max))


def cfg_power_cosine(steps: int, cfg_max: float = 3.0, power: float = 4.0) -> Strategy:
    """MaskGIT defaults plus a power-cosine CFG ramp (MDT's schedule, MaskBit's default ``scale_pow=4``).

    ``s_t = cfg_max * (1 - cos(pi * (t / T) ** power)) / 2`` keeps guidance
    near zero while the layout forms and raises it for the details; see
    :func:`power_cosine_cfg_ramp`.
    """
    _check_steps(steps)
    return maskgit(steps, cfg=power_cosine_cfg_ramp(steps, cfg_max, power))


def amused_mask_ratios(steps: int, masking_schedule: str = "cosine") -> list[float]:
    """``AmusedScheduler``'s mask ratios, computed as it computes them: in float32 torch arithmetic.

    Its step ``t`` keeps ``floor(L * gamma(r))`` tokens masked with
    ``r = (t + 1) / T`` a float32 tensor and ``gamma(r) = cos(r * pi / 2)``
    (or ``1 - r``) in float32. Where ``gamma(r)`` is exactly a multiple of
    ``1 / L`` in real numbers the float32 value falls just below it: for
    ``T = 12`` and ``t = 7``, ``cos(pi / 3)`` is ``0.49999997`` and the scheduler
    keeps ``L / 2 - 1`` tokens masked where the float64 cosine gives ``L / 2``.
    The float32 values, widened exactly, give the scheduler's counts through
    :meth:`~autonat.strategy.core.Strategy.masked_counts` (checked against the
    scheduler in ``tests/test_amused.py``).
    """
    import torch  # the scheduler's own arithmetic; imported here so the strategy module stays light

    if masking_schedule not in ("cosine", "linear"):
        raise AutonatError(f"unknown aMUSEd masking schedule {masking_schedule!r}; it has cosine and linear")
    _check_steps(steps)
    ratios = []
    for t in range(steps - 1):
        r = (torch.tensor([t]) + 1) / steps
        gamma = torch.cos(r * math.pi / 2) if masking_schedule == "cosine" else 1 - r
        ratios.append(float(gamma))
    return ratios


def amused(steps: int, guidance_scale: float = 10.0, temperature: tuple[float, float] = (2.0, 0.0),
           masking_schedule: str = "cosine") -> Strategy:
    """aMUSEd's defaults (Patil et al., 2024; diffusers ``AmusedPipeline`` + ``AmusedScheduler``).

    ``AmusedPipeline.__call__`` defaults to 12 steps, ``guidance_scale=10.0``
    and ``temperature=(2, 0)``; ``AmusedScheduler`` defaults to the cosine
    masking schedule (:func:`amused_mask_ratios`, its float32 values),
    samples tokens from ``softmax(logits)`` (temperature 1), and re-masks by
    ``log p + temperatures[t] * gumbel`` with ``temperatures = linspace(2, 0, T)``
    (float32, as ``torch.linspace``). Its CFG is ``uncond + g * (cond - uncond)``,
    enabled only for ``g > 1``, so ours is ``s = g - 1 = 9``.
    """
    import torch

    _check_steps(steps)
    scale = cfg_from_uncond_form(guidance_scale) if guidance_scale > 1.0 else 0.0
    temps = torch.linspace(float(temperature[0]), float(temperature[1]), steps).tolist()
    return Strategy.create(amused_mask_ratios(steps, masking_schedule), temps[: steps - 1],
                           [1.0] * steps, [scale] * steps)


def guided_ramps(steps: int) -> Strategy:
    """Cosine mask ratios, re-masking temperature 3 -> 1, sampling temperature 1, CFG 0 -> 3 (linear ramps).

    This project's earlier choice of search start, used as "AutoNAT's
    initialisation" before the official initial values were checked against
    the ImprovedNAT code (see :func:`autonat.strategy.core.autonat_init`):
    stronger guidance and hotter re-masking than the official start.
    """
    return linear_ramps(steps, remask_temp=(3.0, 1.0), cfg_scale=(0.0, 3.0))


#: Every named schedule: ``build_strategy(name, steps)``, ``autonat sample --schedule NAME`` and
#: ``autonat strategy show NAME`` look names up here.
BUILDERS: dict[str, Callable[[int], Strategy]] = {
    "cosine": maskgit_cosine,
    "autonat-init": autonat_init,
    "guided-ramps": guided_ramps,
    "maskgit": maskgit,
    "arccos": arccos_schedule,
    "linear": linear_schedule,
    "sqrt": sqrt_schedule,
    "square": square_schedule,
    "cfg-linear": cfg_linear,
    "cfg-pow-cosine": cfg_power_cosine,
    "amused": amused,
}


def name_hint(name: str) -> str:
    """What an error adds after ``name``, which names no schedule: `` (did you mean 'cosine'?); choose one of ...``
    (the guess only when one is close)."""
    close = closest(name, BUILDERS)
    return f"{f' (did you mean {close!r}?)' if close else ''}; choose one of {', '.join(sorted(BUILDERS))}"


def build_strategy(name: str, steps: int) -> Strategy:
    """A named heuristic strategy for ``steps`` steps."""
    if name not in BUILDERS:
        raise AutonatError(f"unknown schedule {name!r}{name_hint(name)}")
    return BUILDERS[name](steps)
