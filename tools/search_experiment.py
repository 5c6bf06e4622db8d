"""Demo-scale evidence for the generation-strategy searches (README, "Strategy search at demo scale").

For each step count T:

1. the search objective's seed-to-seed spread: AutoNAT's initialisation scored
   on four seed sets at the search's N (``noise.json``);
2. each search method starts from AutoNAT's initialisation with at most
   ``--budget`` generated images (validation images included): ``cma``
   (CMA-ES over the nine-number schedule family, common random numbers, best
   by validation), ``cma-priced`` (the same on FID + ``--price`` per forward
   pass), ``fd`` (the paper's finite differences with CRN, its final point);
3. the MaskGIT cosine heuristic, AutoNAT's initialisation, this project's
   earlier start (``guided-ramps``) and every search result are scored against
   the held-out digits on three fresh seed sets never used by any search
   (N = ``--n-final`` each).

Every stage is cached in ``--out`` (searches resume, scores are kept), so the
script can be stopped, rerun, or run for different T in parallel processes.
``--curve`` adds FID (one fresh seed set) against forward passes per image for
T = 2..16 and writes the quality-per-compute PNG; ``--shipped FILE ...`` adds
strategy files (the demo's searched strategies) to the curve as their own
points, and with ``--methods`` given no names the curve is drawn without
running any search. ``--report`` prints the table from the cache only.

    python tools/search_experiment.py --steps 2 4 8 --out runs/search_exp
    python tools/search_experiment.py --steps 2 4 8 --out runs/search_exp --curve --report \\
        --png docs/figures/quality_per_compute.png
    python tools/search_experiment.py --methods --curve --out runs/search_exp \\
        --shipped autonat/assets/demo/strategy_T2.yaml autonat/assets/demo/strategy_T4.yaml \\
        autonat/assets/demo/strategy_T8.yaml --png docs/figures/quality_per_compute.png
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from autonat.cli.main import run_reporting_errors
from autonat.io.atomic import write_text
from autonat.search.cma import CMASearch
from autonat.search.generation import Layout, SearchConfig, StrategySearch
from autonat.search.measure import PricedObjective, forward_passes, load_or_measure_noise
from autonat.search.objective import FIDObjective
from autonat.strategy.choice import strategy_by_name
from autonat.strategy.core import autonat_init
from autonat.strategy.family import free_parameters
from autonat.strategy.files import load_strategy, save_strategy
from autonat.strategy.zoo import build_strategy

FRESH_SEEDS = (20_001, 20_002, 20_003)  # final comparison only; no search ever draws them
BASELINES = ("cosine", "autonat-init", "guided-ramps")
METHODS = ("cma", "cma-priced", "fd")
CURVE_STEPS = (2, 3, 4, 6, 8, 12, 16)


# --------------------------------------------------------------------------- searches
def run_search(method: str, steps: int, objective, args, out: Path) -> dict:
    """One search from AutoNAT's initialisation within the image budget; its result strategy and cost
    (``seconds``: the search's own recorded time, so a resumed search reports what it took in all)."""
    init = autonat_init(steps)
    if method.startswith("cma"):
        if method == "cma-priced":
            objective = PricedObjective(objective, args.price)
        per_generation = args.population + args.validation_sets  # candidates + the validation of the mean
        starts = (1 + len(args.also_start)) * args.validation_sets  # the start and the alternatives, validated
        generations = max(1, (args.budget // args.n_eval - starts) // per_generation)
        cfg = SearchConfig(steps=generations, method="cma", seed=args.seed, population=args.population,
                           sigma=args.sigma, validation_sets=args.validation_sets, free=free_parameters(args.free))
        alternatives = [strategy_by_name(name, steps, "--also-start") for name in args.also_start]
        search = CMASearch(objective, init, cfg, out, args.n_eval, alternatives=alternatives)
        state = search.run(progress=False)
        n_eval = args.n_eval
    else:
        evals = Layout(steps).dim + 1  # one forward-difference step
        n_eval = min(args.n_eval, args.budget // evals)
        cfg = SearchConfig(steps=max(1, args.budget // (evals * n_eval)), method="fd", seed=args.seed)
        search = StrategySearch(objective if n_eval == args.n_eval else _objective(args, n_eval), init, cfg, out,
                                n_eval)
        state = search.run(progress=False)
    return {"strategy": search.final_strategy(), "images": state.images, "evaluations": state.evaluations,
            "iterations": state.step, "n_eval": n_eval, "seconds": round(state.seconds, 1)}


def _objective(args, n_eval: int):
    extra = {} if args.metric == "fid" else {"metric": args.metric}
    return FIDObjective(args.checkpoint, args.search_reference, n_eval, **extra)


# --------------------------------------------------------------------------- scores (cached)
class Scores:
    """FIDs on the fresh seed sets, kept in ``scores.json``: ``get(key, strategy, seeds)``. Each key records
    the strategy it scored; a key whose strategy changed (another search result in the same ``--out``) is
    scored again."""

    def __init__(self, path: Path, final: FIDObjective) -> None:
        self.path, self.final = path, final
        self.data = json.loads(path.read_text()) if path.exists() else {}

    def get(self, key: str, strategy, seeds=FRESH_SEEDS) -> list[float]:
        identity = strategy.identity()
        if self.data.get(key, {}).get("strategy") != identity:
            self.data[key] = {"strategy": identity}
        values = self.data[key]
        for s in seeds:
            if str(s) not in values:
                values[str(s)] = self.final(strategy, s)
                write_text(self.path, json.dumps(self.data, indent=1))
        return [values[str(s)] for s in seeds]


def run_steps(steps: int, args, final: FIDObjective) -> dict:
    out = Path(args.out) / f"T{steps}"
    objective = _objective(args, args.n_eval)
    noise = load_or_measure_noise(out / "noise", objective, autonat_init(steps), args.n_eval, k=4, base_seed=args.seed)
    print(f"T={steps}: search objective ({args.metric}, N={args.n_eval}, {args.search_reference}) at AutoNAT's "
          f"initialisation {noise.mean:.3f}, {noise.describe()}", flush=True)
    scores = Scores(out / "scores.json", final)
    row = {"steps": steps, "noise": {"n_eval": noise.n_eval, "std": noise.std, "mean": noise.mean}, "strategies": {}}
    for name in BASELINES:
        strategy = build_strategy(name, steps)
        row["strategies"][name] = {"fid": scores.get(name, strategy), "passes": forward_passes(strategy)}
    for method in args.methods:
        r = run_search(method, steps, objective, args, out / method)
        save_strategy(r.pop("strategy"), out / f"{method}.yaml")
        strategy = load_strategy(out / f"{method}.yaml")
        row["strategies"][method] = {"fid": scores.get(method, strategy), "passes": forward_passes(strategy), **r}
        print(f"T={steps} {method}: {r['images']} images, {r['seconds']:.0f} s; fresh FID "
              f"{np.mean(row['strategies'][method]['fid']):.3f}", flush=True)
    write_text(out / "results.json", json.dumps(row, indent=1))
    return row


# --------------------------------------------------------------------------- report
def print_table(rows: list[dict], n_final: int) -> None:
    print(f"\nFID against the held-out digits, mean ± std over {len(FRESH_SEEDS)} fresh seed sets of N={n_final}")
    print("| T | strategy | FID | vs AutoNAT init | gap / seed std | passes per image | search budget | wall time |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        init = row["strategies"]["autonat-init"]["fid"]
        for name, r in row["strategies"].items():
            m, s = np.mean(r["fid"]), np.std(r["fid"], ddof=1)
            rel = f"{100 * (m / np.mean(init) - 1):+.1f}%"
            std = max(s, np.std(init, ddof=1))
            gap = f"{(np.mean(init) - m) / std:.1f}" if name != "autonat-init" else "-"
            budget = (f"{r['images']:,} images ({r['evaluations']} evaluations of N={r['n_eval']})"
                      if "images" in r else "-")
            wall = f"{r['seconds']:.0f} s" if "seconds" in r else "-"
            cells = [row["steps"], name, f"{m:.3f} ± {s:.3f}", rel, gap, r["passes"], budget, wall]
            print("| " + " | ".join(map(str, cells)) + " |")
    print("\nsearch objective noise (AutoNAT init, 4 seed sets): " + "; ".join(
        f"T={r['steps']}: N={r['noise']['n_eval']} std {r['noise']['std']:.3f} (mean {r['noise']['mean']:.3f})"
        for r in rows))


def run_curve(args, final: FIDObjective, rows: list[dict]) -> None:
    """FID (first fresh seed set) against forward passes per image, T = 2..16, and the PNG."""
    from autonat.plots import plot_quality_per_compute

    scores = Scores(Path(args.out) / "curve.json", final)
    known = {(name, r["steps"]): r["strategies"][name]["fid"][0] for r in rows for name in r["strategies"]}
    curves = {}
    for name in BASELINES:
        curves[name] = [(forward_passes(build_strategy(name, t)), known.get((name, t)) or
                         scores.get(f"{name}-T{t}", build_strategy(name, t), FRESH_SEEDS[:1])[0]) for t in CURVE_STEPS]
        print(f"curve {name}: " + ", ".join(f"T={t} {p} passes FID {f:.3f}"
                                            for t, (p, f) in zip(CURVE_STEPS, curves[name])))
    searched = tuple(f"searched ({m})" for m in args.methods)
    for method, label in zip(args.methods, searched):
        curves[label] = [(r["strategies"][method]["passes"], r["strategies"][method]["fid"][0]) for r in rows
                         if method in r["strategies"]]
    if args.shipped:
        label = "shipped (searched)"
        searched += (label,)
        curves[label] = []
        for path in args.shipped:
            strategy = load_strategy(path)
            passes = forward_passes(strategy)
            fid = scores.get(f"file:{Path(path).resolve()}", strategy, FRESH_SEEDS[:1])[0]
            curves[label].append((passes, fid))
            print(f"curve {path}: T={strategy.steps} {passes} passes FID {fid:.3f}")
    plot_quality_per_compute({k: v for k, v in curves.items() if v}, args.png, searched,
                             ylabel=f"FID (held-out digits, N={args.n_final})")
    print(f"curve written to {args.png}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="autonat/assets/demo/generator")
    p.add_argument("--steps", type=int, nargs="+", default=[2, 4, 8])
    p.add_argument("--methods", nargs="*", default=list(METHODS), choices=METHODS,
                   help="search methods to run (none: no search; with --curve, the curve alone)")
    p.add_argument("--n-eval", type=int, default=100, help="samples per objective evaluation inside a search")
    p.add_argument("--n-final", type=int, default=1000, help="samples per FID on each fresh seed set")
    p.add_argument("--budget", type=int, default=3000, help="generated images per search, validation included")
    p.add_argument("--population", type=int, default=6)
    p.add_argument("--sigma", type=float, default=1.0)
    p.add_argument("--validation-sets", type=int, default=1, help="cma: validation seed sets per validated mean")
    p.add_argument("--also-start", nargs="*", default=[], metavar="NAME",
                   help="cma: zoo schedules or strategy files of T steps validated beside AutoNAT's initialisation; "
                        "the search starts from the best")
    p.add_argument("--free", default="all", help="cma: all, coarse, no-cfg, temperatures or comma-separated "
                   "family parameters")
    p.add_argument("--price", type=float, default=0.01, help="cma-priced: objective units per forward pass")
    p.add_argument("--metric", choices=("fid", "kid"), default="fid", help="the search objective")
    p.add_argument("--search-reference", default="demo:train")
    p.add_argument("--reference", default="demo:heldout")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/search_exp")
    p.add_argument("--curve", action="store_true", help="also FID against forward passes for T = 2..16")
    p.add_argument("--png", default="docs/figures/quality_per_compute.png")
    p.add_argument("--shipped", nargs="*", default=[], metavar="FILE",
                   help="--curve: strategy files drawn as their own points (e.g. the demo's strategy_T*.yaml)")
    p.add_argument("--report", action="store_true", help="print the table from the cached results only")
    p.add_argument("--debug", action="store_true", help="show full tracebacks")
    args = p.parse_args(argv)
    return run_reporting_errors(lambda: run(args), args.debug, p.prog)


def run(args) -> None:
    final = FIDObjective(args.checkpoint, args.reference, args.n_final)
    if args.curve and not args.methods:
        rows = []  # the curve alone: baselines and --shipped files, no search
    elif args.report:
        rows = [json.loads((Path(args.out) / f"T{t}" / "results.json").read_text()) for t in args.steps]
    else:
        rows = [run_steps(t, args, final) for t in args.steps]
    if args.curve:
        run_curve(args, final, rows)
    if rows:
        print_table(rows, args.n_final)


if __name__ == "__main__":
    sys.exit(main())
