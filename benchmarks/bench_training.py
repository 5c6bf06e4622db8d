"""Training-step speed (tokens/s) and peak memory: ours against the reference-style baseline.

"Ours" is :func:`autonat.training.loop.train_step`, the step the training
loop takes (masking, forward, masked cross-entropy, the finiteness check,
backward, gradient clipping, fused AdamW, the foreach EMA update), through a
single-process accelerate ``Accelerator`` as in training, without the loop's
logging and checkpoints; the baseline is
:func:`benchmarks.baseline.baseline_train_step`. Both train the same seeded
network on the same random token batches, each in its own fresh process,
alternately for ``--rounds`` rounds.

    python -m benchmarks.bench_training            # S and L, batches 1 2 4
    python -m benchmarks.bench_training --quick    # check the script in seconds (tiny model, one batch size)
"""
from __future__ import annotations

import argparse
import copy
import json

import torch

from autonat.generator.uvit import UViT
from autonat.training.loop import train_step
from autonat.training.recipe import Recipe, TrainConfig

from .baseline import (
    BaselineTrainer,
    baseline_train_step,
    baseline_trainer,
    reference_style,
)
from .measure import (
    LIVE_MEMORY_ENV,
    Machine,
    RunLog,
    current_memory_mb,
    markdown_table,
    median,
    peak_memory_mb,
    progress,
    report,
    run_child,
    timed,
)
from .workloads import SIZES, build_model, sample_labels

MODULE = "benchmarks.bench_training"

VARIANTS = {
    "ours": "autonat.training step, fp32 (mixed_precision: auto on a CPU)",
    "ours-bf16": "autonat.training step with bf16 autocast (mixed_precision: auto on CUDA, or bf16)",
    "baseline": "reference style, fp32",
    "ours-manual-attn": "ours without scaled_dot_product_attention",
    "ours-foreach-adamw": "ours with AdamW(foreach=True), not fused",
    "ours-loop-adamw": "ours with PyTorch's default AdamW (a loop over parameters on CPU), not fused",
    "ours-late-zero-grad": "ours clearing the gradients after the next forward, not right after the update",
    "baseline-bf16": "reference style with bf16 autocast",
}


class LateZeroGrad:
    """The ablation ``ours-late-zero-grad``: an optimizer whose gradients live on through the next forward.

    :func:`train_step` frees the gradients right after the update; here its
    ``zero_grad`` does nothing and a forward hook on ``model`` clears them
    once the next step's forward pass has run.
    """

    def __init__(self, optimizer, model: torch.nn.Module) -> None:
        self.optimizer = optimizer
        model.register_forward_hook(lambda *_: optimizer.zero_grad(set_to_none=True))

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    def step(self) -> None:
        self.optimizer.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        pass


def our_step(variant: str, model: UViT, device: torch.device):
    """A ``step(tokens, labels, i)`` that runs :func:`train_step` as the training loop does, per ``variant``."""
    from accelerate import Accelerator

    accelerator = Accelerator(mixed_precision="bf16" if variant == "ours-bf16" else "no", cpu=device.type == "cpu")
    recipe = Recipe(cache="unused", model=model.config, train=TrainConfig(seed=0))
    optim, ema = recipe.optim, copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay,
                            foreach=True if variant == "ours-foreach-adamw" else None,
                            fused=None if variant in ("ours-foreach-adamw", "ours-loop-adamw") else True)
    model, opt = accelerator.prepare(model, opt)
    if variant == "ours-late-zero-grad":
        opt = LateZeroGrad(opt, model)
    return lambda x, y, i: train_step(accelerator, model, opt, ema, x, y, i, recipe)


def make_step(variant: str, model: UViT, device: torch.device):
    """A ``step(tokens, labels, i)`` callable for ``variant``."""
    if variant.startswith("baseline"):
        reference_style(model)
        tr: BaselineTrainer = baseline_trainer(model, copy.deepcopy(model))
        dtype = torch.bfloat16 if variant == "baseline-bf16" else None
        return lambda x, y, i: baseline_train_step(tr, x.to(device), y.to(device), autocast_dtype=dtype)
    if variant == "ours-manual-attn":
        reference_style(model)
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    return our_step(variant, model, device)


