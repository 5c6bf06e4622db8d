"""Pictures people look at: training curves (matplotlib, headless)."""
from __future__ import annotations

import csv
from pathlib import Path

from .atomic import atomic_path


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
