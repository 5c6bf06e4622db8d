"""``autonat demo`` / ``make demo``: digits from the shipped demo model, and their FID and IS.

The demo model (tokenizer and generator) was trained on this project's
MNIST demo split with ``configs/demo_mnist.yaml``; the README gives the
commands. The demo writes a class-conditional grid (row k shows class k) with
the default strategy (the searched one shipped beside the weights, else
AutoNAT's initialisation), then scores the MaskGIT cosine heuristic, AutoNAT's
initialisation and the searched strategy at the same step count against the
held-out digits.
"""
from __future__ import annotations

import time
from pathlib import Path

from autonat.data.demo import DEMO_ASSETS, DEMO_CHECKPOINT, DEMO_TOKENIZER
from autonat.errors import AutonatError

DEMO_STEPS = 8
DEMO_STRATEGY = DEMO_ASSETS / f"strategy_T{DEMO_STEPS}.yaml"  # CMA-ES search on the demo model (README)


def searched_strategy(steps: int = DEMO_STEPS):
    """The strategy searched for the demo model at ``steps`` steps (``assets/demo/strategy_T<steps>.yaml``), or None."""
    from autonat.strategy.files import load_strategy

    path = DEMO_ASSETS / f"strategy_T{steps}.yaml"
    return load_strategy(path) if path.exists() else None


def default_strategy():
    """The demo's default strategy: the searched one when shipped, else AutoNAT's initialisation."""
    from autonat.strategy.core import autonat_init

    return searched_strategy() or autonat_init(DEMO_STEPS)


def run_demo(args) -> Path:
    import torch

    from autonat.sampling.outputs import save_grid
    from autonat.sampling.pipeline import Pipeline
    from autonat.strategy.core import autonat_init, maskgit_cosine

    if not (DEMO_CHECKPOINT / "config.json").exists():
        raise AutonatError(f"the demo weights are missing from {DEMO_ASSETS}; reinstall autonat from a full checkout")
    pipe = Pipeline.load(DEMO_CHECKPOINT, DEMO_TOKENIZER)
    strategy = default_strategy()
    per_class = 10
    labels = [c for c in range(pipe.num_classes) for _ in range(per_class)]
    t0 = time.time()
    images = [x for x, _ in pipe.batches(strategy, labels, args.seed, batch_size=100, progress=False)]
    seconds = time.time() - t0
    out = Path(args.out)
    save_grid(torch.cat(images), out, nrow=per_class)
    name = "searched" if DEMO_STRATEGY.exists() else "AutoNAT's initial"
    print(f"{len(labels)} digits ({pipe.num_classes} classes x {per_class}, {strategy.steps} steps, {name} strategy) "
          f"in {seconds:.1f} s ({len(labels) / seconds:.1f} images/s)")
    print(f"grid written to {out.resolve()}  (row k shows class k)")
    if args.eval_samples > 0:
        compared = {"MaskGIT cosine": maskgit_cosine(DEMO_STEPS), "AutoNAT initialisation": autonat_init(DEMO_STEPS)}
        if DEMO_STRATEGY.exists():
            compared["searched (CMA-ES, default)"] = strategy
        _print_scores(pipe, compared, args.eval_samples, args.seed)
    return out


def _print_scores(pipe, strategies: dict, n: int, seed: int) -> None:
    from autonat.evaluation.metrics import evaluate_demo

    print(f"FID / IS against the 500 held-out digits (digit-classifier features, N={n}, seed {seed}, "
          f"{DEMO_STEPS} steps):")
    for name, strategy in strategies.items():
        r = evaluate_demo(pipe, strategy, n=n, seed=seed, progress=False)
        print(f"  {name:28s} FID {r['fid']:6.3f}   IS {r['is_mean']:.3f} ± {r['is_std']:.3f}")
