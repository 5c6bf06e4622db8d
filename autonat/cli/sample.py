"""``autonat sample``: an image grid (one row per class), and optionally PNGs and an .npz batch."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from autonat.cli.args import add_force_argument
from autonat.errors import AutonatError
from autonat.sampling.order import ORDERS
from autonat.sampling.outputs import save_grid, save_npz, save_pngs
from autonat.sampling.sampler import CFG_BATCHING, SamplerOptions


def add_sample_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="generator checkpoint directory")
    p.add_argument("--tokenizer", help="tokenizer (default: the one recorded in the checkpoint)")
    p.add_argument("--tokenizer-config", help="YAML/JSON for a taming tokenizer checkpoint")
    p.add_argument("--strategy", help="strategy YAML (ours or an official AutoNAT file)")
    p.add_argument("--steps", type=int, help="steps for a named schedule (default 8; a file's own otherwise)")
    p.add_argument("--schedule", default="cosine",
                   help="named schedule when no --strategy (see `autonat strategy list`; default cosine)")
    p.add_argument("--cfg", type=float, help="constant CFG scale overriding the strategy's")
    p.add_argument("--classes", nargs="*",
                   help="classes, one grid row each, by name (the class folder's) or id (default: all); "
                        "a name is matched before an id")
    p.add_argument("--per-class", type=int, default=8, help="samples per class (grid columns)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if present)")
    p.add_argument("--out", default="samples.png", help="grid PNG path")
    p.add_argument("--png-dir", help="also write one PNG per sample here")
    p.add_argument("--npz", help="also write an .npz batch (arr_0 uint8 NxHxWx3, arr_1 labels)")
    p.add_argument("--order", default="confidence", choices=ORDERS,
                   help="which tokens each step decodes: the most confident (MaskGIT, default), or a fixed "
                        "random or Halton order over the token grid")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="generator arithmetic: auto = bf16 autocast on CUDA, fp32 on CPU (default); bf16 is "
                        "also faster on CPUs with bf16 instructions, with slightly different samples")
    p.add_argument("--compile", action="store_true",
                   help="run the generator through torch.compile (opt-in; the first batch pays the compilation)")
    p.add_argument("--cfg-batching", default="auto", choices=CFG_BATCHING,
                   help="guided steps: conditional and unconditional passes as one batch or two passes; "
                        "auto = batched on CUDA, split on CPU (same speed there, less memory)")
    p.add_argument("--trace", help="also write the canvas after every step, masked tokens grey (.gif or .png)")
    p.add_argument("--trace-samples", type=int, default=4, help="samples shown by --trace (the grid's first)")
    add_force_argument(p)


def resolve_strategy(args):
    from autonat.strategy.core import Strategy
    from autonat.strategy.files import DEFAULT_STEPS, check_steps, load_strategy
    from autonat.strategy.zoo import build_strategy

    if args.strategy:
        strategy = check_steps(load_strategy(args.strategy), args.steps, args.strategy)
    else:
        strategy = build_strategy(args.schedule, DEFAULT_STEPS if args.steps is None else args.steps)
    if getattr(args, "cfg", None) is not None:
        strategy = Strategy.create(strategy.mask_ratio, strategy.remask_temp, strategy.sample_temp,
                                   [args.cfg] * strategy.steps)
    return strategy


def default_device(requested: str | None) -> str:
    if requested:
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def class_ids(values: list[str], names: list[str] | None) -> list[int]:
    """``--classes`` values as ids: a class name recorded in the checkpoint (first), else an integer id.

    Ranges are checked later (:meth:`~autonat.sampling.pipeline.Pipeline.check_labels`).
    """
    ids = []
    for value in values:
        if names and value in names:
            ids.append(names.index(value))
        elif value.lstrip("-").isdigit():
            ids.append(int(value))
        else:
            known = "this checkpoint records no class names"
            if names:
                more = f", ... ({len(names)} in all)" if len(names) > 20 else ""
                known = "the classes are " + ", ".join(names[:20]) + more
            raise AutonatError(f"--classes {value}: unknown class; {known} (or give ids)")
    return ids


def run_sample(args) -> Path:
    from autonat.sampling.pipeline import Pipeline

    pipe = Pipeline.load(args.checkpoint, args.tokenizer, args.tokenizer_config, default_device(args.device),
                         precision=getattr(args, "precision", "auto"), compile=getattr(args, "compile", False),
                         force=args.force)
    strategy = resolve_strategy(args)
    names = pipe.generator.meta.get("class_names")
    classes = class_ids(args.classes, names) if args.classes else list(range(pipe.num_classes))
    if args.per_class < 1:
        raise AutonatError("--per-class must be at least 1")
    pipe.check_labels(classes)
    labels = [c for c in classes for _ in range(args.per_class)]
    options = pipe.sampler_options(SamplerOptions(order=args.order, grid=tuple(pipe.generator.config.grid),
                                                  cfg_batching=getattr(args, "cfg_batching", "auto")))
    if args.trace:
        _write_trace(pipe, strategy, labels[: max(1, args.trace_samples)], args, options)
    images, ys = [], []
    for x, y in pipe.batches(strategy, labels, args.seed, args.batch_size, options=options):
        images.append(x.cpu())
        ys.append(y)
    images_t, labels_np = torch.cat(images), np.concatenate(ys)
    save_grid(images_t, args.out, nrow=args.per_class)
    print(f"grid of {len(labels)} samples ({len(classes)} classes x {args.per_class}, {strategy.steps} steps) "
          f"written to {args.out}")
    if args.png_dir:
        save_pngs(images_t, labels_np, args.png_dir, class_names=names)
        print(f"individual PNGs written to {args.png_dir}")
    if args.npz:
        save_npz(images_t, labels_np, args.npz)
        print(f"npz batch written to {args.npz}")
    return Path(args.out)


def _write_trace(pipe, strategy, labels, args, options) -> None:
    """The decoding process of the grid's first samples (same seeds, so the same images)."""
    from autonat.sampling.sampler import sample_seeds
    from autonat.sampling.trace import check_trace_path, write_trace

    check_trace_path(args.trace)
    write_trace(pipe.generator.model, pipe.tokenizer.decode, strategy, labels,
                sample_seeds(args.seed, range(len(labels))), args.trace, pipe.token_space, options)
    print(f"decoding trace of {len(labels)} samples over {strategy.steps} steps written to {args.trace}")
