"""Pictures people look at: training curves, strategy schedules (matplotlib, headless)."""
from __future__ import annotations

import csv
from pathlib import Path

from autonat.io.atomic import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_training_curves(log_csv: str | Path, out_png: str | Path) -> None:
    """Loss and masked-token top-1 / top-5 accuracy against step, side by side."""
    with open(log_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    plt = _pyplot()
    steps = [int(r["step"]) for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    a.plot(steps, [float(r["loss"]) for r in rows], lw=1)
    a.set(xlabel="step", ylabel="masked cross-entropy", title="training loss")
    b.plot(steps, [float(r["acc1"]) for r in rows], lw=1, label="top-1")
    b.plot(steps, [float(r["acc5"]) for r in rows], lw=1, label="top-5")
    b.set(xlabel="step", ylabel="accuracy on masked tokens", title="masked-token accuracy")
    b.legend()
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def plot_strategy(strategy, out_png: str | Path, seq_len: int = 256, title: str = "") -> None:
    """The four schedule vectors of a generation strategy and the tokens decoded per step.

    ``seq_len`` is the token count of the grid the decoded counts refer to.
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    steps = list(range(1, strategy.steps + 1))
    counts = strategy.masked_counts(seq_len)
    decoded = [before - after for before, after in zip([seq_len] + counts, counts)]
    panels = [
        ("mask ratio after step", steps[:-1], strategy.mask_ratio, "line"),
        (f"tokens decoded (of {seq_len})", steps, decoded, "bar"),
        ("re-masking temperature", steps[:-1], strategy.remask_temp, "line"),
        ("sampling temperature", steps, strategy.sample_temp, "line"),
        ("CFG scale  cond + s(cond - uncond)", steps, strategy.cfg_scale, "line"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3))
    for ax, (name, x, y, kind) in zip(axes, panels):
        if kind == "bar":
            ax.bar(x, y, color="tab:orange")
        else:
            ax.plot(x, y, marker="o", ms=3, lw=1.2)
        ax.set(xlabel="step", title=name)
        ax.set_xlim(0.5, strategy.steps + 0.5)
        ax.set_ylim(bottom=0, top=max([1.0] + [1.1 * v for v in y]))  # flat lines are not zoomed into noise
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def plot_search(history: list[dict], strategy, out_png: str | Path) -> None:
    """FID against generated images, and the four schedules of the final strategy."""
    if not history:
        return
    plt = _pyplot()
    fig, axes = plt.subplots(1, 5, figsize=(18, 3.2))
    axes[0].plot([h["images"] for h in history], [h["fid"] for h in history], marker=".")
    axes[0].set(xlabel="generated images", ylabel="FID", title="search")
    t = range(1, strategy.steps + 1)
    for ax, name, values, steps in (
        (axes[1], "mask ratio", strategy.mask_ratio, t[:-1]),
        (axes[2], "re-masking temperature", strategy.remask_temp, t[:-1]),
        (axes[3], "sampling temperature", strategy.sample_temp, t),
        (axes[4], "CFG scale", strategy.cfg_scale, t),
    ):
        ax.plot(list(steps), list(values), marker="o")
        ax.set(xlabel="step", title=name)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def plot_quality_per_compute(curves: dict[str, list[tuple[float, float]]], out_png: str | Path,
                             searched: tuple[str, ...] = (), ylabel: str = "FID") -> None:
    """FID against forward passes per image, one line per strategy (``searched`` ones drawn as stars)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, points in curves.items():
        star = name in searched
        ax.plot(*zip(*sorted(points)), marker="*" if star else "o", markersize=11 if star else 5,
                linestyle="--" if star else "-", label=name)
    ax.set(xlabel="forward passes per image (unconditional passes counted)", ylabel=ylabel,
           title="quality per compute")
    ax.set_xscale("log", base=2)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
