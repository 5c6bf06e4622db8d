"""``autonat search generation | training | alternate``: parsing and wiring of AutoNAT's searches."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from autonat.cli.args import (
    add_caption_file_argument,
    add_checkpoint_argument,
    add_device_argument,
    add_feature_arguments,
    add_force_argument,
    add_generation_arguments,
    add_sampling_arguments,
    add_strategy_arguments,
    chosen_strategy,
    extractor_weights,
    nonnegative_float,
    nonnegative_int,
    positive_int,
    sampler_options,
)
from autonat.errors import AutonatError
from autonat.search.objective import FIDObjective


def _search_config(args):
    from autonat.search.generation import SearchConfig
    from autonat.strategy.family import free_parameters

    return SearchConfig(steps=args.iterations, method=args.method, common_random_numbers=not args.no_crn,
                        seed=args.seed, population=args.population, sigma=args.sigma,
                        validation_sets=args.validation_sets, free=free_parameters(args.free))


def _alternative_starts(args, steps: int) -> list:
    """--also-start: zoo schedule names (built for the start's T) or strategy files of the start's T."""
    from autonat.strategy.choice import strategy_by_name

    names = getattr(args, "also_start", [])
    if names and args.method != "cma":
        raise AutonatError("--also-start is an option of --method cma; drop it or add --method cma")
    return [strategy_by_name(name, steps, "--also-start") for name in names]


def _initial_strategy(args):
    """The search's starting point: --strategy FILE (or the old --init), else --schedule (AutoNAT's initialisation)."""
    strategy = chosen_strategy(args, default_schedule=START)
    if strategy.reuses:
        raise AutonatError("the search does not tune reuse schedules (cfg_reuse, deep_reuse) and would drop them; "
                           "start from a strategy without them and add them to the result")
    return strategy


def _objective(args, checkpoint) -> FIDObjective:
    """FID of ``checkpoint``'s samples under the command's reference, features, sampling flags and device."""
    from autonat.runtime import default_device

    return FIDObjective(checkpoint, args.reference, args.n_eval, args.feature_extractor, _weights(args),
                        default_device(args.device), args.batch_size, tokenizer=getattr(args, "tokenizer", None),
                        tokenizer_config=getattr(args, "tokenizer_config", None), precision=args.precision,
                        options=sampler_options(args), force=args.force, metric=args.metric,
                        captions=args.captions, text_encoder=getattr(args, "text_encoder", None))


def _weights(args) -> str | None:
    """The chosen feature extractor's weights flag (the deprecated ``--weights`` still works, with a note)."""
    import sys

    from autonat.evaluation.reference import choose_extractor

    if args.weights:
        print("autonat: note: --weights is deprecated; use --inception-weights or --digit-weights", file=sys.stderr)
        return args.weights
    return extractor_weights(args, choose_extractor(args.feature_extractor, args.reference))


def _default_reference(args, checkpoint=None) -> None:
    """Fill in ``--reference``: ``demo:train`` only for a model of the demo digits, else an error."""
    from autonat.evaluation.domain import choose_reference, is_demo_model, recipe_is_demo

    if args.reference is None:
        if checkpoint is not None:
            demo, model = is_demo_model(checkpoint), str(checkpoint)
        else:
            from autonat.cli.args import read_recipe

            demo, model = recipe_is_demo(read_recipe(args)), args.config
        args.reference = choose_reference(None, demo, model)


