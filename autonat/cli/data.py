"""``autonat train-tokenizer``, ``autonat tokenize`` and ``autonat data``: parsing and wiring."""
from __future__ import annotations

import sys

from autonat.errors import AutonatError


# --------------------------------------------------------------------------- subcommands
def cmd_train_tokenizer(args) -> None:
    from dataclasses import asdict

    from autonat.training.recipe import load_recipe, tokenizer_summary

    recipe = load_recipe(args.config, args.overrides)  # torch-free: a mistyped key fails before torch loads
    from autonat.data.images import open_splits
    from autonat.runtime import default_device
    from autonat.tokenizers.training import check_tokenizer_output, train_tokenizer

    data, section = recipe.need("data", "train-tokenizer"), recipe.tokenizer
    out_dir = args.out or section.out_dir
    if out_dir is None:
        raise AutonatError("say where to write the tokenizer: tokenizer.out_dir in the recipe, or --out")
    size = recipe.tokenizer_image_size()
    check_tokenizer_output(out_dir)
    train, heldout = open_splits(data.source, size)
    print(tokenizer_summary(data.source, len(train), size, section, out_dir))
    report = train_tokenizer(section.train_config(), train, out_dir, heldout=heldout,
                             device=default_device(args.device))
    print(f"tokenizer written to {out_dir}")
    scores = ", ".join(f"{k}={v:.4g}" for k, v in asdict(report).items() if k != "num_images")
    if len(heldout):
        print(f"held-out report on {report.num_images} images never trained on: {scores}")
    else:
        print(f"report on {report.num_images} training images (no class has 2 images, so none is held out): "
              f"{scores}")


def cmd_tokenize(args) -> None:
    from autonat.runtime import process_state
    from autonat.training.recipe import load_recipe

    recipe = load_recipe(args.config, args.overrides)  # torch-free: a mistyped key fails before torch loads
    from autonat.data.tokenization import tokenize_dataset

    data = recipe.need("data", "tokenize")
    tokenizer = args.tokenizer or recipe.tokenizer.out_dir
    out = args.out or recipe.cache
    if not tokenizer or not out:
        raise AutonatError("need a tokenizer (--tokenizer or tokenizer.out_dir) and an output (--out or cache)")
    encoder = args.text_encoder or (recipe.text.encoder if recipe.text is not None else None)
    state = process_state(args.device)  # under `accelerate launch`, each process encodes its share
    n = tokenize_dataset(data.source, tokenizer, out, image_size=data.image_size, hflip=data.hflip,
                         tokenizer_config=args.tokenizer_config, device=args.device or str(state.device),
                         batch_size=args.batch_size, strict_images=args.strict_images, captions=data.captions,
                         text_encoder=encoder, crop=data.crop, resize=data.resize, workers=args.workers,
                         shard_size=args.shard_size, state=state)
    if state.is_main_process:
        print(f"token cache with {n} items written to {out}")
        _report_image_problems(out)


def _report_image_problems(cache: str) -> None:
    """Say how many images were skipped as unreadable or upscaled (recorded in the cache's meta.json)."""
    from autonat.data.images import MAX_PIXELS
    from autonat.data.token_cache import read_token_cache

    meta = read_token_cache(cache).meta
    if meta.get("text_encoder"):
        print(f"caption features: {meta['num_captions']} captions encoded by {meta['text_encoder']['name']}")
    if meta.get("uncaptioned_images"):
        print(f"left out {meta['uncaptioned_images']} image(s) of {meta.get('captions_file')} without a caption")
    if meta.get("skipped_images"):
        files = meta.get("skipped_files", [])
        print(f"skipped {meta['skipped_images']} unreadable image(s), e.g. {', '.join(files[:3])} "
              "(--strict-images makes this an error)")
    if meta.get("too_large_images"):
        files = meta.get("too_large_files", [])
        print(f"skipped {meta['too_large_images']} image(s) too large (over {MAX_PIXELS} pixels), e.g. "
              f"{', '.join(files[:3])} (--strict-images makes this an error)")
    if meta.get("empty_classes"):
        names = meta["empty_classes"]
        print(f"autonat: warning: class folder(s) {', '.join(names)} hold no images; their class ids are kept "
              "(the generator never sees them)", file=sys.stderr)
    if meta.get("loose_images"):
        print(f"autonat: warning: {meta['loose_images']} image(s) directly in {meta.get('source')} are in no "
              "class folder and were not read (put them in <class>/)", file=sys.stderr)
    if meta.get("upscaled_images"):
        print(f"upscaled {meta['upscaled_images']} image(s) smaller than the tokenizer's input size")


def cmd_demo_text_data(args) -> None:
    from autonat.data.demo_text import HELDOUT_PAIRS, HELDOUT_PHRASINGS, write_demo_text

    counts = write_demo_text(args.out, per_pair=args.per_pair, seed=args.seed)
    print(f"captioned demo written to {args.out}: {counts['train_images']} training images with "
          f"{counts['train_captions']} captions (train.jsonl), {counts['reference_images']} reference images of "
          f"held-out digits (reference.jsonl), prompt sets prompts_*.jsonl")
    print(f"held out of training: pairs {' '.join(f'{a}{b}' for a, b in HELDOUT_PAIRS)}; phrasings "
          + "; ".join(repr(t) for t in HELDOUT_PHRASINGS))