def child(cfg: dict) -> dict:
    device = torch.device(cfg["device"])
    start_mb = current_memory_mb(device)  # the interpreter, torch and autonat, before any model
    model = build_model(cfg["size"], device).train()
    c = model.config
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, c.codebook_size, (cfg["batch"], c.seq_len), generator=g)
    labels = torch.tensor(sample_labels(cfg["batch"], c.num_classes))
    step = make_step(cfg["variant"], model, device)
    if cfg.get("memory_only"):  # two steps: the second has the optimizer state
        step(tokens, labels, 0)
        step(tokens, labels, 1)
        return {"peak_mb": peak_memory_mb(device), "start_mb": start_mb}
    warmup_s = timed(lambda: step(tokens, labels, 0), device)[0]
    times = [timed(lambda i=i: step(tokens, labels, i), device) for i in range(1, cfg["steps"] + 1)]
    return {"step_s": [w for w, _ in times], "step_cpu_s": [c for _, c in times], "warmup_s": warmup_s,
            "tokens": cfg["batch"] * c.seq_len,
            "peak_mb": peak_memory_mb(device), "start_mb": start_mb}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--sizes", nargs="+", default=["s", "l"], choices=list(SIZES))
    p.add_argument("--batches", nargs="+", type=int, default=None,
                   help="batch sizes (default: 1 2 4 on CPU, 32 128 on CUDA)")
    p.add_argument("--variants", nargs="+", default=["ours", "ours-bf16", "baseline"], choices=list(VARIANTS))
    p.add_argument("--steps", type=int, default=3, help="steps timed per process (after one warm-up step)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--live-memory", action=argparse.BooleanOptionalAction, default=None,
                   help="also run each configuration untimed for its live peak memory (default: on CPU)")
    p.add_argument("--clock", default="auto", choices=("auto", "cpu", "wall"),
                   help="clock of the ratios: process CPU time (auto on CPU) or wall (auto on CUDA)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    p.add_argument("--json", help="keep the raw child reports here, after every child; "
                                  "an existing file is resumed (only missing runs are measured)")
    p.add_argument("--quick", action="store_true",
                   help="check the script: the tiny model, batch 2, one timed step, no live-memory runs")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.batches, args.steps, args.live_memory = ["tiny"], [2], 1, False
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.batches = args.batches or ([32, 128] if args.device.startswith("cuda") else [1, 2, 4])
    if args.live_memory is None:
        args.live_memory = not args.device.startswith("cuda")
    if args.clock == "auto":
        args.clock = "wall" if args.device.startswith("cuda") else "cpu"
    if "baseline" not in args.variants:
        args.variants.append("baseline")
    return args


def step_seconds(runs: dict, key: tuple, clock: str) -> float:
    return median([t for r in runs[key] for t in r["step_cpu_s" if clock == "cpu" else "step_s"]])


def rows(args, runs: dict) -> list[dict]:
    out = []
    for size in args.sizes:
        for batch in args.batches:
            def peak(v, live=False, size=size, batch=batch):
                found = runs.get((size, batch, v) + (("live",) if live else ()), [])
                return max(r["peak_mb"] - r["start_mb"] for r in found) if found else float("nan")

            base = (size, batch, "baseline")
            for v in args.variants:
                key = (size, batch, v)
                wall = step_seconds(runs, key, "wall")
                speed = step_seconds(runs, base, args.clock) / step_seconds(runs, key, args.clock)
                out.append({"model": SIZES[size][0], "batch": batch, "variant": v,
                            "tok_s": runs[key][0]["tokens"] / wall, "step_s": wall,
                            "vs_base": f"{speed:.2f}x",
                            "vs_base_wall": f"{step_seconds(runs, base, 'wall') / wall:.2f}x",
                            "mem": f"{peak(v):.0f}", "mem_ratio": f"{peak(v) / peak('baseline'):.3f}",
                            "live": f"{peak(v, True):.0f}",
                            "live_ratio": f"{peak(v, True) / peak('baseline', True):.3f}"})
    return out


COLUMNS = [("model", "model"), ("batch", "batch"), ("variant", "variant"), ("tok_s", "tokens/s"),
           ("step_s", "s/step"), ("vs_base", "speed vs baseline"), ("vs_base_wall", "(wall clock)"),
           ("mem", "peak MB above start"), ("mem_ratio", "peak / baseline"), ("live", "live peak MB"),
           ("live_ratio", "live peak / baseline")]


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        report(child(json.loads(args.child)))
        return
    log = RunLog(args.json)
    keys = [(s, b, v) for s in args.sizes for b in args.batches for v in args.variants]
    for done in range(args.rounds):
        for size, batch, variant in keys:
            if log.count((size, batch, variant)) > done:
                continue
            cfg = {"size": size, "batch": batch, "variant": variant, "steps": args.steps, "device": args.device}
            progress(f"training {cfg}")
            log.add((size, batch, variant), run_child(MODULE, cfg))
    for size, batch, variant in keys if args.live_memory else []:
        if not log.count((size, batch, variant, "live")):
            cfg = {"size": size, "batch": batch, "variant": variant, "device": args.device, "memory_only": True}
            progress(f"training {cfg}")
            log.add((size, batch, variant, "live"), run_child(MODULE, cfg, LIVE_MEMORY_ENV))
    print(f"Machine: {Machine.here(torch.device(args.device)).describe()}")
    print(f"Training step, {args.steps} steps per process x {args.rounds} round(s); times are medians; "
          f"rates use the wall clock, ratios the {args.clock} clock (the '(wall clock)' column: on the wall clock).\n")
    for v in args.variants:
        print(f"- {v}: {VARIANTS[v]}")
    print()
    print(markdown_table(rows(args, log.runs), COLUMNS))


if __name__ == "__main__":
    main()
