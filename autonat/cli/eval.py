"""``autonat eval``, ``autonat fid-stats`` and ``autonat train-digit-classifier``: parsing and wiring.

Both evaluation commands run in one process, or in several under
``accelerate launch --multi_gpu --num_processes K tools/eval.py ...`` (on a
machine without CUDA the processes form a CPU/gloo group): each process
generates and embeds its share, and the main process computes the metrics and
appends the record.
"""
from __future__ import annotations

import argparse

from autonat.cli.args import add_force_argument
from autonat.errors import AutonatError

DEFAULT_RESULTS = "outputs/eval.jsonl"


# --------------------------------------------------------------------------- arguments
def _add_feature_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--feature-extractor", default="auto",
                   help="inception-v3-compat (alias inception), autonat-digits (alias digits), or auto: digits "
                        "for demo:<split> references, inception otherwise")
    p.add_argument("--inception-weights", help="local pt_inception-2015-12-05-6726825d.pth (never downloaded)")
    p.add_argument("--digit-weights", help="digit classifier weights (default: the shipped ones)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: accelerate's device)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--checkpoint", help="generator checkpoint: N samples are generated on the fly")
    what.add_argument("--images", help="an image folder or an .npz batch (arr_0 uint8 N x H x W x 3)")
    p.add_argument("--reference", required=True,
                   help="statistics .npz (mu, sigma), images .npz (arr_0), image folder, or demo:train|heldout")
    p.add_argument("--num-samples", "-n", type=int, default=1000, help="samples to generate (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="sample i is seeded from (seed, i)")
    p.add_argument("--tokenizer", help="tokenizer (default: the one recorded in the checkpoint)")
    p.add_argument("--tokenizer-config", help="YAML/JSON for a taming tokenizer checkpoint")
    p.add_argument("--strategy", help="strategy YAML (ours or an official AutoNAT file)")
    p.add_argument("--schedule", default="cosine", help="named schedule when no --strategy (see `autonat strategy list`; default cosine)")
    p.add_argument("--steps", type=int, help="steps for a named schedule (default 8; a file's own otherwise)")
    p.add_argument("--cfg", type=float, help="constant CFG scale overriding the strategy's")
    p.add_argument("--order", default="confidence", help="decoding order: confidence (default), random, halton")
    p.add_argument("--metrics", help="comma-separated subset of fid,is,kid,pr (default: all the reference allows)")
    p.add_argument("--results", default=DEFAULT_RESULTS, help=f"JSON-lines file to append to ({DEFAULT_RESULTS})")
    _add_feature_arguments(p)
    add_force_argument(p)


def add_fid_stats_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="image folder, images .npz (arr_0), or demo:train|heldout|all")
    p.add_argument("--out", required=True, help="statistics .npz to write (mu, sigma)")
    _add_feature_arguments(p)


def add_eval_commands(sub) -> None:
    """Register the evaluation subcommands on ``autonat``'s subparsers."""
    p = sub.add_parser("eval", help="FID / IS / KID / precision-recall of a generator or an image set")
    add_eval_arguments(p)
    p.set_defaults(func=run_eval)

    p = sub.add_parser("fid-stats", help="precompute reference statistics (mu, sigma) into an .npz")
    add_fid_stats_arguments(p)
    p.set_defaults(func=run_fid_stats)

    p = sub.add_parser("train-digit-classifier", help="train the demo's FID/IS digit classifier")
    p.add_argument("--out", help="output directory (default: the package's assets/digit_classifier)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run_train_digit_classifier)


# --------------------------------------------------------------------------- wiring
def process_state(device: str | None):
    """accelerate's process state; processes without CUDA join a gloo (CPU) group.

    ``accelerate launch --cpu --num_processes K`` starts a single process unless
    it is given an MPI host file; ``accelerate launch --multi_gpu --num_processes K``
    (or ``torchrun --nproc_per_node K``) starts K, and on a machine without CUDA
    they work on the CPU.
    """
    import os
    import sys

    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available() or str(device or "").startswith("cpu"))
    if state.num_processes == 1 and os.environ.get("ACCELERATE_USE_CPU", "").lower() == "true" \
            and "MASTER_PORT" in os.environ:
        print("autonat: note: `accelerate launch --cpu` started one process; use --multi_gpu --num_processes K "
              "(it falls back to the CPU) or torchrun to share the work", file=sys.stderr)
    return state


