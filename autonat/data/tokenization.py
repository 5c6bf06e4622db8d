"""Encoding a dataset once with the frozen tokenizer into a token cache."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from autonat.data.images import open_dataset
from autonat.data.token_cache import check_cache_output, write_token_cache
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


@torch.inference_mode()
def tokenize_dataset(source: str, tokenizer_path: str | Path, out: str | Path, image_size: int | None = None,
                     hflip: bool = False, tokenizer_config: str | Path | None = None, device: str = "cpu",
                     batch_size: int = 256, split: str = "train", strict_images: bool = False) -> int:
    """Encode every image of ``source`` (and its mirror image if ``hflip``); returns the item count.

    Unreadable images are skipped and counted in the cache's ``meta.json``
    (``skipped_images``, ``skipped_files``), or an error with ``strict_images``.
    """
    check_cache_output(out)
    tokenizer = load_tokenizer(tokenizer_path, tokenizer_config, device=device)
    size = image_size or tokenizer.image_size
    dataset = open_dataset(source, size, split=split, strict=strict_images)
    if getattr(dataset, "image_size", size) != tokenizer.image_size:
        raise AutonatError(f"images are {dataset.image_size}px but the tokenizer expects {tokenizer.image_size}px")
    tokens, labels = [], []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for images, y in tqdm(loader, desc="tokenize", dynamic_ncols=True):
        images = images.to(device)
        views = [images, images.flip(-1)] if hflip else [images]
        for view in views:
            tokens.append(tokenizer.encode(view).flatten(1).cpu().numpy())
            labels.append(y.numpy())
    meta = {
        "tokenizer": tokenizer_identity(tokenizer_path, tokenizer, tokenizer_config),
        "grid": list(tokenizer.grid),
        "codebook_size": int(tokenizer.codebook_size),
        "num_classes": int(getattr(dataset, "num_classes", int(np.concatenate(labels).max()) + 1)),
        "augmentation": "hflip" if hflip else "none",
        "source": str(source),
        "skipped_images": len(getattr(dataset, "skipped", [])),
        "skipped_files": [str(f) for f in getattr(dataset, "skipped", [])[:100]],
        "upscaled_images": int(getattr(dataset, "upscaled", 0)),
    }
    tokens_np, labels_np = np.concatenate(tokens), np.concatenate(labels)
    write_token_cache(out, tokens_np, labels_np, meta)
    return len(labels_np)
