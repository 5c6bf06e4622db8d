"""The ``autonat`` command: argument parsing and wiring only.

Every subcommand turns its arguments into calls of the library; errors about
the user's input (:class:`~autonat.errors.AutonatError`) become one line on
stderr and exit status 2, unless ``--debug`` asks for the traceback.
"""
from __future__ import annotations

import argparse
import sys

from .errors import AutonatError


def _recipe(args) -> dict:
    from .config import apply_overrides, load_yaml

    return apply_overrides(load_yaml(args.config), args.overrides)


# --------------------------------------------------------------------------- subcommands
def cmd_train_tokenizer(args) -> None:
    from dataclasses import asdict

    from .config import build
    from .data import open_dataset
    from .tokenizer_training import TokenizerTrainConfig, train_tokenizer
    from .vqgan import VQGANConfig

    recipe = _recipe(args)
    section = dict(recipe.get("tokenizer", {}))
    out_dir = args.out or section.pop("out_dir", None)
    section.pop("out_dir", None)
    if out_dir is None:
        raise AutonatError("say where to write the tokenizer: tokenizer.out_dir in the config, or --out")
    vq = build(VQGANConfig, section.pop("vqgan", {}), "tokenizer.vqgan")
    config = build(TokenizerTrainConfig, {**section, "vqgan": vq}, "tokenizer")
    data = recipe.get("data", {})
    train = open_dataset(data.get("source", "demo"), data.get("image_size"), split="train")
    heldout = open_dataset(data["source"], data.get("image_size"), split="heldout") \
        if data.get("source", "demo") == "demo" else None
    report = train_tokenizer(config, train, out_dir, heldout=heldout, device=args.device)
    print(f"tokenizer written to {out_dir}")
    print("held-out report: " + ", ".join(f"{k}={v:.4g}" for k, v in asdict(report).items()))


def cmd_tokenize(args) -> None:
    from .tokenize import tokenize_dataset

    recipe = _recipe(args)
    data = recipe.get("data", {})
    tokenizer = args.tokenizer or recipe.get("tokenizer", {}).get("out_dir")
    out = args.out or recipe.get("cache")
    if not tokenizer or not out:
        raise AutonatError("need a tokenizer (--tokenizer or tokenizer.out_dir) and an output (--out or cache)")
    n = tokenize_dataset(data.get("source", "demo"), tokenizer, out, image_size=data.get("image_size"),
                         hflip=bool(data.get("hflip", False)), tokenizer_config=args.tokenizer_config,
                         device=args.device, batch_size=args.batch_size, strict_images=args.strict_images)
    print(f"token cache with {n} items written to {out}")
    _report_image_problems(out)


def _report_image_problems(cache: str) -> None:
    """Say how many images were skipped as unreadable or upscaled (recorded in the cache's meta.json)."""
    from .data import read_token_cache

    meta = read_token_cache(cache).meta
    if meta.get("skipped_images"):
        files = meta.get("skipped_files", [])
        print(f"skipped {meta['skipped_images']} unreadable image(s), e.g. {', '.join(files[:3])} "
              "(--strict-images makes this an error)")
    if meta.get("upscaled_images"):
        print(f"upscaled {meta['upscaled_images']} image(s) smaller than the tokenizer's input size")


def cmd_train(args) -> None:
    from .training import train_from_recipe

    final = train_from_recipe(_recipe(args))
    if final is not None:
        print(f"final checkpoint: {final}")


def cmd_sample(args) -> None:
    from .sample_cli import run_sample

    run_sample(args)


def cmd_demo(args) -> None:
    from .demo import run_demo

    run_demo(args)


def cmd_convert(args) -> None:
    from .convert import run_convert

    run_convert(args)


# --------------------------------------------------------------------------- parser
def _add_recipe(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="recipe YAML, e.g. configs/demo_mnist.yaml")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides of the recipe")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autonat", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train-tokenizer", help="train a small VQGAN tokenizer from scratch")
    _add_recipe(p)
    p.add_argument("--out", help="output directory (default: tokenizer.out_dir)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_train_tokenizer)

    p = sub.add_parser("tokenize", help="encode a dataset into a token cache")
    _add_recipe(p)
    p.add_argument("--tokenizer", help="tokenizer directory or checkpoint (default: tokenizer.out_dir)")
    p.add_argument("--tokenizer-config", help="YAML/JSON of a taming checkpoint")
    p.add_argument("--out", help="cache directory (default: cache)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--strict-images", action="store_true",
                   help="fail on a corrupt or truncated image instead of skipping and counting it")
    p.set_defaults(func=cmd_tokenize)

    p = sub.add_parser("train", help="train the generator in this process (see tools/train.py for accelerate)")
    _add_recipe(p)
    p.set_defaults(func=cmd_train)

    from .sample_cli import add_sample_arguments

    p = sub.add_parser("sample", help="sample an image grid from a checkpoint")
    add_sample_arguments(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("demo", help="sample a class-conditional grid from the shipped demo model")
    p.add_argument("--out", default="outputs/demo_grid.png")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-samples", type=int, default=500, help="samples per FID/IS score (0: skip scoring)")
    p.set_defaults(func=cmd_demo)

    from .convert import add_convert_arguments

    p = sub.add_parser("convert", help="convert released weights (AutoNAT, MaskGIT/taming VQGAN) to our formats")
    add_convert_arguments(p)
    p.set_defaults(func=cmd_convert)

    from .search_cli import add_search_parser

    add_search_parser(sub)  # search generation | training | alternate

    from .eval_cli import add_eval_commands

    add_eval_commands(sub)  # eval, fid-stats, train-digit-classifier

    from .strategy_cli import add_strategy_parser

    add_strategy_parser(sub)  # strategy show, strategy list
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except AutonatError as exc:
        if args.debug:
            raise
        print(f"autonat: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autonat: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
