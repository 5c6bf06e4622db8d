"""The ``autonat`` command: argument parsing and wiring only.

Every subcommand turns its arguments into calls of the library; errors about
the user's input (:class:`~autonat.errors.AutonatError`) become one line on
stderr and exit status 2, unless ``--debug`` asks for the traceback.
"""
from __future__ import annotations

import argparse
import errno
import os
import sys
from typing import Callable

from autonat.cli.args import (
    Parser,
    add_device_argument,
    add_force_argument,
    add_recipe_arguments,
    add_strategy_arguments,
    nonnegative_int,
    positive_int,
)
from autonat.cli.data import cmd_demo_text_data, cmd_tokenize, cmd_train_tokenizer
from autonat.errors import AutonatError


def cmd_train(args) -> None:
    from autonat.io.config import to_plain
    from autonat.training.recipe import load_recipe

    recipe = load_recipe(args.config, args.overrides)  # torch-free: a mistyped key fails before torch loads
    from autonat.training.loop import train

    final = train(recipe.training(), raw=to_plain(recipe), force=args.force)
    if final is not None:
        print(f"final checkpoint: {final}")


def cmd_sample(args) -> None:
    from autonat.cli.sample import run_sample

    run_sample(args)


def cmd_demo(args) -> None:
    from autonat.demo import run_demo
    from autonat.sampling.outputs import grid_format

    grid_format(args.out)  # a bad extension fails before any work
    if args.eval_samples == 1:
        raise AutonatError("--eval-samples must be 0 (no scoring) or at least 2 (FID needs two images)")
    run_demo(args)


def cmd_demo_text_eval(args) -> None:
    import json

    from autonat.cli.args import chosen_strategy
    from autonat.demo import print_text_scores, text_demo_pipeline, text_demo_strategy
    from autonat.evaluation.two_digits import evaluate_text_demo

    pipe = text_demo_pipeline(args.checkpoint, args.device)
    strategy = chosen_strategy(args) if (args.strategy or args.schedule) else text_demo_strategy(args.steps or 8)
    r = evaluate_text_demo(pipe, strategy, args.data, n=args.samples, seed=args.seed, progress=True)
    print_text_scores(r)
    if args.json:
        print(json.dumps(r))


def cmd_convert(args) -> None:
    from autonat.cli.convert import run_convert

    run_convert(args)


def on_default_device(command):
    """``command`` with ``args.device`` resolved first (None: CUDA when present, else the CPU)."""
    def run(args) -> None:
        from autonat.runtime import default_device

        args.device = default_device(args.device)
        command(args)

    return run


# --------------------------------------------------------------------------- parser
DESCRIPTION = """Masked generative image synthesis with non-autoregressive transformers (MaskGIT, AutoNAT):
tokenize, train, sample, evaluate, and search generation strategies."""
EPILOG = """start here:
  autonat demo                                   sample the shipped demo model, print FID/IS
  autonat sample --checkpoint DIR --out grid.png a class-conditional image grid
  autonat strategy list                          the named generation strategies
  autonat COMMAND --help                         the flags of one command"""


