"""An image-folder dataset: one subfolder per class, any image format PIL reads.

Discovery (one rule, shared by ``tokenize``, ``train-tokenizer``,
``fid-stats`` and ``eval --images``): :func:`list_images` finds every file
with an image suffix under a folder, recursively, sorted by path, skipping
hidden files and folders (a name starting with ``.``). In a dataset, the
class folders are the root's first-level subfolders (hidden ones excluded),
class id = position in name order, and a class's images are
``list_images(root/<class>)``, nested subfolders included; images directly in
the root belong to no class and are not read (listed in ``loose`` so a caller
can say so). A class folder with no images
keeps its id (so the other classes' ids never shift) and is listed in
``empty_classes`` so a caller can warn. ``fid-stats`` and ``eval --images``
read ``list_images(root)``: a folder of generated PNGs has no class folders.

Images are converted to RGB (grayscale, palette and RGBA alike; alpha is
dropped, not composited; 16-bit and float greys are rescaled to 8 bits),
resized so the shorter side is ``image_size`` and centre-cropped
(:func:`resize_centre_crop`: torchvision's antialiased bilinear resize, or
``adm``, the ADM / U-ViT / AutoNAT ImageNet preprocessing). Images
smaller than ``image_size`` are upscaled the same way (bilinear), not
rejected: the count of such images is kept in ``upscaled`` so a caller can
warn. Unreadable (corrupt, truncated) files and images larger than
:data:`MAX_PIXELS` are found up front: skipped and counted by default
(``skipped``, ``too_large``), or an error with ``strict=True``
(``--strict-images``). A folder opened with ``probe=False`` (what
``tokenize`` does: decoding 1.28 M images up front in one process would
double its work) is only listed; :class:`CheckedImages` then finds those
images where they are decoded, in the DataLoader's workers.

Held-out split: of every class with at least 2 images, a fixed
:data:`HELDOUT_FRACTION` (at least 1 image) is held out, chosen by a
permutation seeded from the class name, so the split does not depend on the
other classes. ``train-tokenizer`` reports on these images and never trains
on them; ``tokenize`` encodes every image (split ``all``), since the
generator is scored against reference statistics, not these images.
"""
from __future__ import annotations

import contextlib
import copy
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.transforms import functional as TF

from autonat.data.demo import DemoDigits
from autonat.data.sources import RESIZES, is_demo_source
from autonat.errors import AutonatError, path_hint

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
#: The largest image read, in pixels (16384 x 16384, about 0.8 GB as 8-bit RGB). PIL's own guard against
#: decompression bombs (about 89 M pixels) is lifted only inside :func:`open_image`, which applies this one.
MAX_PIXELS = 2**28
#: The fraction of each class (of 2 or more images) an image folder holds out; at least 1 image.
HELDOUT_FRACTION = 0.05
HELDOUT_SEED = 0
SPLITS = ("train", "heldout", "all")
"""How an image becomes ``size`` x ``size`` (:func:`resize_centre_crop`)."""


