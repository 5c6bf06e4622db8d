"""Image sets to score: arrays, folders, .npz batches, the demo digits and generated samples."""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
import torch

from autonat.data.demo import demo_split, is_demo_reference
from autonat.data.images import to_uint8, to_uint8_hwc
from autonat.errors import AutonatError, path_hint


# --------------------------------------------------------------------------- image sets
class ImageSet(Protocol):
    """Images addressed by index, produced a batch at a time as uint8 ``[B, 3, H, W]``."""

    def __len__(self) -> int: ...

    def batch(self, indices: Sequence[int]) -> torch.Tensor: ...


@dataclass
class ArrayImages:
    """An in-memory uint8 array ``[N, H, W, C]`` (C = 1 or 3), e.g. an ``.npz`` batch's ``arr_0``."""

    array: np.ndarray

    def __len__(self) -> int:
        return len(self.array)

    def batch(self, indices: Sequence[int]) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(self.array[list(indices)])).permute(0, 3, 1, 2)
        return x.expand(-1, 3, -1, -1).contiguous() if x.shape[1] == 1 else x.contiguous()


@dataclass
class FolderImages:
    """Image files (searched recursively, sorted), read as RGB at their own size."""

    files: list[Path]

    def __len__(self) -> int:
        return len(self.files)

    def batch(self, indices: Sequence[int]) -> torch.Tensor:
        images = [self._read(self.files[i]) for i in indices]
        first_of_size = {}
        for i, x in zip(indices, images):
            first_of_size.setdefault(tuple(x.shape), self.files[i])
        if len(first_of_size) > 1:
            examples = ", ".join(f"{path} is {shape[2]}x{shape[1]}" for shape, path in list(first_of_size.items())[:3])
            raise AutonatError(f"images to score must share one size, but {examples}; resize them to one size first")
        return torch.stack(images)

    @staticmethod
    def _read(file: Path) -> torch.Tensor:
        from torchvision.transforms.functional import pil_to_tensor

        from autonat.data.images import open_image, to_rgb

        try:
            with open_image(file) as img:
                return pil_to_tensor(to_rgb(img))
        except OSError as exc:
            raise AutonatError(f"unreadable image {file}: {exc}") from exc


@dataclass
class GeneratedImages:
    """Samples of a :class:`~autonat.sampling.pipeline.Pipeline`; sample ``i`` is seeded from ``(seed, i)``."""

    pipeline: Any
    strategy: Any
    labels: list[int]
    seed: int
    options: Any = None

    def __post_init__(self) -> None:
        self.pipeline.check_labels(self.labels)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, indices: Sequence[int]) -> torch.Tensor:
        from autonat.sampling.sampler import sample_seeds

        labels = [self.labels[i] for i in indices]
        return to_uint8(self.pipeline.images(self.strategy, labels, sample_seeds(self.seed, list(indices)),
                                             self.options))


def demo_images(split: str) -> ArrayImages:
    """The built-in MNIST demo digits of ``split`` as uint8 32x32 RGB."""
    from autonat.data.demo import DemoDigits

    x = DemoDigits(split).images
    return ArrayImages(to_uint8_hwc(x))


def folder_images(root: Path) -> FolderImages:
    """Every image under ``root`` by the datasets' discovery rule (:func:`autonat.data.images.list_images`)."""
    from autonat.data.images import IMAGE_SUFFIXES, list_images

    files = list_images(root)
    if len(files) < 2:
        raise AutonatError(f"{root} holds {len(files)} image(s); FID needs at least 2 "
                           f"({', '.join(sorted(IMAGE_SUFFIXES))}, searched recursively, hidden files skipped)")
    return FolderImages(files)