def generation_search(checkpoint, init, args, out: Path):
    """Measure the objective's seed-to-seed noise at the start (``noise.json``), then run the search."""
    from autonat.io.lock import run_lock
    from autonat.plots import plot_search
    from autonat.search.cma import CMASearch
    from autonat.search.generation import StrategySearch, check_search_inputs, search_inputs
    from autonat.search.measure import PricedObjective, load_or_measure_noise
    from autonat.search.objective import objective_inputs

    config = _search_config(args)
    inputs = {**objective_inputs(checkpoint, args.reference, args.captions), "metric": args.metric,
              "price": args.price}
    alternatives = _alternative_starts(args, init.steps)
    with run_lock(out):  # locked and checked before the reference and the model are loaded
        check_search_inputs(out, search_inputs(inputs, args.n_eval, init, config, alternatives),
                            record=False)  # run() records
        objective = _objective(args, checkpoint)
        if args.price:
            objective = PricedObjective(objective, args.price)
        if config.method == "cma":
            search = CMASearch(objective, init, config, out, args.n_eval, inputs=inputs, alternatives=alternatives)
        else:
            search = StrategySearch(objective, init, config, out, args.n_eval, inputs=inputs)
        search.noise = None
        if args.noise_seeds > 1:
            search.noise = load_or_measure_noise(out, objective, init, args.n_eval, args.noise_seeds, args.seed)
            print(f"objective ({_objective_name(args)}, N={args.n_eval}) at the start: {search.noise.mean:.3f}, "
                  f"{search.noise.describe()}", flush=True)
        state = run_stoppable(search)
    plot_search(search.history(), search.final_strategy(), out / "search.png")
    return search, state


def _objective_name(args) -> str:
    name = args.metric.upper()
    return f"{name} + {args.price:g} per forward pass" if args.price else name


def run_stoppable(search):
    """``search.run()``, ending at the next step boundary on SIGTERM / SIGINT with a message and exit 128 + signal.

    Every step's state is already saved (``state.json``), so the same command resumes.
    """
    from autonat.training.loop import StopRequest

    with StopRequest() as stop:
        state = search.run(stop=lambda: stop.signal is not None)
    if stop.signal is not None and state.step < search.config.steps:
        print(f"stopped by {stop.name} after search step {state.step}: state saved in {search.state_file}; "
              "run the same command again to resume", flush=True)
        raise SystemExit(128 + stop.signal)
    return state


# --------------------------------------------------------------------------- commands
#: What only a search directory holds: any one of them marks an earlier search there (which resumes).
SEARCH_FILES = ("inputs.json", "state.json", "evaluations.jsonl", "trials.json", "noise.json", "round_0",
                "strategy.yaml", ".autonat-lock")


def check_search_out(out: str) -> Path:
    """``--out``, checked before any work: new, empty, or an earlier search; a folder of the user's is refused."""
    from autonat.io.atomic import check_output_dir

    return check_output_dir(out, "search", lambda p: any((p / name).exists() for name in SEARCH_FILES))


def run_generation(args) -> None:
    out = check_search_out(args.out)
    _default_reference(args, args.checkpoint)
    search, state = generation_search(args.checkpoint, _initial_strategy(args), args, out)
    hist = search.history()
    noise = f" (seed-to-seed std {search.noise.std:.3f} at N={args.n_eval})" if search.noise else ""
    seeds = "validation-seed" if args.method == "cma" else "training-seed (not a result: score it on fresh seeds)"
    what = f"{seeds} {_objective_name(args)}"
    best = f", best {state.best_value:.3f}" if args.method == "cma" else ""
    print(f"search done: {state.step} steps, {state.evaluations} evaluations, {state.images} images, "
          f"{state.seconds:.0f} s; {what} {hist[0]['fid']:.3f} -> {hist[-1]['fid']:.3f}{best}{noise}")
    if args.method == "cma":  # the result is the validated best; strategy.yaml is CMA-ES's last mean
        if search.noise:
            print(_lead_line(hist[0]["fid"], state.best_value, search.noise.lead_noise(args.validation_sets)))
        files = f"result: {out / 'best_strategy.yaml'} (last CMA-ES mean: {out / 'strategy.yaml'})"
    else:  # the paper's searches end where their last step took them
        files = f"strategy: {out / 'strategy.yaml'} (best seen: {out / 'best_strategy.yaml'})"
    print(f"{files}; plots: {out / 'search.png'}")