def _setup(args, source: str):
    """accelerate's process state, the device and the feature extractor."""
    from autonat.evaluation.features import (
        DIGITS,
        default_extractor_name,
        load_feature_extractor,
        resolve_name,
    )

    state = process_state(args.device)
    device = args.device or state.device
    name = default_extractor_name(source) if args.feature_extractor == "auto" else resolve_name(args.feature_extractor)
    weights = args.digit_weights if name == DIGITS else args.inception_weights
    return state, load_feature_extractor(name, weights, device)


def _images(args, device):
    """The image set to score, and what the record says about where it came from."""
    from autonat.evaluation.images import GeneratedImages, open_images

    if args.images:
        return open_images(args.images), {"images": args.images}
    from autonat.cli.sample import resolve_strategy
    from autonat.sampling.pipeline import Pipeline, balanced_labels

    if args.num_samples < 2:
        raise AutonatError("--num-samples must be at least 2")
    from autonat.sampling.order import ORDERS
    from autonat.sampling.sampler import SamplerOptions

    if args.order not in ORDERS:
        raise AutonatError(f"unknown --order {args.order!r}; choose one of {', '.join(ORDERS)}")
    pipe = Pipeline.load(args.checkpoint, args.tokenizer, args.tokenizer_config, device, force=args.force)
    strategy = resolve_strategy(args)
    options = SamplerOptions(order=args.order, grid=tuple(pipe.generator.config.grid))
    label = args.strategy or f"{args.schedule}({strategy.steps})"
    info = {"checkpoint": args.checkpoint, "seed": args.seed,
            "strategy": {"source": label, "cfg_override": args.cfg, "order": args.order, **strategy.to_dict()}}
    labels = balanced_labels(args.num_samples, pipe.num_classes)
    return GeneratedImages(pipe, strategy, labels, args.seed, options), info


def run_eval(args) -> dict | None:
    """Score the images; the main process appends the record and returns it."""
    import time

    from autonat.evaluation.metrics import (
        Evaluator,
        append_record,
        make_record,
        parse_metrics,
    )
    from autonat.evaluation.reference import load_reference

    state, extractor = _setup(args, args.reference)
    progress = not args.no_progress
    reference = load_reference(args.reference, extractor, args.batch_size, state, progress)
    metrics = parse_metrics(args.metrics, reference)
    images, info = _images(args, extractor.device)
    t0 = time.time()
    scores = Evaluator(extractor, reference, metrics, args.batch_size).score(images, state, progress)
    if not state.is_main_process:
        return None
    record = make_record(scores, len(images), extractor, reference, **info, num_processes=state.num_processes,
                         batch_size=args.batch_size, seconds=round(time.time() - t0, 1))
    append_record(args.results, record)
    print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in scores.items())
          + f"  (N={len(images)}, {extractor.name}; appended to {args.results})")
    return record


def run_fid_stats(args) -> None:
    from autonat.evaluation.reference import load_reference, save_statistics

    state, extractor = _setup(args, args.source)
    reference = load_reference(args.source, extractor, args.batch_size, state, not args.no_progress)
    if reference.kind != "images":
        raise AutonatError(f"{args.source} already holds statistics; fid-stats needs images")
    if state.is_main_process:
        save_statistics(args.out, reference, extractor)
        print(f"{extractor.name} statistics of {reference.num_images} images ({args.source}) written to {args.out}")


def run_train_digit_classifier(args) -> None:
    from autonat.evaluation.digit_classifier import (
        ASSET_DIR,
        KIND,
        DigitTrainConfig,
        is_digit_classifier_dir,
        save_digit_classifier,
        train_digit_classifier,
    )
    from autonat.io.atomic import check_output_dir

    out = args.out or ASSET_DIR
    check_output_dir(out, KIND, is_digit_classifier_dir)
    config = DigitTrainConfig(seed=args.seed, **({"epochs": args.epochs} if args.epochs else {}))
    model, report = train_digit_classifier(config)
    save_digit_classifier(model, out, config, report)
    print(f"held-out accuracy {report['heldout_accuracy']:.4f} on {report['heldout_images']} digits "
          f"(train {report['train_accuracy']:.4f}); weights written to {out}")