# --------------------------------------------------------------------------- .npz files
def open_npz(path: Path):
    """Open an ``.npz`` without unpickling anything, or say why it cannot be read."""
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as exc:  # missing, truncated, not a zip, pickled objects
        # a JPEG or a text file given for an .npz: numpy's words (about pickled data) would mislead
        if Path(path).suffix != ".npz" and Path(path).is_file() and not zipfile.is_zipfile(path):
            raise AutonatError(f"{path} is not an .npz file; give an image folder, an .npz of images (arr_0) or "
                               "one of statistics (mu, sigma)") from exc
        raise AutonatError(f"cannot read {path} as an .npz file: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise AutonatError(f"{path} is a single .npy array, not an .npz with arr_0 (images) or mu/sigma (statistics)")
    return z


def npz_kind(z, path: Path) -> str:
    """``"statistics"`` (``mu`` and ``sigma``) or ``"images"`` (``arr_0``), else a clear error."""
    keys = set(z.files)
    if keys & {"mu", "sigma"}:
        missing = {"mu", "sigma"} - keys
        if missing:
            raise AutonatError(f"{path} has {' and '.join(sorted(keys & {'mu', 'sigma'}))} but no "
                               f"{' and '.join(sorted(missing))}: FID statistics need both mu (D) and sigma (D x D)")
        return "statistics"
    if "arr_0" in keys:
        return "images"
    raise AutonatError(f"{path} has neither mu/sigma (precomputed statistics) nor arr_0 (uint8 N x H x W x 3 images); "
                       f"its keys are {sorted(keys) or 'none'}")


def images_from_array(arr: np.ndarray, where: str) -> ArrayImages:
    """Check an ``arr_0`` batch: uint8, ``N x H x W x 3`` (or grey ``N x H x W [x 1]``), N >= 2."""
    if arr.dtype != np.uint8:
        raise AutonatError(f"{where}: arr_0 must be uint8 (0..255), found {arr.dtype}; convert float images in "
                           "[0, 1] with (x * 255).round().astype(np.uint8)")
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise AutonatError(f"{where}: arr_0 must be N x H x W x 3, found shape {arr.shape}")
    if len(arr) < 2:
        raise AutonatError(f"{where}: arr_0 holds {len(arr)} image(s); FID needs at least 2")
    return ArrayImages(arr)


def check_source_exists(source: str | Path) -> None:
    """One-line error unless ``source`` is ``demo:<split>`` or an existing folder or file."""
    if not is_demo_reference(str(source)) and not Path(source).exists():
        raise AutonatError(f"no such image folder or .npz file: {source}{path_hint(source)}")


def open_images(source: str | Path) -> ArrayImages | FolderImages:
    """An image folder, an ``.npz`` batch (``arr_0``), or ``demo:<split>``."""
    source = str(source)
    if is_demo_reference(source):
        return demo_images(demo_split(source))
    path = Path(source)
    if path.is_dir():
        return folder_images(path)
    check_source_exists(path)
    with open_npz(path) as z:
        if npz_kind(z, path) != "images":
            raise AutonatError(f"{path} holds precomputed statistics (mu/sigma), not images; it can only be a "
                               "reference")
        return images_from_array(z["arr_0"], str(path))


# --------------------------------------------------------------------------- a requested number of images
@dataclass
class FirstImages:
    """The first ``n`` images of another set."""

    images: ImageSet
    n: int

    def __len__(self) -> int:
        return self.n

    def batch(self, indices: Sequence[int]) -> torch.Tensor:
        return self.images.batch(indices)


def first_images(images: ImageSet, n: int | None, source: str) -> ImageSet:
    """``images`` cut to ``n`` (``-n``; None keeps all); asking for more than there are is an error."""
    if n is None or n == len(images):
        return images
    if n > len(images):
        raise AutonatError(f"-n {n} asks for more images than {source} holds ({len(images)}); "
                           f"pass -n {len(images)} or fewer, or drop -n to score them all")
    if n < 2:
        raise AutonatError(f"-n must be at least 2 (FID needs 2 images), got {n}")
    return FirstImages(images, n)
