"""AutoNAT's generation-strategy search: gradient descent on FID over the schedule vectors.

The parameters are the four schedule vectors concatenated (Ni et al., CVPR
2024, Sec. 4): mask ratios (T - 1, kept in [0, 0.99]), re-masking
temperatures (T - 1), sampling temperatures (T) and CFG scales (T), the
last three kept >= 1e-4. FID has no analytic gradient, so it is estimated:

* ``fd``   - the paper's forward finite differences, one extra FID per
  parameter (step 0.01 for bounded, 0.1 for unbounded parameters);
* ``spsa`` - simultaneous perturbation: two FIDs per step whatever the
  dimension (Spall, 1992), along a random +-1 direction with the same
  per-parameter step sizes.

With ``common_random_numbers`` every FID within one search step uses the
same sample seeds, so the differences measure the strategy change rather
than sampling noise. Updates are SGD with momentum 0.5 and two learning
rates (1e-3 for mask ratios, 0.1 for the rest), then projection back onto
the bounds (mask ratios also onto non-increasing sequences).

Every step writes the current strategy, a CSV history row and the search
state atomically; a search restarted on the same directory resumes where it
stopped and follows the same trajectory, because every seed it draws is a
function of ``(seed, step)``. The directory records what the search scores
(checkpoint and its weights' fingerprint, reference, N, steps, method) on its
first run and refuses to resume with anything else, and it is locked while a
search runs in it.
"""
from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from autonat.errors import AutonatError
from autonat.io.atomic import atomic_path, write_text
from autonat.io.identity import check_identity
from autonat.io.lock import run_lock
from autonat.strategy.core import Strategy
from autonat.strategy.family import ScheduleFamily
from autonat.strategy.files import load_strategy, save_strategy

MASK_RATIO_MAX = 0.99
POSITIVE_MIN = 1e-4

METHODS = ("fd", "spsa", "cma")

#: ``objective(strategy, eval_seed) -> FID``: draws its samples from ``eval_seed``.
Objective = Callable[[Strategy, int], float]


@dataclass
class SearchConfig:
    """Settings of a generation-strategy search (defaults: the paper's, plus CRN)."""

    steps: int = 20
    method: str = "fd"  # "fd" (the paper), "spsa", or "cma" (CMA-ES over the schedule family, search.cma)
    common_random_numbers: bool = True
    lr_bounded: float = 1e-3
    lr_unbounded: float = 0.1
    momentum: float = 0.5
    fd_step_bounded: float = 0.01
    fd_step_unbounded: float = 0.1
    seed: int = 0
    population: int = 6  # cma: candidates per generation
    sigma: float = 1.0  # cma: initial step size, in units of the family's typical steps (strategy.family.BOX)
    validation_sets: int = 1  # cma: validation seed sets each validated mean is scored on (the value: their mean)
    free: tuple[str, ...] = ()  # cma: the family parameters it moves (empty: all nine); the others keep the start's

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise AutonatError(f"unknown search method {self.method!r}; use {', '.join(METHODS)}")
        if self.population < 2 or not self.sigma > 0 or self.validation_sets < 1:
            raise AutonatError(f"a CMA-ES search needs a population of at least 2, sigma > 0 and at least one "
                               f"validation set, got {self.population}, {self.sigma} and {self.validation_sets}")
        object.__setattr__(self, "free", tuple(self.free))
        unknown = [n for n in self.free if n not in ScheduleFamily.names()]
        if unknown or len(set(self.free)) != len(self.free) or len(self.free) == 1:
            raise AutonatError(f"--free names {len(self.free)} family parameters ({', '.join(self.free)}); give two or "
                               f"more distinct ones of {', '.join(ScheduleFamily.names())} (or 'all')")


# --------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class Layout:
    """Where each schedule vector sits in the flat parameter vector, for T steps."""

    steps: int

    @property
    def sizes(self) -> tuple[int, int, int, int]:
        t = self.steps
        return (t - 1, t - 1, t, t)

    @property
    def dim(self) -> int:
        return sum(self.sizes)

    @property
    def bounded(self) -> np.ndarray:
        """True for mask ratios (bounded to [0, 0.99]), False for the rest."""
        return np.arange(self.dim) < self.steps - 1

    def flatten(self, s: Strategy) -> np.ndarray:
        return np.concatenate([s.mask_ratio, s.remask_temp, s.sample_temp, s.cfg_scale]).astype(float)

    def unflatten(self, x: np.ndarray) -> Strategy:
        parts = np.split(project(x, self), np.cumsum(self.sizes)[:-1])
        return Strategy.create(*parts)


