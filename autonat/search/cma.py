"""CMA-ES over the nine-number schedule family: a generation-strategy search for noisy, small-budget FIDs.

The search moves in the unit cube of :class:`~autonat.strategy.family.FamilyBox`
(mask-schedule exponents, re-masking / sampling temperature ramps, CFG
ramp and its power) with the CMA-ES of the ``cmaes`` package (Hansen's
evolution strategy; rank-based, so a monotone noise-free transform of the
objective does not matter, and sampling noise only has to leave the ranking
within a generation intact). Each generation:

1. asks ``population`` candidates and scores each on ``n_eval`` images; with
   common random numbers every candidate of a generation uses the same sample
   seeds, so their ranking measures the strategies rather than the seeds;
2. tells CMA-ES the values, which moves its mean (a weighted average of the
   better half of the candidates: the search's current estimate of the best
   strategy, ``strategy.yaml``);
3. scores the new mean on fixed validation seed sets (``validation_sets``
   of them, the value their mean), never used to rank candidates. The
   search keeps the mean with the lowest validation value
   (``best_strategy.yaml``, the result); the start is validated first, so
   the result is never worse than the start on the validation seeds.

With alternative starts (``alternatives``, e.g. other schedules of the zoo)
the given start and each alternative are scored on the validation seeds
first, and CMA-ES begins from the best of them; their images count in the
budget, and the result is still the best validated point of all.

The mean is validated rather than the generation's best candidate: at small
N the best of a handful of noisy values is mostly the luckiest draw, while
the mean averages the ranking over half the population.

Every evaluation is appended to ``evaluations.jsonl`` (generation, index,
seed, unit-cube point, value) before the next one starts. Resuming needs no
pickled optimiser: a new CMA-ES with the same seed replays the recorded
generations (asking the same candidates, which is checked, and telling the
recorded values) and continues, so an interrupted search follows the same
trajectory as one run straight through. ``history.csv`` holds one row per
generation (validation value of the mean, best candidate value, images,
seconds).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from autonat.errors import AutonatError
from autonat.io.atomic import append_line
from autonat.io.lock import run_lock
from autonat.search.generation import (
    Objective,
    SearchConfig,
    check_search_inputs,
    eval_seed,
    search_inputs,
    write_csv,
)
from autonat.strategy.core import Strategy
from autonat.strategy.family import FamilyBox, ScheduleFamily, fit_family
from autonat.strategy.files import load_strategy, save_strategy

EVALUATIONS_FILE = "evaluations.jsonl"
VALIDATION = -1  # the ``index`` of the first validation evaluation in the record (the i-th: -1 - i)


def validation_seed(base: int, i: int = 0) -> int:
    """The i-th validation seed set's seed: fixed for a search, distinct from every candidate seed."""
    parts = [base, 2 ** 31 - 1] + ([i] if i else [])
    return int(np.random.SeedSequence(parts).generate_state(1)[0])


@dataclass
class CMAState:
    """Progress so far, as :class:`~autonat.search.generation.SearchState` reports it (``step`` = generations)."""

    step: int = 0
    images: int = 0
    evaluations: int = 0
    seconds: float = 0.0
    best_value: float = float("inf")
    best_z: list[float] | None = None


