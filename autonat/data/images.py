"""An image-folder dataset: one subfolder per class, any image format PIL reads.

Images are converted to RGB (grayscale, palette and RGBA alike; alpha is
dropped, not composited; 16-bit and float greys are rescaled to 8 bits),
resized so the shorter side is ``image_size`` and centre-cropped. Images
smaller than ``image_size`` are upscaled the same way (bilinear), not
rejected: the count of such images is kept in ``upscaled`` so a caller can
warn. Unreadable (corrupt, truncated) files are found up front: skipped and
counted by default, or an error with ``strict=True`` (``--strict-images``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.transforms import functional as TF

from autonat.data.demo import DEMO_NAME, DemoDigits
from autonat.errors import AutonatError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"}


class ImageFolderDataset(Dataset):
    """``root/<class name>/<image>``; class ids follow the sorted folder names."""

    def __init__(self, root: str | Path, image_size: int, strict: bool = False) -> None:
        self.root = Path(root)
        self.image_size = image_size
        if not self.root.is_dir():
            raise AutonatError(f"image folder not found: {self.root}")
        self.classes = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        if not self.classes:
            raise AutonatError(f"{self.root} has no class subfolders; put images in {self.root}/<class>/")
        self.num_classes = len(self.classes)
        self.items: list[tuple[Path, int]] = []
        self.skipped: list[Path] = []
        self.upscaled = 0
        for label, name in enumerate(self.classes):
            for file in sorted((self.root / name).iterdir()):
                if file.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                size = _readable_size(file)
                if size is not None:
                    self.items.append((file, label))
                    self.upscaled += min(size) < image_size
                elif strict:
                    raise AutonatError(f"unreadable image {file} (remove it, or drop --strict-images to skip it)")
                else:
                    self.skipped.append(file)
        if not self.items:
            unreadable = f" ({len(self.skipped)} unreadable files skipped)" if self.skipped else ""
            raise AutonatError(f"no readable images under {self.root}{unreadable} "
                               f"(expected {self.root}/<class>/*.png|jpg)")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        file, label = self.items[i]
        with Image.open(file) as img:
            img = to_rgb(img)
        img = TF.resize(img, self.image_size, antialias=True)
        img = TF.center_crop(img, self.image_size)
        return TF.to_tensor(img), label


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Floats in [0, 1] ``[N, C, H, W]`` -> uint8 on the CPU: ``round(255 * clamp(x, 0, 1))``.

    The one conversion every written or scored image goes through (PNGs,
    ``.npz`` batches, generated and demo images for FID), so they agree bit for bit.
    """
    return images.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu()


def to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    """:func:`to_uint8` as a channels-last array ``[N, H, W, C]`` (PIL's and the ``.npz`` batches' layout)."""
    return to_uint8(images).permute(0, 2, 3, 1).numpy()


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode as 8-bit RGB.

    Palette and grey-with-alpha go through RGBA (so a palette's transparency
    index is honoured before alpha is dropped); 16/32-bit integer and float
    greys are rescaled (PIL's own conversion clips them, turning a 16-bit
    image white and a [0, 1] float image black).
    """
    if img.mode in ("P", "PA", "LA"):
        return img.convert("RGBA").convert("RGB")
    if img.mode.startswith("I") or img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        top = float(arr.max()) if arr.size else 0.0
        if img.mode.startswith("I;16") or (img.mode == "I" and top > 255):
            scale = 65535.0
        else:
            scale = 1.0 if img.mode == "F" and top <= 1.0 else 255.0
        arr = np.clip(arr / scale * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    return img.convert("RGB")


def _readable_size(file: Path) -> tuple[int, int] | None:
    """The image's (width, height) if PIL decodes all of it, else None (corrupt or truncated)."""
    try:
        with Image.open(file) as img:
            img.load()
            return img.size
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None

# --------------------------------------------------------------------------- image folders
def open_dataset(source: str, image_size: int | None = None, split: str = "train", strict: bool = False) -> Dataset:
    """``"demo"`` for the built-in digits (``split`` applies), else an image folder.

    ``strict``: an unreadable image in the folder is an error instead of being skipped and counted.
    """
    if source in ("demo", DEMO_NAME):
        return DemoDigits(split)
    if image_size is None:
        raise AutonatError("an image folder needs --image-size")
    from autonat.data.images import ImageFolderDataset

    return ImageFolderDataset(source, image_size, strict=strict)