def nonincreasing(v: np.ndarray) -> np.ndarray:
    """Euclidean projection onto non-increasing sequences (pool adjacent violators)."""
    blocks: list[list[float]] = []  # [mean, count]
    for value in v:
        blocks.append([float(value), 1])
        while len(blocks) > 1 and blocks[-2][0] < blocks[-1][0]:
            m2, c2 = blocks.pop()
            m1, c1 = blocks.pop()
            blocks.append([(m1 * c1 + m2 * c2) / (c1 + c2), c1 + c2])
    return np.concatenate([np.full(int(c), m) for m, c in blocks]) if blocks else np.asarray(v, float)


def project(x: np.ndarray, layout: Layout) -> np.ndarray:
    """Clip to the bounds; mask ratios also made non-increasing."""
    x = np.asarray(x, float).copy()
    b = layout.bounded
    x[b] = np.clip(nonincreasing(x[b]), 0.0, MASK_RATIO_MAX)
    x[~b] = np.maximum(x[~b], POSITIVE_MIN)
    return x


# --------------------------------------------------------------------------- gradient estimators
def eval_seed(base: int, step: int, candidate: int, crn: bool) -> int:
    """Seed of candidate ``candidate`` at search step ``step`` (shared within a step under CRN)."""
    parts = [base, step] if crn else [base, step, candidate]
    return int(np.random.SeedSequence(parts).generate_state(1)[0])


def fd_gradient(f: Callable[[np.ndarray, int], float], x: np.ndarray, h: np.ndarray,
                seed_of: Callable[[int], int]) -> tuple[np.ndarray, float, int]:
    """Forward differences ``(f(x + h_i e_i) - f(x)) / h_i``; returns (gradient, f(x), evaluations)."""
    f0 = f(x, seed_of(0))
    grad = np.zeros_like(x)
    for i in range(len(x)):
        xi = x.copy()
        xi[i] += h[i]
        grad[i] = (f(xi, seed_of(i + 1)) - f0) / h[i]
    return grad, f0, len(x) + 1


def spsa_gradient(f: Callable[[np.ndarray, int], float], x: np.ndarray, h: np.ndarray,
                  seed_of: Callable[[int], int], rng: np.random.Generator) -> tuple[np.ndarray, float, int]:
    """Two-sided SPSA along a Rademacher direction; f(x) is estimated as the mean of both sides."""
    delta = rng.choice([-1.0, 1.0], size=len(x))
    plus, minus = f(x + h * delta, seed_of(0)), f(x - h * delta, seed_of(1))
    grad = (plus - minus) / (2 * h * delta)
    return grad, 0.5 * (plus + minus), 2


