"""A nine-number family of generation strategies, for searches on a noisy objective.

AutoNAT searches the four per-step vectors directly (``3T - 2`` numbers).
With FIDs of a few hundred images that is too many directions to tell apart,
so derivative-free searches here move nine shape parameters instead:

* mask schedule ``gamma(r) = cos(pi/2 * r ** a) ** b`` with ``r = (t + 1) / T``
  (``mask_a``, ``mask_b`` > 0). ``a = b = 1`` is MaskGIT's cosine exactly; the
  zoo's arccos, linear, square and sqrt schedules lie within 0.006 of the
  family (:func:`fit_family`). It is decreasing in ``r`` and in [0, 1), so
  every point gives valid mask ratios;
* re-masking temperature linear from ``remask_start`` to ``remask_end`` over
  the ``T - 1`` re-masking steps;
* sampling temperature linear from ``sample_start`` to ``sample_end`` over
  the ``T`` steps;
* CFG ``max(0, cfg_start + (cfg_end - cfg_start) * u ** cfg_power)`` with
  ``u = t / (T - 1)``, the step's position in [0, 1]. A negative
  ``cfg_start`` turns guidance off (exactly 0) at the first steps, where the
  sampler then skips the unconditional pass: guidance on an interval of
  steps, a point a compute-aware search can reach.

AutoNAT's initialisation is the point ``a = b = 1``, re-masking ``1 -> 2/T``,
sampling 1, CFG ``1/T -> 1`` with power 1; MaskGIT's heuristic, the CFG ramps
and aMUSEd are points too. :class:`FamilyBox` maps the family to the unit
cube that an optimiser moves in (exponents on a log2 scale).
"""
from __future__ import annotations

from dataclasses import astuple, dataclass, fields

import numpy as np

from autonat.errors import AutonatError
from autonat.strategy.core import Strategy, _check_steps


@dataclass(frozen=True)
class ScheduleFamily:
    """One point of the family; :meth:`strategy` gives its per-step vectors for ``T`` steps."""

    mask_a: float = 1.0
    mask_b: float = 1.0
    remask_start: float = 1.0
    remask_end: float = 0.25
    sample_start: float = 1.0
    sample_end: float = 1.0
    cfg_start: float = 0.125
    cfg_end: float = 1.0
    cfg_power: float = 1.0

    def __post_init__(self) -> None:
        bad = [f.name for f in fields(self) if not np.isfinite(getattr(self, f.name))]
        if bad:
            raise AutonatError(f"schedule family parameters {', '.join(bad)} are not finite")
        positive = [n for n in ("mask_a", "mask_b", "cfg_power") if getattr(self, n) <= 0]
        if positive:
            raise AutonatError(f"schedule family parameters {', '.join(positive)} must be > 0")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def values(self) -> np.ndarray:
        return np.asarray(astuple(self), dtype=float)

    def strategy(self, steps: int) -> Strategy:
        """The four vectors for ``steps`` steps (validated; negative temperatures are clipped to 0)."""
        _check_steps(steps)
        r = np.arange(1, steps) / steps
        ratios = np.cos(np.pi / 2 * r ** self.mask_a) ** self.mask_b
        u = np.arange(steps) / (steps - 1) if steps > 1 else np.ones(1)
        cfg = np.maximum(self.cfg_start + (self.cfg_end - self.cfg_start) * u ** self.cfg_power, 0.0)
        return Strategy.create(ratios, np.maximum(_ramp(self.remask_start, self.remask_end, steps - 1), 0.0),
                               np.maximum(_ramp(self.sample_start, self.sample_end, steps), 0.0), cfg)


def _ramp(start: float, end: float, n: int) -> np.ndarray:
    """``n`` values linear from ``start`` to ``end`` (one value: ``start``)."""
    return np.linspace(start, end, n)


def autonat_init_point(steps: int) -> ScheduleFamily:
    """AutoNAT's initialisation (:func:`autonat.strategy.core.autonat_init`) as a family point."""
    _check_steps(steps)
    return ScheduleFamily(remask_start=1.0, remask_end=2.0 / steps, cfg_start=1.0 / steps, cfg_end=1.0)


# --------------------------------------------------------------------------- fitting
_LOG2_GRID = np.linspace(-3.0, 3.0, 241)  # exponents 1/8 .. 8, 0.025 apart on a log2 scale


def fit_family(strategy: Strategy) -> ScheduleFamily:
    """The family point closest to ``strategy``: ramps through its end values, exponents by grid search.

    Mask exponents minimise the largest mask-ratio error, the CFG power the
    largest CFG error. Exact for strategies of the family whose exponents lie
    on the grid (1/8 .. 8, 0.025 apart in log2), close otherwise.
    """
    t = strategy.steps
    remask = strategy.remask_temp or (1.0,)
    mask_a, mask_b = _fit_mask(np.asarray(strategy.mask_ratio), t)
    cfg = np.asarray(strategy.cfg_scale)
    cfg_power = _fit_power(cfg, t)
    return ScheduleFamily(mask_a, mask_b, remask[0], remask[-1], strategy.sample_temp[0], strategy.sample_temp[-1],
                          float(cfg[0]), float(cfg[-1]), cfg_power)


