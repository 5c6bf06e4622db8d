"""``autonat eval``, ``autonat fid-stats`` and ``autonat train-digit-classifier``: parsing and wiring.

Both evaluation commands run in one process, or in several under
``accelerate launch --multi_gpu --num_processes K tools/eval.py ...`` (on a
machine without CUDA the processes form a CPU/gloo group): each process
generates and embeds its share, and the main process computes the metrics and
appends the record.
"""
from __future__ import annotations

import argparse

from autonat.cli.args import (
    add_batch_size_argument,
    add_caption_file_argument,
    add_checkpoint_argument,
    add_device_argument,
    add_feature_arguments,
    add_force_argument,
    add_generation_arguments,
    nonnegative_int,
    positive_int,
    sampler_options,
)
from autonat.errors import AutonatError

DEFAULT_RESULTS = "outputs/eval.jsonl"
DEFAULT_SAMPLES = 1000


# --------------------------------------------------------------------------- arguments
def _add_feature_arguments(p: argparse.ArgumentParser) -> None:
    add_feature_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    what = p.add_mutually_exclusive_group(required=True)
    add_checkpoint_argument(what, required=False)  # N samples are generated on the fly
    what.add_argument("--images", help="an image folder or an .npz batch (arr_0 uint8 N x H x W x 3)")
    p.add_argument("--reference", required=True,
                   help="statistics .npz (mu, sigma), images .npz (arr_0), image folder, or demo:train|heldout")
    p.add_argument("--num-samples", "-n", type=positive_int,
                   help=f"samples to generate (default {DEFAULT_SAMPLES}); with --images, score the first N "
                        "(default all; more than there are is an error)")
    add_generation_arguments(p)
    add_caption_file_argument(p)
    p.add_argument("--metrics", help="comma-separated subset of fid,is,kid,pr (default: all the reference allows)")
    p.add_argument("--results", default=DEFAULT_RESULTS, help=f"JSON-lines file to append to ({DEFAULT_RESULTS})")
    _add_feature_arguments(p)
    add_force_argument(p)


def add_fid_stats_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="image folder, images .npz (arr_0), or demo:train|heldout|all")
    p.add_argument("--out", required=True, help="statistics .npz to write (mu, sigma)")
    add_batch_size_argument(p)
    add_device_argument(p)
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
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.set_defaults(func=run_train_digit_classifier)


# --------------------------------------------------------------------------- wiring
def _setup(args, source: str):
    """accelerate's process state, the device and the feature extractor."""
    from autonat.evaluation.features import DIGITS, load_feature_extractor
    from autonat.evaluation.reference import choose_extractor
    from autonat.runtime import process_state

    state = process_state(args.device)
    device = args.device or state.device
    name = choose_extractor(args.feature_extractor, source)
    weights = args.digit_weights if name == DIGITS else args.inception_weights
    return state, load_feature_extractor(name, weights, device)


def _images(args, extractor):
    """The image set to score, and what the record says about where it came from."""
    from autonat.evaluation.domain import is_demo_model
    from autonat.evaluation.features import DIGITS
    from autonat.evaluation.images import GeneratedImages, first_images, open_images

    if args.images:
        return first_images(open_images(args.images), args.num_samples, args.images), {"images": args.images}
    from autonat.cli.args import chosen_strategy
    from autonat.sampling.pipeline import Pipeline

    n = DEFAULT_SAMPLES if args.num_samples is None else args.num_samples
    if n < 2:
        raise AutonatError("--num-samples must be at least 2")
    pipe = Pipeline.load(args.checkpoint, args.tokenizer, args.tokenizer_config, extractor.device,
                         precision=args.precision, force=args.force, text_encoder=args.text_encoder)
    if extractor.name == DIGITS and not is_demo_model(args.checkpoint):
        extractor.warn_off_domain(f"samples of {args.checkpoint}, which was not trained on the demo digits")
    strategy = chosen_strategy(args)
    options = sampler_options(args)
    label = args.strategy or f"{args.schedule or 'cosine'}({strategy.steps})"
    info = {"checkpoint": args.checkpoint, "seed": args.seed,
            "strategy": {"source": label, "cfg_override": args.cfg, "order": args.order,
                         **({"temperature_floor": args.temperature_floor} if args.temperature_floor else {}),
                         **strategy.to_dict()}}
    labels = pipe.eval_labels(n, args.captions)
    if args.captions is not None:
        info["captions"] = args.captions
    if pipe.is_text:
        info["text_encoder"] = pipe.text_encoder().name
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
    from autonat.io.atomic import check_output_file, read_log

    check_output_file(args.results)  # a folder, an unwritable place or a binary file fails before any work
    read_log(args.results)
    state, extractor = _setup(args, args.reference)
    progress = not args.no_progress
    images, info = _images(args, extractor)  # before the reference's embedding: a bad -n fails at once
    reference = load_reference(args.reference, extractor, args.batch_size, state, progress)
    metrics = parse_metrics(args.metrics, reference)
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
    from autonat.io.atomic import check_output_file

    check_output_file(args.out)  # a folder or an unwritable place fails before any work
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
