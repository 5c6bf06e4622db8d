"""``autonat sample``: an image grid (one row per class), and optionally PNGs and an .npz batch."""
from __future__ import annotations

import argparse
from pathlib import Path

from autonat.cli.args import (
    add_checkpoint_argument,
    add_force_argument,
    add_generation_arguments,
    chosen_strategy,
    positive_int,
    sampler_options,
)
from autonat.errors import AutonatError


def add_sample_arguments(p: argparse.ArgumentParser) -> None:
    add_checkpoint_argument(p)
    add_generation_arguments(p)
    p.add_argument("--classes", nargs="*",
                   help="classes, one grid row each, by name (the class folder's) or id (default: all); "
                        "a name is matched before an id")
    p.add_argument("--per-class", type=positive_int, default=8, help="samples per class (grid columns)")
    p.add_argument("--out", default="samples.png", help="grid image: .png or .jpg/.jpeg (default samples.png)")
    p.add_argument("--png-dir", help="also write one PNG per sample here")
    p.add_argument("--npz", help="also write an .npz batch (arr_0 uint8 NxHxWx3, arr_1 labels)")
    p.add_argument("--compile", action="store_true",
                   help="run the generator through torch.compile (opt-in; the first batch pays the compilation)")
    p.add_argument("--trace", help="also write the canvas after every step, masked tokens grey (.gif or .png)")
    p.add_argument("--trace-samples", type=positive_int, default=4, help="samples shown by --trace (the grid's first)")
    add_force_argument(p)


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
    import numpy as np
    import torch

    from autonat.io.atomic import check_output_file, check_writable
    from autonat.runtime import default_device
    from autonat.sampling.outputs import grid_format, save_grid, save_npz, save_pngs
    from autonat.sampling.pipeline import Pipeline

    grid_format(args.out)  # a bad extension, a folder or an unwritable place fails before any work
    for path in (args.out, args.npz, args.trace):
        if path:
            check_output_file(path)
    if args.png_dir:
        check_writable(args.png_dir)
    pipe = Pipeline.load(args.checkpoint, args.tokenizer, args.tokenizer_config, default_device(args.device),
                         precision=args.precision, compile=args.compile, force=args.force)
    strategy = chosen_strategy(args)
    names = pipe.generator.meta.get("class_names")
    classes = class_ids(args.classes, names) if args.classes else list(range(pipe.num_classes))
    pipe.check_labels(classes)
    labels = [c for c in classes for _ in range(args.per_class)]
    options = pipe.sampler_options(sampler_options(args))
    if args.trace:
        _write_trace(pipe, strategy, labels[: args.trace_samples], args, options)
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
