"""An image-folder dataset: one subfolder per class, any image format PIL reads.

Images are converted to RGB (grayscale, palette and RGBA alike), resized so the
shorter side is ``image_size`` and centre-cropped. Unreadable files are found
up front: skipped and counted by default, or an error with ``strict=True``.
"""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.transforms import functional as TF

from .errors import AutonatError

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
        for label, name in enumerate(self.classes):
            for file in sorted((self.root / name).iterdir()):
                if file.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                if _readable(file):
                    self.items.append((file, label))
                elif strict:
                    raise AutonatError(f"unreadable image {file} (remove it, or drop --strict-images to skip it)")
                else:
                    self.skipped.append(file)
        if not self.items:
            raise AutonatError(f"no readable images under {self.root} (expected {self.root}/<class>/*.png|jpg)")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        file, label = self.items[i]
        with Image.open(file) as img:
            img = img.convert("RGBA").convert("RGB") if img.mode in ("P", "LA") else img.convert("RGB")
        img = TF.resize(img, self.image_size, antialias=True)
        img = TF.center_crop(img, self.image_size)
        return TF.to_tensor(img), label


def _readable(file: Path) -> bool:
    try:
        with Image.open(file) as img:
            img.load()
        return True
    except (OSError, UnidentifiedImageError, ValueError):
        return False
