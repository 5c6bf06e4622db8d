"""``autonat train-tokenizer`` and ``autonat tokenize``: parsing and wiring."""
from __future__ import annotations

from autonat.cli.args import read_recipe
from autonat.errors import AutonatError


# --------------------------------------------------------------------------- subcommands
def cmd_train_tokenizer(args) -> None:
    from dataclasses import asdict

    from autonat.data.images import open_splits
    from autonat.io.config import build
    from autonat.tokenizers.taming import VQGANConfig
    from autonat.tokenizers.training import TokenizerTrainConfig, train_tokenizer

    recipe = read_recipe(args)
    section = dict(recipe.get("tokenizer", {}))
    out_dir = args.out or section.pop("out_dir", None)
    section.pop("out_dir", None)
    if out_dir is None:
        raise AutonatError("say where to write the tokenizer: tokenizer.out_dir in the config, or --out")
    vq = build(VQGANConfig, section.pop("vqgan", {}), "tokenizer.vqgan")
    config = build(TokenizerTrainConfig, {**section, "vqgan": vq}, "tokenizer")
    data = recipe.get("data", {})
    train, heldout = open_splits(data.get("source", "demo"), data.get("image_size"))
    report = train_tokenizer(config, train, out_dir, heldout=heldout, device=args.device)
    print(f"tokenizer written to {out_dir}")
    scores = ", ".join(f"{k}={v:.4g}" for k, v in asdict(report).items() if k != "num_images")
    if len(heldout):
        print(f"held-out report on {report.num_images} images never trained on: {scores}")
    else:
        print(f"report on {report.num_images} training images (no class has 2 images, so none is held out): "
              f"{scores}")


def cmd_tokenize(args) -> None:
    from autonat.data.tokenization import tokenize_dataset

    recipe = read_recipe(args)
    data = recipe.get("data", {})
    tokenizer = args.tokenizer or recipe.get("tokenizer", {}).get("out_dir")
    out = args.out or recipe.get("cache")
    if not tokenizer or not out:
        raise AutonatError("need a tokenizer (--tokenizer or tokenizer.out_dir) and an output (--out or cache)")
    n = tokenize_dataset(data.get("source", "demo"), tokenizer, out, image_size=data.get("image_size"),
                         hflip=bool(data.get("hflip", False)), tokenizer_config=args.tokenizer_config,
                         device=args.device, batch_size=args.batch_size, strict_images=args.strict_images)
    print(f"token cache with {n} items written to {out}")
    _report_image_problems(out)


def _report_image_problems(cache: str) -> None:
    """Say how many images were skipped as unreadable or upscaled (recorded in the cache's meta.json)."""
    from autonat.data.images import MAX_PIXELS
    from autonat.data.token_cache import read_token_cache

    meta = read_token_cache(cache).meta
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
        print(f"warning: class folder(s) {', '.join(names)} hold no images; their class ids are kept "
              "(the generator never sees them)")
    if meta.get("upscaled_images"):
        print(f"upscaled {meta['upscaled_images']} image(s) smaller than the tokenizer's input size")
