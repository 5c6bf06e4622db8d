"""The ``autonat`` command: argument parsing and wiring only.

Every subcommand turns its arguments into calls of the library; errors about
the user's input (:class:`~autonat.errors.AutonatError`) become one line on
stderr and exit status 2, unless ``--debug`` asks for the traceback.
"""
from __future__ import annotations

import argparse
import sys

from autonat.cli.args import add_force_argument, add_recipe_arguments
from autonat.cli.data import cmd_tokenize, cmd_train_tokenizer
from autonat.errors import AutonatError


def cmd_train(args) -> None:
    from autonat.io.config import to_plain
    from autonat.training.loop import train
    from autonat.training.recipe import load_recipe

    recipe = load_recipe(args.config, args.overrides)
    final = train(recipe.training(), raw=to_plain(recipe), force=args.force)
    if final is not None:
        print(f"final checkpoint: {final}")


def cmd_sample(args) -> None:
    from autonat.cli.sample import run_sample

    run_sample(args)


def cmd_demo(args) -> None:
    from autonat.demo import run_demo

    run_demo(args)


def cmd_convert(args) -> None:
    from autonat.cli.convert import run_convert

    run_convert(args)


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autonat", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train-tokenizer", help="train a small VQGAN tokenizer from scratch")
    add_recipe_arguments(p)
    p.add_argument("--out", help="output directory (default: tokenizer.out_dir)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_train_tokenizer)

    p = sub.add_parser("tokenize", help="encode a dataset into a token cache")
    add_recipe_arguments(p)
    p.add_argument("--tokenizer", help="tokenizer directory or checkpoint (default: tokenizer.out_dir)")
    p.add_argument("--tokenizer-config", help="YAML/JSON of a taming checkpoint")
    p.add_argument("--out", help="cache directory (default: cache)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--strict-images", action="store_true",
                   help="fail on a corrupt or truncated image instead of skipping and counting it")
    p.set_defaults(func=cmd_tokenize)

    p = sub.add_parser("train", help="train the generator in this process (see tools/train.py for accelerate)")
    add_recipe_arguments(p)
    add_force_argument(p)
    p.set_defaults(func=cmd_train)

    from autonat.cli.sample import add_sample_arguments

    p = sub.add_parser("sample", help="sample an image grid from a checkpoint")
    add_sample_arguments(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("demo", help="sample a class-conditional grid from the shipped demo model")
    p.add_argument("--out", default="outputs/demo_grid.png")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-samples", type=int, default=500, help="samples per FID/IS score (0: skip scoring)")
    p.set_defaults(func=cmd_demo)

    from autonat.cli.convert import add_convert_arguments

    p = sub.add_parser("convert", help="convert released weights (AutoNAT, MaskGIT/taming VQGAN) to our formats")
    add_convert_arguments(p)
    p.set_defaults(func=cmd_convert)

    from autonat.cli.search import add_search_parser

    add_search_parser(sub)  # search generation | training | alternate

    from autonat.cli.eval import add_eval_commands

    add_eval_commands(sub)  # eval, fid-stats, train-digit-classifier

    from autonat.cli.strategy import add_strategy_parser

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
