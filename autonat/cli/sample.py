"""``autonat sample``: an image grid (one row per class or prompt), and optionally PNGs and an .npz batch."""
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
from autonat.errors import AutonatError, closest


def add_sample_arguments(p: argparse.ArgumentParser) -> None:
    add_checkpoint_argument(p)
    add_generation_arguments(p)
    p.add_argument("--classes", nargs="*",
                   help="classes, one grid row each, by name (the class folder's) or id (default: all); "
                        "a name is matched before an id")
    p.add_argument("--per-class", type=positive_int, default=8, help="samples per class (grid columns)")
    p.add_argument("--prompt", action="append", metavar="TEXT",
                   help="text-conditional checkpoints: a caption, one grid row (repeat for more rows)")
    p.add_argument("--prompts", metavar="FILE", help="a text file of prompts, one a line (blank lines skipped)")
    p.add_argument("--per-prompt", type=positive_int, default=8, help="samples per prompt (grid columns)")
    p.add_argument("--out", default="samples.png", help="grid image: .png or .jpg/.jpeg (default samples.png)")
    p.add_argument("--png-dir", help="also write one PNG per sample here")
    p.add_argument("--npz", help="also write an .npz batch (arr_0 uint8 NxHxWx3, arr_1 labels, or prompt "
                                 "numbers for prompts)")
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
            known, guess = "this checkpoint records no class names", ""
            if names:
                more = f", ... ({len(names)} in all)" if len(names) > 20 else ""
                known = "the classes are " + ", ".join(names[:20]) + more
                close = closest(value, names)
                guess = f" (did you mean {close!r}?)" if close else ""
            raise AutonatError(f"--classes {value}: unknown class{guess}; {known} (or give ids)")
    return ids


def read_prompts(prompts: list[str] | None, file: str | None) -> list[str]:
    """The ``--prompt`` values, then the lines of ``--prompts FILE`` (blank ones skipped); torch-free."""
    from pathlib import Path

    found = list(prompts or [])
    if file is not None:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise AutonatError(f"--prompts {file}: cannot read it ({exc.strerror or exc}); give a text file of "
                               "prompts, one a line") from exc
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if not lines:
            raise AutonatError(f"--prompts {file} holds no prompt; write one prompt a line")
        found += lines
    return found


def run_sample(args) -> Path:
    import numpy as np
    import torch

    from autonat.io.atomic import check_output_file, check_writable
    from autonat.runtime import default_device
    from autonat.sampling.outputs import grid_format, save_grid, save_npz, save_pngs
    from autonat.sampling.pipeline import Pipeline

    grid_format(args.out)  # a bad extension, a folder or an unwritable place fails before any work
    prompts = read_prompts(args.prompt, args.prompts)
    if prompts and args.classes:
        raise AutonatError("give classes (--classes) or prompts (--prompt / --prompts), not both")
    for path in (args.out, args.npz, args.trace):
        if path:
            check_output_file(path)
    if args.png_dir:
        check_writable(args.png_dir)
    pipe = Pipeline.load(args.checkpoint, args.tokenizer, args.tokenizer_config, default_device(args.device),
                         precision=args.precision, compile=args.compile, force=args.force,
                         text_encoder=args.text_encoder)
    strategy = chosen_strategy(args)
    if pipe.is_text or prompts:
        if not prompts:
            raise AutonatError(f"checkpoint {args.checkpoint} is text-conditional: give it prompts (--prompt TEXT, "
                               "or --prompts FILE)")
        names, rows, per = [f"prompt{k}" for k in range(len(prompts))], prompts, args.per_prompt
    else:
        names = pipe.generator.meta.get("class_names")
        rows = class_ids(args.classes, names) if args.classes else list(range(pipe.num_classes))
        per = args.per_class
    pipe.check_labels(rows)
    if pipe.is_text:
        pipe.text_encoder()  # an encoder that does not load fails before any work
    labels = [c for c in rows for _ in range(per)]
    options = pipe.sampler_options(sampler_options(args))
    if args.trace:
        _write_trace(pipe, strategy, labels[: args.trace_samples], args, options)
    images = [x.cpu() for x, _ in pipe.batches(strategy, labels, args.seed, args.batch_size, options=options)]
    images_t, labels_np = torch.cat(images), np.repeat(np.arange(len(rows)) if prompts else np.asarray(rows), per)
    save_grid(images_t, args.out, nrow=per)
    one, many = ("prompt", "prompts") if prompts else ("class", "classes")
    what = one if len(rows) == 1 else many
    print(f"grid of {len(labels)} samples ({len(rows)} {what} x {per}, {strategy.steps} steps) "
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
    cond = pipe.condition(labels) if pipe.is_text else labels
    write_trace(pipe.generator.model, pipe.tokenizer.decode, strategy, cond,
                sample_seeds(args.seed, range(len(labels))), args.trace, pipe.token_space, options)
    print(f"decoding trace of {len(labels)} samples over {strategy.steps} steps written to {args.trace}")
