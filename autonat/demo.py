"""``autonat demo`` / ``make demo``: a class-conditional digit grid from the shipped demo model."""
from __future__ import annotations

import time
from pathlib import Path

from .errors import AutonatError

ASSETS = Path(__file__).parent / "assets" / "demo"
DEMO_CHECKPOINT = ASSETS / "generator"
DEMO_TOKENIZER = ASSETS / "tokenizer"
DEMO_STEPS = 8


def run_demo(args) -> Path:
    from .generate import Pipeline
    from .outputs import save_grid
    from .strategy import maskgit_cosine

    if not (DEMO_CHECKPOINT / "config.json").exists():
        raise AutonatError(f"the demo weights are missing from {ASSETS}; reinstall autonat from a full checkout")
    pipe = Pipeline.load(DEMO_CHECKPOINT, DEMO_TOKENIZER)
    strategy = maskgit_cosine(DEMO_STEPS)
    per_class = 10
    labels = [c for c in range(pipe.num_classes) for _ in range(per_class)]
    t0 = time.time()
    images = [x for x, _ in pipe.batches(strategy, labels, args.seed, batch_size=100)]
    seconds = time.time() - t0
    import torch

    out = Path(args.out)
    save_grid(torch.cat(images), out, nrow=per_class)
    print(f"{len(labels)} digits ({pipe.num_classes} classes x {per_class}, {strategy.steps} steps, "
          f"MaskGIT cosine schedule) in {seconds:.1f} s ({len(labels) / seconds:.1f} images/s)")
    print(f"grid written to {out.resolve()}  (row k shows class k)")
    return out
