"""Writing samples: PNG or JPEG grids (torchvision), per-image PNGs and ADM-style ``.npz`` batches."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision.utils import save_image

from autonat.data.images import to_uint8_hwc
from autonat.errors import AutonatError
from autonat.io.atomic import atomic_path

#: Image formats of a grid, by the extension of its path.
GRID_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}


def grid_format(path: str | Path) -> str:
    """The image format ``path``'s extension asks for (check it before sampling), else a one-line error."""
    suffix = Path(path).suffix.lower()
    if suffix not in GRID_FORMATS:
        raise AutonatError(f"{path}: a grid is written as {', '.join(GRID_FORMATS)}, not "
                           f"{suffix or 'a name without extension'}; change --out")
    return GRID_FORMATS[suffix]


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 8) -> None:
    """A grid, ``nrow`` images per row, written atomically as PNG or JPEG by the path's extension."""
    fmt = grid_format(path)
    with atomic_path(path) as tmp:
        save_image(images.float(), tmp, nrow=nrow, padding=2, format=fmt)


def png_name(index: int, label: int, class_names: list[str] | None = None) -> str:
    """``{index:06d}_{class name}.png`` when the class is named, else ``{index:06d}_class{label}.png``."""
    named = class_names is not None and 0 <= label < len(class_names)
    return f"{index:06d}_{class_names[label] if named else f'class{label}'}.png"


def save_pngs(images: torch.Tensor, labels: np.ndarray, folder: str | Path,
              class_names: list[str] | None = None) -> None:
    """One PNG per image, named by :func:`png_name`."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, (img, y) in enumerate(zip(to_uint8_hwc(images), labels)):
        with atomic_path(folder / png_name(i, int(y), class_names)) as tmp:
            Image.fromarray(img).save(tmp, format="png")


def save_npz(images: torch.Tensor, labels: np.ndarray, path: str | Path) -> None:
    """``arr_0``: uint8 N x H x W x 3, ``arr_1``: labels (the ADM evaluation layout)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, to_uint8_hwc(images), np.asarray(labels, dtype=np.int64))
