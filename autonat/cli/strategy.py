"""``autonat strategy show FILE|NAME`` and ``autonat strategy list``: look at a generation strategy."""
from __future__ import annotations

import argparse

from autonat.cli.args import positive_int


def add_strategy_parser(sub) -> None:
    """Register ``strategy show`` and ``strategy list`` under the ``autonat`` subcommands."""
    p = sub.add_parser("strategy", help="show a generation strategy (file or named schedule) as a table and plot")
    actions = p.add_subparsers(dest="action", required=True)
    show = actions.add_parser("show", help="print the per-step vectors and tokens decoded per step")
    show.add_argument("source", metavar="FILE|NAME", help="strategy YAML, or a named schedule (see `list`)")
    show.add_argument("--steps", type=positive_int,
                      help="steps for a named schedule (default 8; a file's own otherwise)")
    grid = show.add_mutually_exclusive_group()
    grid.add_argument("--grid", type=positive_int, nargs=2, metavar=("H", "W"),
                      help="token grid the decoded counts refer to (default: the grid of the generator checkpoint "
                           "beside a strategy file, as the demo's, else 16 16)")
    grid.add_argument("--checkpoint", help="take the token grid from this generator checkpoint")
    show.add_argument("--plot", help="also write a PNG plot of the schedules here")
    show.set_defaults(func=run_show)
    actions.add_parser("list", help="the named schedules").set_defaults(func=run_list)


def run_show(args: argparse.Namespace) -> None:
    from autonat.strategy.table import resolve, strategy_table

    strategy, title = resolve(args.source, args.steps)
    (h, w), origin = token_grid(args)
    print(f"{title}: {strategy.steps} steps on a {h}x{w} grid ({h * w} tokens{origin}); "
          "CFG is cond + s * (cond - uncond)")
    print(strategy_table(strategy, h * w))
    if args.plot:
        from autonat.plots import plot_strategy

        plot_strategy(strategy, args.plot, seq_len=h * w, title=f"{title}: {strategy.steps} steps, {h}x{w} tokens")
        print(f"plot written to {args.plot}")


DEFAULT_GRID = (16, 16)  # MaskGIT's and AutoNAT's 256 x 256 ImageNet: 16 x 16 tokens


def token_grid(args: argparse.Namespace) -> tuple[tuple[int, int], str]:
    """The grid the decoded counts refer to, and where it came from (printed after the token count):
    ``--grid``, else ``--checkpoint``'s, else that of a generator checkpoint beside the strategy file
    (``FILE``'s folder holds ``generator/``, as the demo's strategies do), else :data:`DEFAULT_GRID`."""
    from pathlib import Path

    if args.grid:
        return tuple(args.grid), ""
    beside = Path(args.source).parent / "generator"  # a named schedule has no folder
    found = Path(args.source).is_file() and (beside / "config.json").is_file()
    checkpoint = args.checkpoint or (beside if found else None)
    if checkpoint is None:
        return DEFAULT_GRID, "; the default grid: give --grid H W or --checkpoint DIR for your model's"
    from autonat.generator.checkpoint import checkpoint_grid

    return checkpoint_grid(checkpoint), f", the grid of {checkpoint}"


def run_list(args: argparse.Namespace) -> None:
    from autonat.strategy.zoo import BUILDERS

    for name in sorted(BUILDERS):
        doc = (BUILDERS[name].__doc__ or "").strip().splitlines()
        print(f"{name:>15}  {doc[0].replace('``', '') if doc else ''}")