# --------------------------------------------------------------------------- discovery
def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def list_images(folder: str | Path) -> list[Path]:
    """Every image file under ``folder``, recursively, sorted; hidden files and folders skipped."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*")
                  if p.suffix.lower() in IMAGE_SUFFIXES and not _hidden(p, folder) and p.is_file())


def class_folders(root: str | Path) -> list[Path]:
    """The class folders of a dataset: ``root``'s first-level subfolders, hidden ones excluded, by name."""
    return sorted((p for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.name)


@contextlib.contextmanager
def _pil_guard_lifted() -> Iterator[None]:
    """PIL's decompression-bomb limit lifted for the ``with`` body only (a size check of ours replaces it)."""
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def too_large(size: tuple[int, int]) -> str | None:
    """``"too large (W x H > limit pixels)"`` for an image over :data:`MAX_PIXELS`, else None."""
    w, h = size
    return f"too large ({w} x {h} > {MAX_PIXELS} pixels, the limit)" if w * h > MAX_PIXELS else None


@contextlib.contextmanager
def open_image(file: str | Path) -> Iterator[Image.Image]:
    """``PIL.Image.open`` accepting images up to :data:`MAX_PIXELS`; a larger one is a one-line error.

    This size check replaces PIL's global guard while the ``with`` body runs
    (decoding and converting the image); the rest of the process keeps PIL's
    default.
    """
    with _pil_guard_lifted(), Image.open(file) as img:
        reason = too_large(img.size)
        if reason:
            raise AutonatError(f"image {file} is {reason}; downscale it or move it out of the folder")
        yield img


# --------------------------------------------------------------------------- the dataset
class ImageFolderDataset(Dataset):
    """``root/<class name>/**/<image>``; class ids follow the sorted folder names (see the module notes).

    ``split`` is ``"all"``, ``"train"`` or ``"heldout"`` (the fixed held-out
    images, see :func:`heldout_mask`); :meth:`subset` gives another split
    without reading the folder again.
    """

    def __init__(self, root: str | Path, image_size: int, strict: bool = False, split: str = "all",
                 probe: bool = True, resize: str = "bilinear") -> None:
        self.root = Path(root)
        self.image_size = image_size
        self.resize = check_resize(resize)
        if not self.root.is_dir():
            raise AutonatError(f"image folder not found: {self.root}{path_hint(self.root)}")
        folders = class_folders(self.root)
        if not folders:
            raise AutonatError(f"{self.root} has no class subfolders; put images in {self.root}/<class>/")
        self.classes = [f.name for f in folders]
        self.loose = sorted(p for p in self.root.iterdir()
                            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        self.num_classes = len(self.classes)
        self.all_items: list[tuple[Path, int]] = []
        self.skipped: list[Path] = []
        self.too_large: list[str] = []  # "path (W x H)"
        self.upscaled = 0
        for label, folder in enumerate(folders):
            for file in list_images(folder):
                if probe:
                    self._probe(file, label, strict)
                else:
                    self.all_items.append((file, label))
        if not self.all_items:
            unreadable = f" ({len(self.skipped)} unreadable files skipped)" if self.skipped else ""
            raise AutonatError(f"no readable images under {self.root}{unreadable} "
                               f"(expected {self.root}/<class>/*.png|jpg)")
        counts = np.bincount([label for _, label in self.all_items], minlength=self.num_classes)
        self.empty_classes = [name for name, n in zip(self.classes, counts) if n == 0]
        self.heldout = heldout_mask([label for _, label in self.all_items], self.classes)
        self._select(split)

    def _probe(self, file: Path, label: int, strict: bool) -> None:
        """Keep ``file`` if PIL decodes all of it and it is not too large; else skip and count it (or refuse)."""
        try:
            with _pil_guard_lifted(), Image.open(file) as img:
                reason = too_large(img.size)
                if not reason:
                    img.load()
                size = img.size
        except (OSError, UnidentifiedImageError, ValueError) as exc:  # corrupt, truncated, not an image
            if strict:
                raise AutonatError(f"unreadable image {file} (remove it, or drop --strict-images to skip it)") from exc
            self.skipped.append(file)
            return
        if reason:
            if strict:
                raise AutonatError(f"image {file} is {reason} (downscale it, or drop --strict-images to skip it)")
            self.too_large.append(f"{file} ({size[0]} x {size[1]})")
            return
        self.all_items.append((file, label))
        self.upscaled += min(size) < self.image_size

    def _select(self, split: str) -> None:
        if split not in SPLITS:
            raise AutonatError(f"unknown split {split!r}; use {', '.join(SPLITS)}")
        self.split = split
        self.items = [item for item, held in zip(self.all_items, self.heldout)
                      if split == "all" or held == (split == "heldout")]

    def subset(self, split: str) -> "ImageFolderDataset":
        """The same folder restricted to ``split`` (``all``, ``train`` or ``heldout``), not read again."""
        other = copy.copy(self)
        other._select(split)
        return other

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image, label, _ = self.read(i)
        return image, label

    def read(self, i: int) -> tuple[torch.Tensor, int, bool]:
        """Item ``i`` as ``(image [3, S, S] in [0, 1], label, upscaled)``; a bad image raises (see CheckedImages)."""
        file, label = self.items[i]
        with open_image(file) as img:
            upscaled = min(img.size) < self.image_size
            img = resize_centre_crop(to_rgb(img), self.image_size, self.resize)
        return TF.to_tensor(img), label, upscaled


#: :class:`CheckedImages` statuses: read, unreadable (corrupt, truncated, not an image), too large.
READ, UNREADABLE, TOO_LARGE = 0, 1, 2


class CheckedImages(Dataset):
    """``dataset[i]`` as ``(image, label, status, upscaled)``: a bad image becomes a status, not an exception.

    ``status`` is :data:`READ`, :data:`UNREADABLE` or :data:`TOO_LARGE` (the
    image is then zeros); the caller drops or refuses such items. Datasets
    without a ``read`` method (the demo digits, captioned images) are passed
    through as read.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int, bool]:
        if not hasattr(self.dataset, "read"):
            image, label = self.dataset[i]
            return image, label, READ, False
        try:
            image, label, upscaled = self.dataset.read(i)
            return image, label, READ, upscaled
        except AutonatError:  # open_image's size limit
            status = TOO_LARGE
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
            status = UNREADABLE
        size = self.dataset.image_size
        return torch.zeros(3, size, size), self.dataset.items[i][1], status, False


def header_size(file: str | Path) -> tuple[int, int]:
    """An image's (width, height) from its header alone (nothing is decoded)."""
    with _pil_guard_lifted(), Image.open(file) as img:
        return img.size


def check_resize(resize: str) -> str:
    if resize not in RESIZES:
        raise AutonatError(f"unknown resize policy {resize!r}; choose one of {', '.join(RESIZES)}")
    return resize


def resize_centre_crop(img: Image.Image, size: int, resize: str = "bilinear") -> Image.Image:
    """``img`` resized so its shorter side is ``size``, then the central ``size`` x ``size`` square.

    ``bilinear``: torchvision's antialiased bilinear resize. ``adm``: the
    preprocessing of ADM's ``center_crop_arr``, which U-ViT and the official
    AutoNAT code use for ImageNet: halve with a box filter while the shorter
    side is at least ``2 size``, then bicubic to a shorter side of ``size``
    (each side ``round(side * size / shorter)``), then crop at
    ``((W - size) // 2, (H - size) // 2)``.
    """
    if check_resize(resize) == "bilinear":
        return TF.center_crop(TF.resize(img, size, antialias=True), size)
    while min(img.size) >= 2 * size:
        img = img.resize(tuple(x // 2 for x in img.size), resample=Image.BOX)
    scale = size / min(img.size)
    img = img.resize(tuple(round(x * scale) for x in img.size), resample=Image.BICUBIC)
    left, top = (img.size[0] - size) // 2, (img.size[1] - size) // 2
    return img.crop((left, top, left + size, top + size))


def heldout_mask(labels: list[int], classes: list[str]) -> np.ndarray:
    """Which items are held out: ``max(1, round(HELDOUT_FRACTION * n))`` of each class of ``n >= 2`` items.

    The items of class ``c`` are taken in their (sorted) order and permuted by
    a generator seeded from ``(HELDOUT_SEED, crc32(class name))``; the first
    ones of the permutation are held out.
    """
    labels = np.asarray(labels)
    held = np.zeros(len(labels), dtype=bool)
    for label, name in enumerate(classes):
        idx = np.flatnonzero(labels == label)
        if len(idx) < 2:
            continue
        k = max(1, round(HELDOUT_FRACTION * len(idx)))
        rng = np.random.default_rng([HELDOUT_SEED, zlib.crc32(name.encode())])
        held[idx[rng.permutation(len(idx))[:k]]] = True
    return held


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


# --------------------------------------------------------------------------- opening a source
def open_dataset(source: str, image_size: int | None = None, split: str | None = None,
                 strict: bool = False, probe: bool = True, resize: str = "bilinear") -> Dataset:
    """``"demo"`` for the built-in digits, else an image folder.

    ``split`` (``train``, ``heldout``, ``all``) defaults to what a generator
    trains on: the demo's ``train`` digits (its held-out digits are the FID
    reference), every image of a folder. ``strict``: an unreadable or too
    large image in the folder is an error instead of being skipped and counted.
    ``probe=False`` lists a folder without decoding it; ``resize``: see
    :func:`resize_centre_crop`.
    """
    if is_demo_source(source):
        return DemoDigits(split or "train")
    if image_size is None:
        raise AutonatError("an image folder needs data.image_size (or --image-size)")
    return ImageFolderDataset(source, image_size, strict=strict, split=split or "all", probe=probe, resize=resize)


def open_splits(source: str, image_size: int | None = None, strict: bool = False) -> tuple[Dataset, Dataset]:
    """The training and held-out images of ``source`` (the demo's fixed split, or a folder's, read once)."""
    if is_demo_source(source):
        return DemoDigits("train"), DemoDigits("heldout")
    everything = open_dataset(source, image_size, "all", strict)
    return everything.subset("train"), everything.subset("heldout")
