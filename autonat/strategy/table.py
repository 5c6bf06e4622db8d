"""A strategy as a table: the four vectors and the tokens each step decodes."""
from __future__ import annotations

from autonat.strategy.choice import choose_strategy, is_schedule_name
from autonat.strategy.core import Strategy


def resolve(source: str, steps: int | None) -> tuple[Strategy, str]:
    """A strategy from a YAML path or a builder name, with a title describing it.

    ``steps`` (``--steps``; None when not given) sets T of a named schedule and must agree with a file's.
    """
    if is_schedule_name(source):
        return choose_strategy(path=None, schedule=source, steps=steps, cfg=None), source
    return choose_strategy(path=source, schedule=None, steps=steps, cfg=None), source


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
