"""AutoNAT's training-strategy search and its alternation with the generation search.

The training strategy is the Beta(alpha, beta) distribution of the mask
ratio. The paper tunes it by greedy line search: one coordinate at a time,
step multiplicatively in the direction that lowers FID while it keeps
lowering it. Every candidate is a short training run scored by FID under
the current generation strategy, so a trial is expensive; trials are
recorded in ``trials.json`` and never repeated, which also makes an
interrupted search resume where it stopped. The directory records what
the trials are made from (recipe, training steps, reference, N) on its first
run and refuses to resume with anything else, and it is locked while a search
runs in it.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from autonat.errors import AutonatError
from autonat.io.atomic import write_text
from autonat.io.config import read_json
from autonat.io.lock import run_lock
from autonat.search.generation import check_search_inputs

#: ``train_and_score(alpha, beta) -> FID`` of a model trained with Beta(alpha, beta).
TrialFn = Callable[[float, float], float]


@dataclass
class LineSearchConfig:
    """Greedy coordinate line search over (alpha, beta)."""

    alpha: float = 12.0
    beta: float = 3.0
    factor: float = 1.5  # multiplicative step: each coordinate is tried times factor and divided by it
    max_moves: int = 3  # per coordinate and direction
    min_value: float = 0.1

    def __post_init__(self) -> None:
        if not self.factor > 1:
            raise AutonatError(f"the line search's factor must be above 1 (each coordinate is multiplied and "
                               f"divided by it), got {self.factor}; e.g. --factor 1.5")


@dataclass
class Trial:
    alpha: float
    beta: float
    fid: float


class TrainingStrategySearch:
    """Line search whose trials are cached in ``out_dir/trials.json``.

    ``inputs`` describes what a trial is made from (recipe, training steps,
    reference, N); ``out_dir/inputs.json`` records it on the first run.
    """

    def __init__(self, trial: TrialFn, config: LineSearchConfig, out_dir: str | Path,
                 inputs: dict | None = None) -> None:
        self.trial_fn, self.config, self.out = trial, config, Path(out_dir)
        self.inputs = inputs or {}
        self.trials: list[Trial] = []
        if self.file.exists():
            self.trials = [Trial(**t) for t in read_json(self.file, "move it away to run the trials again")]

    @property
    def file(self) -> Path:
        return self.out / "trials.json"

    def score(self, alpha: float, beta: float) -> float:
        alpha, beta = round(alpha, 6), round(beta, 6)
        for t in self.trials:
            if (t.alpha, t.beta) == (alpha, beta):
                return t.fid
        fid = float(self.trial_fn(alpha, beta))
        self.trials.append(Trial(alpha, beta, fid))
        self.out.mkdir(parents=True, exist_ok=True)
        write_text(self.file, json.dumps([asdict(t) for t in self.trials], indent=1))
        return fid

    def run(self) -> Trial:
        """Search alpha, then beta; returns the best trial."""
        with run_lock(self.out):
            check_search_inputs(self.out, self.inputs)
            return self._run()

    def _run(self) -> Trial:
        cfg = self.config
        point = {"alpha": cfg.alpha, "beta": cfg.beta}
        best = self.score(**point)
        for coord in ("alpha", "beta"):
            for direction in (cfg.factor, 1.0 / cfg.factor):
                moved = False
                for _ in range(cfg.max_moves):
                    candidate = {**point, coord: max(cfg.min_value, point[coord] * direction)}
                    fid = self.score(**candidate)
                    if fid >= best:
                        break
                    point, best, moved = candidate, fid, True
                if moved:
                    break  # this direction helped; the opposite one need not be tried
        return Trial(round(point["alpha"], 6), round(point["beta"], 6), best)