# --------------------------------------------------------------------------- the search
def write_csv(path: Path, rows: list[dict]) -> None:
    """Write ``rows`` (dicts with the keys of the last row) as a CSV file, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[-1]))
        writer.writeheader()
        writer.writerows(rows)


INPUTS_FILE = "inputs.json"


def check_search_inputs(out_dir: str | Path, inputs: dict, record: bool = True) -> None:
    """Record what a search directory's search is made from on its first run; refuse other inputs later.

    ``record=False`` only compares: for the check before the inputs are loaded, so a run that fails on a
    missing reference or checkpoint leaves no record that would refuse the corrected command.
    """
    check_identity(Path(out_dir) / INPUTS_FILE, inputs, f"the search in {out_dir}", record=record,
                   fix="give another --out for a new search (or the same inputs to resume this one)")


def search_inputs(objective_inputs: dict, n_eval: int, init: Strategy, config: SearchConfig,
                  alternatives: Sequence[Strategy] = ()) -> dict:
    """What a generation search directory records: the objective's inputs, N, the steps T and the method
    (for CMA-ES its settings and any alternative starts)."""
    cma = {"population": config.population, "sigma": config.sigma, "validation_sets": config.validation_sets,
           **({"free": list(config.free)} if config.free else {}),
           **({"alternatives": [a.to_dict() for a in alternatives]} if alternatives else {})
           } if config.method == "cma" else {}
    return {**objective_inputs, "n_eval": n_eval, "steps": init.steps, "method": config.method, **cma}


@dataclass
class SearchState:
    """Everything needed to resume: position, momentum, step count and budget so far."""

    step: int
    x: list[float]
    velocity: list[float]
    images: int = 0
    evaluations: int = 0
    seconds: float = 0.0
    best_fid: float = float("inf")
    best_x: list[float] = field(default_factory=list)


class StrategySearch:
    """Runs and records a generation-strategy search in ``out_dir``.

    ``out_dir`` holds ``state.json``, ``history.csv``, ``strategy.yaml`` (the
    current point), ``best_strategy.yaml``, ``inputs.json`` (``inputs``, the
    objective's description, with N, steps and method) and, at the end,
    ``search.png``.
    """

    def __init__(self, objective: Objective, init: Strategy, config: SearchConfig, out_dir: str | Path,
                 n_eval: int, inputs: dict | None = None) -> None:
        self.objective, self.config, self.n_eval = objective, config, n_eval
        self.inputs = search_inputs(inputs or {}, n_eval, init, config)
        self.layout = Layout(init.steps)
        self.out = Path(out_dir)
        self.init = init
        bounded = self.layout.bounded
        self.h = np.where(bounded, config.fd_step_bounded, config.fd_step_unbounded)
        self.lr = np.where(bounded, config.lr_bounded, config.lr_unbounded)

    # -- persistence
    @property
    def state_file(self) -> Path:
        return self.out / "state.json"

    def load_or_start(self) -> SearchState:
        if self.state_file.exists():
            try:
                state = SearchState(**json.loads(self.state_file.read_text()))
            except (ValueError, TypeError) as exc:
                raise AutonatError(f"{self.state_file} is corrupt ({str(exc).splitlines()[0]}); move it away "
                                   "to start the search again, or use another --out") from exc
            if len(state.x) != self.layout.dim:
                raise AutonatError(f"{self.state_file} holds a search over {len(state.x)} parameters, not "
                                   f"{self.layout.dim} ({self.init.steps} steps); use another --out")
            return state
        x = project(self.layout.flatten(self.init), self.layout)
        return SearchState(step=0, x=x.tolist(), velocity=[0.0] * len(x), best_x=x.tolist())

    def _save(self, state: SearchState, row: dict | None) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        if row is not None:
            self._append_history(row)
        save_strategy(self.layout.unflatten(np.asarray(state.x)), self.out / "strategy.yaml")
        save_strategy(self.layout.unflatten(np.asarray(state.best_x)), self.out / "best_strategy.yaml")
        write_text(self.state_file, json.dumps(asdict(state)))

    def _append_history(self, row: dict) -> None:
        path = self.out / "history.csv"
        rows = []
        if path.exists():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) < row["step"]]
        write_csv(path, [*rows, row])

    # -- one step
    def _f(self, x: np.ndarray, seed: int) -> float:
        return float(self.objective(self.layout.unflatten(x), seed))

    def step(self, state: SearchState) -> SearchState:
        cfg = self.config
        t0 = time.time()
        x, v = np.asarray(state.x), np.asarray(state.velocity)
        seed_of = lambda j: eval_seed(cfg.seed, state.step, j, cfg.common_random_numbers)  # noqa: E731
        if cfg.method == "fd":
            grad, fx, n = fd_gradient(self._f, x, self.h, seed_of)
        else:
            rng = np.random.default_rng([cfg.seed, state.step, 7])
            grad, fx, n = spsa_gradient(self._f, x, self.h, seed_of, rng)
        v = cfg.momentum * v - self.lr * grad
        new_x = project(x + v, self.layout)
        best = fx < state.best_fid
        state = SearchState(step=state.step + 1, x=new_x.tolist(), velocity=v.tolist(),
                            images=state.images + n * self.n_eval, evaluations=state.evaluations + n,
                            seconds=state.seconds + time.time() - t0,
                            best_fid=fx if best else state.best_fid, best_x=x.tolist() if best else state.best_x)
        row = {"step": state.step, "fid": fx, "images": state.images, "evaluations": state.evaluations,
               "seconds": round(state.seconds, 2), "grad_norm": float(np.linalg.norm(grad))}
        self._save(state, row)
        return state

    def run(self, progress: bool = True, stop: Callable[[], bool] | None = None) -> SearchState:
        """Step until ``config.steps`` (resuming from ``state.json``); ``stop()`` ends early at a boundary."""
        with run_lock(self.out):
            check_search_inputs(self.out, self.inputs)
            return self._run(progress, stop)

    def _run(self, progress: bool, stop: Callable[[], bool] | None) -> SearchState:
        from tqdm import tqdm

        state = self.load_or_start()
        if not self.state_file.exists():
            self._save(state, None)
        bar = tqdm(total=self.config.steps, initial=state.step, desc=f"search ({self.config.method})",
                   disable=not progress, dynamic_ncols=True)
        while state.step < self.config.steps:
            state = self.step(state)
            bar.update(1)
            bar.set_postfix(fid=f"{self.history()[-1]['fid']:.3f}", images=state.images)
            if stop is not None and stop():
                break
        bar.close()
        return state

    def history(self) -> list[dict]:
        path = self.out / "history.csv"
        if not path.exists():
            return []
        with open(path, newline="") as f:
            return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]

    def final_strategy(self) -> Strategy:
        return load_strategy(self.out / "strategy.yaml")