def _lead_line(start: float, best: float, spread: float) -> str:
    """How far the result leads the start on the validation seeds, against the std of that lead."""
    lead = start - best
    if lead <= 0:
        return "kept the start: no CMA-ES mean validated better"
    if not spread > 0:  # one noise seed set gives no std (nan)
        return f"the result leads the start by {lead:.3f} on the validation seeds; its noise is unknown " \
               "(--noise-seeds 3 measures it)"
    ratio = lead / spread
    verdict = ("beyond the noise" if ratio >= 2 else
               "within the noise: score the result and the start on fresh seeds, with more images, before trusting "
               "the gain")
    return f"the result leads the start by {lead:.3f} on the validation seeds, {ratio:.1f} x the std of that " \
           f"lead ({spread:.3f}): {verdict}"


def _trial_fn(args, strategy, out: Path):
    """Train a short run with Beta(alpha, beta) and score it under ``strategy``."""
    from autonat.io.config import apply_overrides, load_yaml
    from autonat.training.loop import train_from_recipe

    recipe = load_yaml(args.config)

    def trial(alpha: float, beta: float) -> float:
        run = out / "trials" / f"alpha{alpha:g}_beta{beta:g}"
        d = apply_overrides(recipe, [f"masking.alpha={alpha}", f"masking.beta={beta}",
                                     f"train.steps={args.train_steps}", f"train.out_dir={run}",
                                     f"train.checkpoint_every={args.train_steps}", *args.overrides])
        final = train_from_recipe(d, force=args.force)
        fid = _objective(args, final)(strategy, args.seed)
        print(f"trial Beta({alpha:g}, {beta:g}): FID {fid:.3f}")
        return fid

    return trial


def training_search(args, strategy, out: Path):
    from autonat.search.objective import reference_identity
    from autonat.search.training import LineSearchConfig, TrainingStrategySearch

    cfg = LineSearchConfig(alpha=args.alpha, beta=args.beta, factor=args.factor, max_moves=args.max_moves)
    inputs = {"config": str(Path(args.config).resolve()), "overrides": list(args.overrides),
              "train_steps": args.train_steps, "reference": reference_identity(args.reference), "n_eval": args.n_eval}
    best = TrainingStrategySearch(_trial_fn(args, strategy, out), cfg, out, inputs=inputs).run()
    run = out / "trials" / f"alpha{best.alpha:g}_beta{best.beta:g}" / "checkpoints" / f"step_{args.train_steps}"
    return best, run


def run_training(args) -> None:
    from autonat.strategy.files import load_strategy

    _default_reference(args)
    best, ckpt = training_search(args, load_strategy(args.strategy), check_search_out(args.out))
    print(f"best training strategy: Beta({best.alpha:g}, {best.beta:g}) with FID {best.fid:.3f}; model {ckpt}")


def run_alternate(args) -> None:
    """Rounds of (training-strategy search, then generation-strategy search), as in the paper."""
    from autonat.strategy.files import save_strategy

    out = check_search_out(args.out)
    _default_reference(args)
    strategy = _initial_strategy(args)
    summary = []
    for r in range(args.rounds):
        rdir = out / f"round_{r}"
        best, ckpt = training_search(args, strategy, rdir / "training")
        args.alpha, args.beta = best.alpha, best.beta
        search, state = generation_search(ckpt, strategy, args, rdir / "generation")
        strategy = search.final_strategy()
        summary.append({"round": r, "alpha": best.alpha, "beta": best.beta, "training_fid": best.fid,
                        "generation_fid": search.history()[-1]["fid"], "checkpoint": str(ckpt)})
        print(f"round {r}: Beta({best.alpha:g}, {best.beta:g}), FID {summary[-1]['generation_fid']:.3f}")
    save_strategy(strategy, out / "strategy.yaml")
    from autonat.io.atomic import write_text

    write_text(out / "summary.json", json.dumps(summary, indent=2))
    print(f"final strategy {out / 'strategy.yaml'}; summary {out / 'summary.json'}")