def build_parser() -> argparse.ArgumentParser:
    """The ``autonat`` parser; building it (or printing any --help) imports neither torch nor torchvision."""
    parser = Parser(prog="autonat", description=DESCRIPTION, epilog=EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train-tokenizer", help="train a small VQGAN tokenizer from scratch")
    add_recipe_arguments(p)
    p.add_argument("--out", help="output directory (default: tokenizer.out_dir)")
    add_device_argument(p)
    p.set_defaults(func=cmd_train_tokenizer)  # resolves its device after reading the recipe

    p = sub.add_parser("tokenize", help="encode a dataset into a token cache")
    add_recipe_arguments(p)
    p.add_argument("--tokenizer", help="tokenizer directory or checkpoint (default: tokenizer.out_dir)")
    p.add_argument("--tokenizer-config", help="YAML/JSON of a taming checkpoint")
    p.add_argument("--out", help="cache directory (default: cache)")
    p.add_argument("--batch-size", type=positive_int, default=256, help="images per batch (default 256)")
    add_device_argument(p)
    p.add_argument("--strict-images", action="store_true",
                   help="fail on a corrupt or truncated image instead of skipping and counting it")
    p.add_argument("--text-encoder", help="text encoder of a captioned dataset (default: text.encoder)")
    p.add_argument("--workers", type=nonnegative_int, default=min(8, os.cpu_count() or 1),
                   help="DataLoader processes decoding images, per process (default: the cores, at most 8; 0: "
                        "decode in the main process)")
    p.add_argument("--shard-size", type=positive_int, default=4096,
                   help="images per shard: the unit written as it goes and skipped by a rerun (default 4096)")
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
    p.add_argument("--out", default="outputs/demo_grid.png", help="grid image: .png or .jpg/.jpeg")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--eval-samples", type=nonnegative_int, default=500,
                   help="samples per FID/IS score (0: skip scoring)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("data", help="write a built-in dataset to disk")
    kinds = p.add_subparsers(dest="kind", required=True)
    p = kinds.add_parser("demo-text", help="the captioned demo: two digits side by side, captions naming both")
    p.add_argument("--out", required=True, help="new folder for images/, train.jsonl, reference/, prompts_*.jsonl")
    p.add_argument("--per-pair", type=positive_int, default=50, help="training images per seen digit pair (default 50)")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.set_defaults(func=cmd_demo_text_data)

    p = sub.add_parser("demo-text-eval", help="prompt accuracy and FID of a captioned demo model (two digits)")
    p.add_argument("--checkpoint", help="generator checkpoint (default: the shipped assets/demo_text model)")
    p.add_argument("--data", required=True, help="the folder `autonat data demo-text` wrote")
    p.add_argument("--samples", type=positive_int, default=100, help="prompts per prompt set, one sample each")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    add_strategy_arguments(p)
    add_device_argument(p)
    p.set_defaults(func=on_default_device(cmd_demo_text_eval))

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


#: Commands ``accelerate launch`` runs (tools/train.py, tools/eval.py).
LAUNCHED = ("train", "eval", "fid-stats")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the subcommand, whose --help lists its flags
        args.command_parser.reject_unknown(unknown)

    def run() -> None:
        _note_single_process(args.command)
        if getattr(args, "device", None) is not None:
            from autonat.runtime import check_device

            check_device(args.device)
        args.func(args)

    return run_reporting_errors(run, args.debug)


def run_reporting_errors(work: Callable[[], None], debug: bool = False, prog: str = "autonat") -> int:
    """Run ``work()`` and return the exit status: 0, or 2 after one line ``<prog>: error: ...`` on stderr for
    the user's errors (:class:`AutonatError`, and operating-system errors about their paths), 130 on
    Ctrl-C, or 141 without a word when the reader of standard output has gone (a closed pipe). ``debug`` lets
    the errors through with their tracebacks. The scripts in tools/ use it too."""
    try:
        work()
    except AutonatError as exc:
        if debug:
            raise
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError as exc:  # the reader left (`autonat strategy list | head -3`): stop quietly, as shell
        if not _stdout_closed():  # tools do; another pipe that broke is an error to report
            return _report_os_error(exc, debug, prog)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the final flush must not fail again
        return 141  # 128 + SIGPIPE, what a shell reports for a pipe closed under a writer
    except OSError as exc:  # the user's paths: permissions, read-only, a folder or file in the way, disk full
        return _report_os_error(exc, debug, prog)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return 0


def _report_os_error(exc: OSError, debug: bool, prog: str) -> int:
    if debug:
        raise exc
    print(f"{prog}: error: {os_error_line(exc)}", file=sys.stderr)
    return 2


def _stdout_closed() -> bool:
    """Whether standard output is a pipe whose reader has gone (poll reports an error on it)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLERR)
        return bool(poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows) or no file descriptor (captured output)
        return False


def _note_single_process(command: str) -> None:
    """Say so when ``accelerate launch --num_processes K`` started one process for a launched command."""
    from autonat.runtime import single_process_note

    note = single_process_note() if command in LAUNCHED else None
    if note:
        print(f"autonat: {note}", file=sys.stderr)


#: What to do about an operating-system error, by errno.
OS_HINTS = {
    errno.EACCES: "check its permissions or choose another path",
    errno.EPERM: "check its permissions or choose another path",
    errno.EROFS: "that file system is read-only; choose a writable location",
    errno.EISDIR: "a folder is there; give a file path",
    errno.ENOTDIR: "a file is in the way where a folder is needed; choose another path",
    errno.ENOENT: "check the path",
    errno.EEXIST: "something is already there; choose another path",
}


def os_error_line(exc: OSError) -> str:
    """``<path>: <reason>; <hint>`` for an operating-system error, on one line."""
    from autonat.io.atomic import is_disk_full

    where = exc.filename if exc.filename is not None else "?"
    reason = (exc.strerror or str(exc)).rstrip(".").lower()
    if is_disk_full(exc):
        hint = "free some space or write elsewhere"
    else:
        hint = OS_HINTS.get(exc.errno, "check the path")
    return f"{where}: {reason}; {hint}"


if __name__ == "__main__":
    sys.exit(main())
