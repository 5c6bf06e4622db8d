"""What a search objective costs and how noisy it is: forward passes, a priced objective, seed-to-seed spread.

* :func:`forward_passes` counts the network passes one image needs under a
  strategy, as the sampler runs it: one conditional pass a step, plus an
  unconditional pass at every step whose CFG scale is at least the
  sampler's zero threshold (below it the sampler skips that pass).
* :class:`PricedObjective` is ``objective + price * forward_passes``, a
  compute-aware objective: with a price, switching guidance off at a step
  where it does not pay is worth ``price`` per image.
* :func:`measure_noise` scores one strategy on ``k`` seed sets: the standard
  deviation of those values is the objective's seed-to-seed spread at this
  N, the yardstick every difference a search sees must be read against.
  :func:`load_or_measure_noise` keeps it in ``noise.json`` of a search
  directory.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from autonat.io.atomic import write_text
from autonat.io.config import read_json
from autonat.sampling.options import SamplerOptions
from autonat.search.generation import Objective
from autonat.strategy.core import Strategy

NOISE_FILE = "noise.json"
CFG_ZERO_THRESHOLD = SamplerOptions().cfg_zero_threshold


def forward_passes(strategy: Strategy, cfg_zero_threshold: float = CFG_ZERO_THRESHOLD) -> int:
    """Network passes per image: ``T`` conditional passes plus one unconditional pass per step with
    ``|cfg| >= cfg_zero_threshold`` (the sampler runs only the conditional pass below the threshold)."""
    return strategy.steps + sum(abs(s) >= cfg_zero_threshold for s in strategy.cfg_scale)


@dataclass
class PricedObjective:
    """``objective(strategy, seed) + price * forward_passes(strategy)``: quality with a price per network pass."""

    objective: Objective
    price: float
    cfg_zero_threshold: float = CFG_ZERO_THRESHOLD

    def __call__(self, strategy: Strategy, seed: int) -> float:
        return float(self.objective(strategy, seed)) + self.price * forward_passes(strategy, self.cfg_zero_threshold)


@dataclass
class NoiseEstimate:
    """An objective's values for one strategy on ``len(values)`` seed sets of ``n_eval`` images."""

    n_eval: int
    seeds: list[int]
    values: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def std(self) -> float:
        """Sample standard deviation (ddof = 1) over the seed sets."""
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else float("nan")

    def describe(self) -> str:
        return f"seed-to-seed std {self.std:.3f} at N={self.n_eval} ({len(self.values)} seed sets)"

    def lead_noise(self, sets: int) -> float:
        """The std of the difference of two strategies' validation values, each a mean over ``sets`` seed sets:
        ``std * sqrt(2 / sets)`` (the two treated as independent: at small N the FIDs of different strategies on
        the same seeds are nearly uncorrelated, ``docs/search_evidence.md``)."""
        return self.std * (2.0 / sets) ** 0.5


def noise_seeds(base: int, k: int) -> list[int]:
    """``k`` seed-set seeds for a noise estimate, apart from the search's candidate and validation seeds."""
    return [int(np.random.SeedSequence([base, 2 ** 31 - 2, i]).generate_state(1)[0]) for i in range(k)]


def measure_noise(objective: Objective, strategy: Strategy, n_eval: int, seeds: list[int]) -> NoiseEstimate:
    return NoiseEstimate(n_eval, list(seeds), [float(objective(strategy, s)) for s in seeds])


def load_or_measure_noise(out_dir: str | Path, objective: Objective, strategy: Strategy, n_eval: int,
                          k: int = 3, base_seed: int = 0) -> NoiseEstimate:
    """The noise estimate in ``out_dir/noise.json``, measured (``k`` seed sets) and written when missing."""
    path = Path(out_dir) / NOISE_FILE
    if path.exists():
        stored = NoiseEstimate(**read_json(path, "delete it to measure the noise again"))
        if stored.n_eval == n_eval and len(stored.values) == k:
            return stored
    estimate = measure_noise(objective, strategy, n_eval, noise_seeds(base_seed, k))
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(asdict(estimate), indent=1))
    return estimate