# --------------------------------------------------------------------------- parser
START = "autonat-init"  # the generation search's default starting schedule


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reference",
                   help="FID reference: statistics .npz, images, folder, or demo:<split> (default demo:train, "
                        "allowed only for models of the demo digits)")
    p.add_argument("--n-eval", type=positive_int, default=500, help="samples per FID evaluation")
    add_caption_file_argument(p)
    p.add_argument("--metric", choices=("fid", "kid"), default="fid",
                   help="objective: fid (default) or kid (unbiased at small N; the mean over KID subsets)")
    add_feature_arguments(p)
    p.add_argument("--weights", help=argparse.SUPPRESS)  # deprecated spelling of the two flags above
    p.add_argument("--out", required=True, help="search directory (a search there resumes)")
    add_force_argument(p)


def _generation_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--init", dest="strategy", help=argparse.SUPPRESS)  # deprecated spelling of --strategy
    p.add_argument("--iterations", type=positive_int, default=20, help="search steps")
    p.add_argument("--method", choices=("fd", "spsa", "cma"), default="fd",
                   help="fd (default, the paper's forward differences, 1 + #params FIDs a step), spsa (2 FIDs a "
                        "step) or cma (CMA-ES over a nine-number schedule family, --population FIDs a "
                        "generation plus one on validation seeds; --iterations counts generations)")
    p.add_argument("--no-crn", action="store_true", help="fresh sample seeds for every FID (no common random numbers)")
    p.add_argument("--population", type=positive_int, default=6, help="cma: candidates per generation (default 6)")
    p.add_argument("--sigma", type=float, default=1.0,
                   help="cma: initial step, in units of the family's typical steps (default 1)")
    p.add_argument("--validation-sets", type=positive_int, default=1,
                   help="cma: validation seed sets on which the start and each generation's mean are scored (their "
                        "mean decides the result; default 1)")
    p.add_argument("--also-start", nargs="+", default=[], metavar="NAME",
                   help="cma: also score these zoo schedules (or strategy files) on the validation seeds and "
                        "start from the best of them and the start")
    p.add_argument("--free", default="all",
                   help="cma: the family parameters it moves: all (default), coarse (re-masking temperature and CFG, "
                        "start and end), no-cfg (all but the CFG ramp), temperatures (the re-masking and sampling "
                        "temperature ramps) or names separated by commas; the others keep the start's values")
    p.add_argument("--price", type=nonnegative_float, default=0.0,
                   help="compute-aware objective: add this much per forward pass of an image (unconditional passes "
                        "count at steps whose CFG is on)")
    p.add_argument("--noise-seeds", type=nonnegative_int, default=3,
                   help="seed sets on which the start is scored to measure the objective's seed-to-seed std "
                        "(noise.json; default 3, 0 to skip)")


def _training_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="training recipe YAML")
    p.add_argument("--train-steps", type=positive_int, default=500, help="training budget of each candidate")
    p.add_argument("--alpha", type=float, default=12.0)
    p.add_argument("--beta", type=float, default=3.0)
    p.add_argument("--factor", type=float, default=1.5, help="multiplicative line-search step")
    p.add_argument("--max-moves", type=positive_int, default=3)
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides of the recipe")


def add_search_parser(sub) -> None:
    search = sub.add_parser("search", help="AutoNAT strategy search").add_subparsers(dest="search", required=True)
    p = search.add_parser("generation", help="optimise the four schedule vectors on FID (the paper's finite "
                                             "differences, SPSA, or CMA-ES over a schedule family)")
    add_checkpoint_argument(p)
    add_generation_arguments(p, schedule_default=START)  # the strategy flags give the starting point
    _generation_args(p)
    _common(p)
    p.set_defaults(func=run_generation)

    p = search.add_parser("training", help="line search over the Beta mask-ratio distribution")
    p.add_argument("--strategy", required=True, help="generation strategy used to score candidates")
    _training_args(p)
    add_sampling_arguments(p)
    add_device_argument(p)
    _common(p)
    p.set_defaults(func=run_training)

    p = search.add_parser("alternate", help="alternate training and generation searches")
    p.add_argument("--rounds", type=positive_int, default=2)
    add_strategy_arguments(p, schedule_default=START)
    add_sampling_arguments(p)
    add_device_argument(p)
    _generation_args(p)
    _training_args(p)
    _common(p)
    p.set_defaults(func=run_alternate)
