"""What a recipe's ``data.source`` names, without torch: the built-in demo digits or an image folder.

Recipes are parsed and checked before torch is imported (a typo fails fast);
:mod:`autonat.data.demo` and :mod:`autonat.data.images` read the images.
"""
from __future__ import annotations

DEMO_NAME = "mnist-demo"
DEMO_IMAGE_SIZE = 32
RESIZES = ("bilinear", "adm")  # resize policies of :func:`autonat.data.images.resize_centre_crop`


def is_demo_source(source: str) -> bool:
    return str(source) in ("demo", DEMO_NAME)


def source_image_size(source: str, image_size: int | None) -> int | None:
    """The side of the images ``source`` yields: the demo's own 32, else ``image_size``."""
    return DEMO_IMAGE_SIZE if is_demo_source(source) else image_size