def _fit_mask(ratios: np.ndarray, steps: int) -> tuple[float, float]:
    if len(ratios) == 0:
        return 1.0, 1.0
    r = np.arange(1, steps) / steps
    a = 2.0 ** _LOG2_GRID[:, None, None]
    b = 2.0 ** _LOG2_GRID[None, :, None]
    err = np.abs(np.cos(np.pi / 2 * r[None, None, :] ** a) ** b - ratios).max(axis=2)
    i, j = np.unravel_index(np.argmin(err + 1e-9 * (np.abs(_LOG2_GRID)[:, None] + np.abs(_LOG2_GRID)[None, :])),
                            err.shape)  # ties go to the exponents nearest 1
    return float(2.0 ** _LOG2_GRID[i]), float(2.0 ** _LOG2_GRID[j])


def _fit_power(cfg: np.ndarray, steps: int) -> float:
    if steps < 3 or np.isclose(cfg[0], cfg[-1]):
        return 1.0
    u = np.arange(steps) / (steps - 1)
    p = 2.0 ** _LOG2_GRID[:, None]
    err = np.abs(cfg[0] + (cfg[-1] - cfg[0]) * u[None, :] ** p - cfg).max(axis=1)
    return float(2.0 ** _LOG2_GRID[np.argmin(err + 1e-9 * np.abs(_LOG2_GRID))])


# --------------------------------------------------------------------------- the search box
#: Per parameter: (low, high, log2 scale?, typical step). The box holds every zoo schedule; an optimiser moves in
#: [0, 1]^9 and starts with the typical steps (in the parameter's units, log2 for exponents): about the change
#: that moves FID by a few percent on the demo model: small for the sensitive sampling temperature and mask
#: shape, large for re-masking temperature and CFG, where the demo model's gains lie.
BOX = {
    "mask_a": (-3.0, 3.0, True, 0.25),
    "mask_b": (-3.0, 3.0, True, 0.25),
    "remask_start": (0.0, 8.0, False, 1.5),
    "remask_end": (0.0, 8.0, False, 1.5),
    "sample_start": (0.25, 2.5, False, 0.05),
    "sample_end": (0.25, 2.5, False, 0.05),
    "cfg_start": (-2.0, 10.0, False, 0.75),  # below 0: no guidance at the first steps
    "cfg_end": (0.0, 10.0, False, 0.75),
    "cfg_power": (-3.0, 3.0, True, 0.5),
}


#: Named sets of parameters a search may move (``--free``). ``coarse``: the re-masking temperature and CFG ramps
#: (start and end); the mask shape and sampling temperature keep the start's values. ``no-cfg``: everything but
#: guidance (re-masking and sampling temperature ramps, mask shape), for a model whose CFG ramp is already good.
#: ``temperatures``: the re-masking and sampling temperature ramps alone (the mask schedule and CFG ramp stay).
FREE_SETS = {
    "all": ScheduleFamily.names(),
    "coarse": ("remask_start", "remask_end", "cfg_start", "cfg_end"),
    "no-cfg": ("remask_start", "remask_end", "sample_start", "sample_end", "mask_a", "mask_b"),
    "temperatures": ("remask_start", "remask_end", "sample_start", "sample_end"),
}


def free_parameters(spec: str) -> tuple[str, ...]:
    """A name of :data:`FREE_SETS` or comma-separated parameter names -> the names (validated by the search
    config)."""
    spec = spec.strip()
    if spec in FREE_SETS:
        return FREE_SETS[spec]
    return tuple(name.strip() for name in spec.split(",") if name.strip())


class FamilyBox:
    """The family as the unit cube ``[0, 1]^9``: ``to_unit`` / ``from_unit`` (exponents on a log2 scale);
    ``steps`` are the typical steps in unit-cube coordinates."""

    names = ScheduleFamily.names()
    low = np.array([BOX[n][0] for n in names])
    high = np.array([BOX[n][1] for n in names])
    log = np.array([BOX[n][2] for n in names])
    steps = np.array([BOX[n][3] for n in names]) / (high - low)

    @classmethod
    def to_unit(cls, point: ScheduleFamily) -> np.ndarray:
        v = point.values()
        v = np.where(cls.log, np.log2(np.maximum(v, 1e-12)), v)
        return np.clip((v - cls.low) / (cls.high - cls.low), 0.0, 1.0)

    @classmethod
    def from_unit(cls, z) -> ScheduleFamily:
        z = np.clip(np.asarray(z, dtype=float), 0.0, 1.0)
        v = cls.low + z * (cls.high - cls.low)
        return ScheduleFamily(*np.where(cls.log, 2.0 ** v, v).tolist())
