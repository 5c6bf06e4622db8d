"""At which N does a search objective see the difference between two strategies? (README, strategy search).

A search can only find what its objective resolves. FID is biased at small N
by an amount that depends on the samples' covariance, so a strategy that is
better at N = 1,000 may look no better, or worse, at the N a search affords.
This script draws ``--seed-sets`` seed sets of ``--n-max`` images for each
strategy (the same seeds for both: common random numbers, as in a search),
and for each N of ``--sizes`` scores the first N images of every set
(class-balanced, because labels cycle over the classes). It prints, per N:

* the objective at the baseline, mean ± std over the seed sets;
* the other strategy's paired difference in percent of the baseline;
* the paired signal-to-noise ratio ``mean(diff) / std(diff)``: about 1 means
  one evaluation at that N ranks the two strategies right 3 times in 4; a
  search comparing candidates one evaluation each needs well above 1.

The features of every set are cached in ``--out`` (an .npz per strategy), so
more sizes can be scored without generating again.

    python tools/objective_resolution.py --steps 4 \\
        --strategy init:remask_start=3,mask_b=1.25,sample_start=1.1,sample_end=0.9 init:remask_start=3
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from autonat.cli.main import run_reporting_errors
from autonat.errors import AutonatError
from autonat.evaluation.embed import embed
from autonat.evaluation.images import GeneratedImages
from autonat.evaluation.metrics import compute_metrics
from autonat.io.atomic import atomic_path
from autonat.search.objective import FIDObjective
from autonat.strategy.choice import strategy_by_name
from autonat.strategy.family import ScheduleFamily, autonat_init_point


def strategy_of(name: str, steps: int, flag: str = "--strategy"):
    """A zoo name, a strategy file, or ``init:key=value,...``: AutoNAT's initialisation as a point of the
    schedule family with the named family parameters changed (``init:remask_start=3,sample_end=0.9``)."""
    if name.startswith("init:"):
        changes = dict(item.split("=", 1) for item in name[len("init:"):].split(",") if "=" in item)
        unknown = sorted(set(changes) - set(ScheduleFamily.names()))
        if unknown or not changes:
            raise AutonatError(f"{name}: give key=value pairs of {', '.join(ScheduleFamily.names())}")
        return replace(autonat_init_point(steps), **{k: float(v) for k, v in changes.items()}).strategy(steps)
    return strategy_by_name(name, steps, flag)


def features(objective: FIDObjective, strategy, seeds: list[int], cache: Path) -> np.ndarray:
    """``[seed sets, n_max, D]`` FID features of ``strategy``'s samples, from ``cache`` when it holds them
    (the same strategy, seeds and N)."""
    recipe = strategy.identity()
    if cache.exists():
        with np.load(cache) as z:
            if (list(z["seeds"]) == seeds and z["features"].shape[1] == objective.n_eval
                    and str(z["strategy"]) == recipe):
                return z["features"]
    extractor = objective.evaluator.extractor
    out = np.stack([embed(GeneratedImages(objective.pipeline, strategy, objective.labels, s, objective.options),
                          extractor, progress=False)[extractor.layers["fid"]].numpy() for s in seeds])
    cache.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache) as tmp, open(tmp, "wb") as f:
        np.savez(f, features=out, seeds=np.asarray(seeds), strategy=np.asarray(recipe))
    return out


def fid(objective: FIDObjective, feats: np.ndarray) -> float:
    import torch

    layers = objective.evaluator.extractor.layers
    return compute_metrics({layers["fid"]: torch.from_numpy(feats)}, objective.evaluator.reference, layers,
                           ("fid",))["fid"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="autonat/assets/demo/generator")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--baseline", default="autonat-init", help="zoo name or strategy file")
    p.add_argument("--strategy", nargs="+", required=True,
                   help="zoo names, strategy files or init:key=value,... to compare")
    p.add_argument("--reference", default="demo:train", help="the search's reference")
    p.add_argument("--n-max", type=int, default=500)
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 200, 250, 500])
    p.add_argument("--seed-sets", type=int, default=4)
    p.add_argument("--out", default="runs/objective_resolution")
    p.add_argument("--debug", action="store_true", help="show full tracebacks")
    args = p.parse_args(argv)
    return run_reporting_errors(lambda: run(args), args.debug, p.prog)


def run(args) -> None:
    names = [args.baseline, *args.strategy]
    strategies = [strategy_of(n, args.steps, "--baseline" if i == 0 else "--strategy") for i, n in enumerate(names)]
    objective = FIDObjective(args.checkpoint, args.reference, args.n_max)
    seeds = list(range(1, args.seed_sets + 1))
    feats = {n: features(objective, s, seeds, Path(args.out) / f"T{args.steps}_{i}.npz")
             for i, (n, s) in enumerate(zip(names, strategies))}
    print(f"T={args.steps}, FID against {args.reference}, {args.seed_sets} seed sets (common to all strategies)")
    for i, n in enumerate(args.strategy, 1):
        print(f"  strategy {i}: {n}")
    print("| N | baseline | " + " | ".join(f"strategy {i}: diff, paired SNR" for i in range(1, len(names))) + " |")
    for size in sorted(s for s in args.sizes if s <= args.n_max):
        base = np.array([fid(objective, f[:size]) for f in feats[args.baseline]])
        cells = [str(size), f"{base.mean():.3f} ± {base.std(ddof=1):.3f}"]
        for n in args.strategy:
            diff = np.array([fid(objective, f[:size]) for f in feats[n]]) - base
            cells.append(f"{100 * diff.mean() / base.mean():+.1f}%, {diff.mean() / diff.std(ddof=1):+.1f}")
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
