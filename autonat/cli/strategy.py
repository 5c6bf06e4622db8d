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
    show.add_argument("--grid", type=positive_int, nargs=2, default=(16, 16), metavar=("H", "W"),
                      help="token grid the decoded counts refer to (default 16 16)")
    show.add_argument("--plot", help="also write a PNG plot of the schedules here")
    show.set_defaults(func=run_show)
    actions.add_parser("list", help="the named schedules").set_defaults(func=run_list)


def run_show(args: argparse.Namespace) -> None:
    from autonat.strategy.table import resolve, strategy_table

    h, w = args.grid
    strategy, title = resolve(args.source, args.steps)
    print(f"{title}: {strategy.steps} steps on a {h}x{w} grid ({h * w} tokens); "
          "CFG is cond + s * (cond - uncond)")
    print(strategy_table(strategy, h * w))
    if args.plot:
        from autonat.plots import plot_strategy

        plot_strategy(strategy, args.plot, seq_len=h * w, title=f"{title}: {strategy.steps} steps, {h}x{w} tokens")
        print(f"plot written to {args.plot}")


def run_list(args: argparse.Namespace) -> None:
    from autonat.strategy.zoo import BUILDERS

    for name in sorted(BUILDERS):
        doc = (BUILDERS[name].__doc__ or "").strip().splitlines()
        print(f"{name:>15}  {doc[0].replace('``', '') if doc else ''}")
