"""``autonat strategy show FILE|NAME`` and ``autonat strategy list``: look at a generation strategy.

``show`` prints the four per-step vectors as a table, with how many tokens
stay masked and how many are decoded at each step for a given token grid,
and can write a PNG plot of them; ``list`` names the built-in schedules.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .errors import AutonatError
from .strategy import BUILDERS, Strategy, build_strategy, load_strategy


def add_strategy_parser(sub) -> None:
    """Register ``strategy show`` and ``strategy list`` under the ``autonat`` subcommands."""
    p = sub.add_parser("strategy", help="show a generation strategy (file or named schedule) as a table and plot")
    actions = p.add_subparsers(dest="action", required=True)
    show = actions.add_parser("show", help="print the per-step vectors and tokens decoded per step")
    show.add_argument("source", metavar="FILE|NAME", help="strategy YAML, or a named schedule (see `list`)")
    show.add_argument("--steps", type=int, default=8, help="steps for a named schedule (default 8)")
    show.add_argument("--grid", type=int, nargs=2, default=(16, 16), metavar=("H", "W"),
                      help="token grid the decoded counts refer to (default 16 16)")
    show.add_argument("--plot", help="also write a PNG plot of the schedules here")
    show.set_defaults(func=run_show)
    actions.add_parser("list", help="the named schedules").set_defaults(func=run_list)


def resolve(source: str, steps: int) -> tuple[Strategy, str]:
    """A strategy from a YAML path or a builder name, with a title describing it."""
    path = Path(source)
    if path.suffix.lower() in (".yaml", ".yml") or path.exists():
        return load_strategy(path), str(path)
    if source in BUILDERS:
        return build_strategy(source, steps), source
    raise AutonatError(f"{source!r} is neither a strategy file nor a named schedule "
                       f"({', '.join(sorted(BUILDERS))})")


def strategy_table(strategy: Strategy, seq_len: int) -> str:
    """One row per step: the four values, tokens still masked after it and tokens it decodes."""
    counts = strategy.masked_counts(seq_len)
    header = f"{'step':>4} {'mask_ratio':>10} {'remask_temp':>11} {'sample_temp':>11} {'cfg_scale':>9} " \
             f"{'masked':>7} {'decoded':>7}"
    rows, before = [header, "-" * len(header)], seq_len
    for t in range(strategy.steps):
        last = t == strategy.steps - 1
        ratio = "-" if last else f"{strategy.mask_ratio[t]:.4f}"
        remask = "-" if last else f"{strategy.remask_temp[t]:.4f}"
        rows.append(f"{t + 1:>4} {ratio:>10} {remask:>11} {strategy.sample_temp[t]:>11.4f} "
                    f"{strategy.cfg_scale[t]:>9.4f} {counts[t]:>7d} {before - counts[t]:>7d}")
        before = counts[t]
    return "\n".join(rows)


def run_show(args: argparse.Namespace) -> None:
    h, w = args.grid
    if h < 1 or w < 1:
        raise AutonatError(f"--grid must be positive, got {h} {w}")
    strategy, title = resolve(args.source, args.steps)
    print(f"{title}: {strategy.steps} steps on a {h}x{w} grid ({h * w} tokens); "
          "CFG is cond + s * (cond - uncond)")
    print(strategy_table(strategy, h * w))
    if args.plot:
        from .plots import plot_strategy

        plot_strategy(strategy, args.plot, seq_len=h * w, title=f"{title}: {strategy.steps} steps, {h}x{w} tokens")
        print(f"plot written to {args.plot}")


def run_list(args: argparse.Namespace) -> None:
    for name in sorted(BUILDERS):
        doc = (BUILDERS[name].__doc__ or "").strip().splitlines()
        print(f"{name:>15}  {doc[0].replace('``', '') if doc else ''}")
