"""Encoding a dataset once with the frozen tokenizer into a token cache."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from autonat.data.captions import (
    CaptionImageDataset,
    open_text_encoder,
    read_captions,
    write_caption_features,
)
from autonat.data.images import is_demo_source, open_dataset, source_image_size
from autonat.data.token_cache import TokenCache, check_cache_output, write_token_cache
from autonat.errors import AutonatError
from autonat.tokenizers.base import fingerprint
from autonat.tokenizers.loader import load_tokenizer


def tokenizer_identity(path: str | Path, tokenizer, config: str | Path | None = None) -> dict:
    """What a cache or checkpoint records about its tokenizer."""
    ident = {"path": str(path), "fingerprint": fingerprint(path), "kind": getattr(tokenizer, "kind", "unknown"),
             "codebook_size": int(tokenizer.codebook_size), "grid": list(tokenizer.grid),
             "image_size": int(tokenizer.image_size)}
    if config is not None:
        ident["config"] = str(config)
    return ident


def verify_tokenizer(recorded: dict, path: str | Path, user: str, fix: str, force: bool = False) -> None:
    """Check that the tokenizer at ``path`` is the one ``user`` (a checkpoint, a cache) recorded.

    The check compares content fingerprints, so a tokenizer replaced or
    retrained in place is caught. A record without a fingerprint (released
    weights converted without their tokenizer) passes. A mismatch is a
    one-line :class:`AutonatError` naming ``fix``; with ``force`` it is a
    warning on stderr and the work goes on.
    """
    expected = recorded.get("fingerprint")
    if not expected:
        return
    try:
        actual = fingerprint(path)
    except OSError:  # a format without one weights file: nothing to compare
        return
    if actual == expected:
        return
    problem = (f"tokenizer {path} has fingerprint {actual} but {user} was made with fingerprint {expected} "
               f"(recorded path {recorded.get('path')})")
    if not force:
        raise AutonatError(f"{problem}; {fix}, or pass --force (force=True) to use it anyway")
    print(f"autonat: warning: {problem}; going on because of --force", file=sys.stderr, flush=True)


def verify_cache_tokenizer(cache: TokenCache, force: bool = False) -> None:
    """The tokenizer a cache was made with must not have been replaced or retrained since.

    See :func:`verify_tokenizer`; a cache whose tokenizer is no longer where
    it records is not checked.
    """
    path = cache.tokenizer_path()
    if path is not None:
        verify_tokenizer(cache.meta.get("tokenizer", {}), path, f"token cache {cache.path}",
                         fix="encode the data again with `autonat tokenize`", force=force)


@torch.inference_mode()
def tokenize_dataset(source: str, tokenizer_path: str | Path, out: str | Path, image_size: int | None = None,
                     hflip: bool = False, tokenizer_config: str | Path | None = None, device: str = "cpu",
                     batch_size: int = 256, split: str | None = None, strict_images: bool = False,
                     captions: str | Path | None = None, text_encoder: str | None = None, crop: bool = True,
                     encoder=None) -> int:
    """Encode every image of ``source`` (and its mirror image if ``hflip``); returns the item count.

    With ``captions`` (a COCO ``captions_*.json`` or a JSONL file, image
    paths relative to ``source``, see :mod:`autonat.data.captions`) the
    images are the captioned ones, and every caption plus the empty one is
    encoded once by the text encoder ``text_encoder`` (a spec for
    :func:`autonat.text.load_text_encoder`; ``encoder`` passes one already
    loaded). The images' mirror copies share their captions. ``crop=False``
    keeps each resized image whole (non-square images; the token grid is
    then the tokenizer's output for that shape).

    ``split`` defaults to what a generator trains on (see
    :func:`~autonat.data.images.open_dataset`). The cache's ``meta.json``
    records the class names (``class_names``, position = class id), class
    folders without images (``empty_classes``: their ids are kept), and the
    images skipped as unreadable (``skipped_images``, ``skipped_files``) or
    too large (``too_large_images``, ``too_large_files``); with
    ``strict_images`` either is an error instead.
    """
    check_cache_output(out)
    if captions is not None and text_encoder is None and encoder is None:
        raise AutonatError("a captioned dataset needs a text encoder: set text.encoder in the recipe "
                           "(or pass --text-encoder)")
    listing = read_captions(captions, source) if captions is not None else None
    if listing is not None and encoder is None:
        encoder = open_text_encoder(text_encoder, device=device)
    tokenizer = load_tokenizer(tokenizer_path, tokenizer_config, device=device)
    size = image_size or tokenizer.image_size
    check_image_size(source, size, tokenizer, tokenizer_path)
    if listing is not None:
        dataset = CaptionImageDataset(listing, size, crop=crop)
    else:
        dataset = open_dataset(source, size, split=split, strict=strict_images)
    tokens, labels, grid = [], [], list(tokenizer.grid)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for images, y in tqdm(loader, desc="tokenize", dynamic_ncols=True):
        images = images.to(device)
        views = [images, images.flip(-1)] if hflip else [images]
        for view in views:
            encoded = tokenizer.encode(view)
            grid = list(encoded.shape[1:])
            tokens.append(encoded.flatten(1).cpu().numpy())
            labels.append(y.numpy())  # for captioned data: the image's position in the listing
    meta = {
        "tokenizer": tokenizer_identity(tokenizer_path, tokenizer, tokenizer_config),
        "grid": grid,
        "codebook_size": int(tokenizer.codebook_size),
        "num_classes": int(dataset.num_classes),
        "augmentation": "hflip" if hflip else "none",
        "source": str(source),
        "skipped_images": len(getattr(dataset, "skipped", [])),
        "skipped_files": [str(f) for f in getattr(dataset, "skipped", [])[:100]],
        "upscaled_images": int(getattr(dataset, "upscaled", 0)),
        "too_large_images": len(getattr(dataset, "too_large", [])),
        "too_large_files": getattr(dataset, "too_large", [])[:100],
        "class_names": list(dataset.classes),
        "empty_classes": list(getattr(dataset, "empty_classes", [])),
        "loose_images": len(getattr(dataset, "loose", [])),
    }
    tokens_np, labels_np, extra = np.concatenate(tokens), np.concatenate(labels), None
    if listing is not None:
        meta.update(captions_file=str(captions), uncaptioned_images=listing.uncaptioned)
        groups = tuple(listing.captions[i] for i in labels_np)  # a mirror copy shares its image's captions
        labels_np = np.full(len(labels_np), -1)

        def extra(folder: Path) -> dict:
            return write_caption_features(folder, encoder, text_encoder or encoder.name, groups,
                                          batch_size=batch_size,
                                          progress=lambda it: tqdm(it, desc="captions", dynamic_ncols=True))
    write_token_cache(out, tokens_np, labels_np, meta, extra=extra)
    return len(labels_np)


def check_image_size(source: str, image_size: int, tokenizer, tokenizer_path: str | Path) -> None:
    """One line naming both sizes when ``source``'s images do not have the tokenizer's input size."""
    size, wanted = source_image_size(source, image_size), tokenizer.image_size
    if size == wanted:
        return
    retrain = f"use a tokenizer trained at resolution {size}"
    if is_demo_source(source):
        raise AutonatError(f"the demo digits are {size}px but the tokenizer {tokenizer_path} takes {wanted}px "
                           f"images; {retrain}")
    raise AutonatError(f"data.image_size is {size}px but the tokenizer {tokenizer_path} takes {wanted}px images; "
                       f"set data.image_size: {wanted}, or {retrain}")
