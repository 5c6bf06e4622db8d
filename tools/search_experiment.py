"""Demo-scale evidence for AutoNAT's generation-strategy search (README, "Strategy search").

For each step count T, every search variant (finite differences or SPSA,
with or without common random numbers) runs from AutoNAT's initialisation
under the same generated-image budget. Along the way the current strategy
is scored on a fixed validation seed set (not counted in the budget), which
gives "images needed to reach a given FID". At the end the searched
strategies and the MaskGIT cosine heuristic are scored on fresh seed sets
never used by any search, and the table is printed and saved as JSON.

    python tools/search_experiment.py --checkpoint autonat/assets/demo/generator --steps 4 8 --out runs/search_exp
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from autonat.io.atomic import write_text
from autonat.search.generation import SearchConfig, StrategySearch
from autonat.search.objective import FIDObjective
from autonat.strategy.core import autonat_init, maskgit_cosine
from autonat.strategy.files import save_strategy

VARIANTS = {
    "fd": dict(method="fd", common_random_numbers=False),
    "fd-crn": dict(method="fd", common_random_numbers=True),
    "spsa": dict(method="spsa", common_random_numbers=False),
    "spsa-crn": dict(method="spsa", common_random_numbers=True),
}
VALIDATION_SEED = 10_000  # scored along the search; never used by the search itself
FRESH_SEEDS = (20_001, 20_002, 20_003)  # final comparison only


def run_variant(objective: FIDObjective, validate: FIDObjective, steps: int, name: str, args, out: Path) -> dict:
    evals = 2 if VARIANTS[name]["method"] == "spsa" else 1 + (2 * steps - 2) + 2 * steps
    iterations = max(1, args.budget // (evals * args.n_eval))
    cfg = SearchConfig(steps=iterations, seed=args.seed, **VARIANTS[name])
    search = StrategySearch(objective, autonat_init(steps), cfg, out, args.n_eval)
    state = search.load_or_start()
    curve = [(0, validate(search.layout.unflatten(np.asarray(state.x)), VALIDATION_SEED))]
    t0 = time.time()
    while state.step < cfg.steps:
        state = search.step(state)
        if state.images - curve[-1][0] >= args.validate_every or state.step == cfg.steps:
            curve.append((state.images, validate(search.layout.unflatten(np.asarray(state.x)), VALIDATION_SEED)))
            print(f"  T={steps} {name}: {state.images} images, validation FID {curve[-1][1]:.3f}", flush=True)
    return {"variant": name, "iterations": iterations, "images": state.images, "seconds": round(time.time() - t0, 1),
            "validation_curve": curve, "strategy": search.final_strategy()}


def images_to_reach(curve: list[tuple[int, float]], target: float) -> int | None:
    return next((images for images, fid in curve if fid <= target), None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--steps", type=int, nargs="+", default=[4, 8])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--n-eval", type=int, default=250, help="samples per FID inside the search")
    p.add_argument("--n-final", type=int, default=1000, help="samples per FID on the fresh seed sets")
    p.add_argument("--budget", type=int, default=16000, help="generated images per search")
    p.add_argument("--validate-every", type=int, default=2000)
    p.add_argument("--search-reference", default="demo:train")
    p.add_argument("--reference", default="demo:heldout")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/search_exp")
    args = p.parse_args()
    out = Path(args.out)
    objective = FIDObjective(args.checkpoint, args.search_reference, args.n_eval)
    validate = FIDObjective(args.checkpoint, args.reference, args.n_final)
    results = []
    for steps in args.steps:
        runs = [run_variant(objective, validate, steps, v, args, out / f"T{steps}" / v) for v in args.variants]
        heuristic = maskgit_cosine(steps)
        start = runs[0]["validation_curve"][0][1]
        best_end = min(r["validation_curve"][-1][1] for r in runs)
        target = start - 0.5 * (start - best_end)  # half of the largest improvement any variant reached
        row = {"steps": steps, "heuristic": [validate(heuristic, s) for s in FRESH_SEEDS],
               "init": [validate(autonat_init(steps), s) for s in FRESH_SEEDS], "target_fid": target}
        for r in runs:
            save_strategy(r["strategy"], out / f"T{steps}" / f"{r['variant']}.yaml")
            row[r["variant"]] = {"fresh": [validate(r["strategy"], s) for s in FRESH_SEEDS],
                                 "images_to_target": images_to_reach(r["validation_curve"], target),
                                 **{k: r[k] for k in ("iterations", "images", "seconds", "validation_curve")}}
        results.append(row)
        write_text(out / "results.json", json.dumps(results, indent=1))
        print_row(row, args.variants)


def print_row(row: dict, variants: list[str]) -> None:
    fmt = lambda v: f"{np.mean(v):.2f} ± {np.std(v):.2f}"  # noqa: E731
    print(f"\nT={row['steps']}  (FID vs held-out, N per seed, 3 fresh seeds, mean ± std)")
    print(f"  MaskGIT cosine        {fmt(row['heuristic'])}")
    print(f"  AutoNAT init          {fmt(row['init'])}")
    for v in variants:
        r = row[v]
        print(f"  searched ({v:8s})   {fmt(r['fresh'])}   budget {r['images']} images, {r['seconds']:.0f} s; "
              f"images to FID {row['target_fid']:.2f}: {r['images_to_target']}")


if __name__ == "__main__":
    main()