class CMASearch:
    """CMA-ES over the schedule family from ``init`` (projected onto the family by :func:`fit_family`).

    ``objective(strategy, seed)`` scores a strategy on samples drawn from
    ``seed``; ``config.steps`` is the number of generations.
    """

    def __init__(self, objective: Objective, init: Strategy, config: SearchConfig, out_dir: str | Path,
                 n_eval: int, inputs: dict | None = None, alternatives: Sequence[Strategy] = ()) -> None:
        if config.method != "cma":
            raise AutonatError(f"CMASearch runs method cma, not {config.method!r}")
        if any(a.steps != init.steps for a in alternatives):
            raise AutonatError(f"every alternative start must have the start's {init.steps} steps")
        self.objective, self.config, self.n_eval, self.init = objective, config, n_eval, init
        self.inputs = search_inputs(inputs or {}, n_eval, init, config, alternatives)
        self.steps = init.steps
        self.start = FamilyBox.to_unit(fit_family(init))
        self.alternatives = [FamilyBox.to_unit(fit_family(a)) for a in alternatives]
        names = FamilyBox.names
        self.free = np.array([names.index(n) for n in (config.free or names)])
        self.out = Path(out_dir)

    # -- persistence
    @property
    def state_file(self) -> Path:
        return self.out / EVALUATIONS_FILE

    def records(self) -> list[dict]:
        if not self.state_file.exists():
            return []
        try:
            return [json.loads(line) for line in self.state_file.read_text().splitlines() if line.strip()]
        except ValueError as exc:
            raise AutonatError(f"{self.state_file} is corrupt ({str(exc).splitlines()[0]}); move it away to start "
                               "the search again, or use another --out") from exc

    def _record(self, generation: int, index: int, seed: int, z: np.ndarray, value: float, seconds: float) -> dict:
        row = {"generation": generation, "index": index, "seed": seed, "z": [float(v) for v in z],
               "value": float(value), "seconds": round(seconds, 3)}
        self.out.mkdir(parents=True, exist_ok=True)
        append_line(self.state_file, json.dumps(row))
        return row

    def strategy_of(self, z) -> Strategy:
        return FamilyBox.from_unit(z).strategy(self.steps)

    def family_of(self, z) -> ScheduleFamily:
        return FamilyBox.from_unit(z)

    # -- the search
    def _optimizer(self):
        """CMA-ES in the free coordinates of the unit cube (all nine unless ``config.free`` names fewer)."""
        from cmaes import CMA

        bounds = np.tile([0.0, 1.0], (len(self.free), 1))
        return CMA(mean=self.start[self.free].copy(), sigma=self.config.sigma,
                   cov=np.diag(FamilyBox.steps[self.free] ** 2), bounds=bounds, seed=self.config.seed,
                   population_size=self.config.population)

    def _full(self, z_free: np.ndarray) -> np.ndarray:
        """A point of the unit cube: the free coordinates from ``z_free``, the others the start's."""
        z = self.start.copy()
        z[self.free] = z_free
        return z

    def _evaluate(self, cache: dict, generation: int, index: int, z: np.ndarray, seed: int) -> float:
        """The recorded value of (generation, index) if any (its point must match), else a new evaluation."""
        key = (generation, index)
        if key in cache:
            if not np.allclose(cache[key]["z"], z, rtol=0, atol=1e-9):
                raise AutonatError(f"{self.state_file} does not replay: candidate {index} of generation {generation} "
                                   "differs from the record; use another --out for a search with other settings")
            return cache[key]["value"]
        t0 = time.time()
        value = float(self.objective(self.strategy_of(z), seed))
        cache[key] = self._record(generation, index, seed, z, value, time.time() - t0)
        return value

    def run(self, progress: bool = True, stop: Callable[[], bool] | None = None) -> CMAState:
        """Run (or resume) ``config.steps`` generations; ``stop()`` ends early at a generation boundary."""
        with run_lock(self.out):
            check_search_inputs(self.out, self.inputs)
            return self._run(progress, stop)

    def _run(self, progress: bool, stop: Callable[[], bool] | None) -> CMAState:
        from tqdm import tqdm

        cfg = self.config
        cache = {(r["generation"], r["index"]): r for r in self.records()}
        self._choose_start(cache)
        optimizer = self._optimizer()
        bar = tqdm(total=cfg.steps, desc="search (cma)", disable=not progress, dynamic_ncols=True)
        for generation in range(1, cfg.steps + 1):
            replayed = all((generation, j) in cache for j in range(-cfg.validation_sets, cfg.population))
            seed = lambda j: eval_seed(cfg.seed, generation, j, cfg.common_random_numbers)  # noqa: B023, E731
            zs = [optimizer.ask() for _ in range(cfg.population)]
            values = [self._evaluate(cache, generation, j, self._full(z), seed(j)) for j, z in enumerate(zs)]
            optimizer.tell(list(zip(zs, values)))
            self._validate(cache, generation, self._full(optimizer.mean))
            self._save(cache, self._full(optimizer.mean))
            bar.update(1)
            if not replayed and stop is not None and stop():
                break
        bar.close()
        return self.state(cache)

    def _choose_start(self, cache: dict) -> None:
        """Validate the start (generation 0) and each alternative start (generations -1, -2, ...) and move the
        search's start to the best of them: the search then begins where the validation seeds say it should."""
        self._validate(cache, 0, self.start)
        for k, z in enumerate(self.alternatives):
            self._validate(cache, -1 - k, z)
        valid = {g: v for g, v in self._validations(list(cache.values())).items() if g <= 0}  # the starts only
        best = min(valid, key=lambda g: (valid[g][0], -g))  # ties: the given start
        self.start = np.asarray(valid[best][1], dtype=float)

    def _validate(self, cache: dict, generation: int, z: np.ndarray) -> None:
        for i in range(self.config.validation_sets):
            self._evaluate(cache, generation, VALIDATION - i, z, validation_seed(self.config.seed, i))

    def _validations(self, rows: list[dict]) -> dict[int, tuple[float, list[float]]]:
        """generation -> (mean validation value, point), for generations validated on every set."""
        out = {}
        for g in sorted({r["generation"] for r in rows}):
            mine = [r for r in rows if r["generation"] == g and r["index"] < 0]
            if len(mine) == self.config.validation_sets:
                out[g] = (float(np.mean([r["value"] for r in mine])), mine[0]["z"])
        return out

    def state(self, cache: dict | None = None) -> CMAState:
        rows = list((cache or {(r["generation"], r["index"]): r for r in self.records()}).values())
        valid = self._validations(rows)
        if not valid:
            return CMAState()
        best = min(valid, key=lambda g: valid[g][0])
        return CMAState(step=max(valid), images=len(rows) * self.n_eval, evaluations=len(rows),
                        seconds=sum(r["seconds"] for r in rows), best_value=valid[best][0], best_z=valid[best][1])

    def _save(self, cache: dict, mean: np.ndarray) -> None:
        state = self.state(cache)
        save_strategy(self.strategy_of(mean), self.out / "strategy.yaml")
        save_strategy(self.strategy_of(state.best_z), self.out / "best_strategy.yaml")
        write_csv(self.out / "history.csv", self.history(cache))

    def history(self, cache: dict | None = None) -> list[dict]:
        """One row per generation (0: the start): ``fid`` is the validation value of the mean after it,
        ``train_fid`` the best candidate's value on the generation's own seeds; images and seconds cumulative."""
        rows = sorted((cache or {(r["generation"], r["index"]): r for r in self.records()}).values(),
                      key=lambda r: (r["generation"], r["index"] != VALIDATION, r["index"]))
        out, images, seconds, valid = [], 0, 0.0, self._validations(rows)
        for g in sorted({r["generation"] for r in rows}):
            mine = [r for r in rows if r["generation"] == g]
            images += len(mine) * self.n_eval
            seconds += sum(r["seconds"] for r in mine)
            train = [r["value"] for r in mine if r["index"] >= 0]
            if g in valid and g >= 0:  # alternative starts (g < 0) count in the images, the start's row is g = 0
                out.append({"step": g, "fid": valid[g][0], "train_fid": min(train) if train else valid[g][0],
                            "images": images, "evaluations": sum(1 for r in rows if r["generation"] <= g),
                            "seconds": round(seconds, 2)})
        return out

    def final_strategy(self) -> Strategy:
        """The result: the candidate with the lowest validation value."""
        return load_strategy(self.out / "best_strategy.yaml")
