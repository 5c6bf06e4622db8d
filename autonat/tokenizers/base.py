"""The VQ tokenizer interface every tokenizer provides, and its content fingerprint."""
from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

from autonat.io.identity import file_sha256

TOKENIZER_FILE = "tokenizer.json"
WEIGHTS_FILE = "model.safetensors"


@runtime_checkable
class Tokenizer(Protocol):
    """What the rest of the toolkit needs from a VQ tokenizer."""

    codebook_size: int
    image_size: int  # side of the square images it encodes

    @property
    def grid(self) -> tuple[int, int]:
        """Token grid ``(h, w)`` of one ``image_size`` image."""

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` in [0, 1] -> ``LongTensor[B, h, w]``."""

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """``LongTensor[B, h, w]`` -> ``[B, 3, H, W]`` in [0, 1]."""


class GridTokenizer(torch.nn.Module):
    """Base of VQ models whose ``config`` has ``n_embed``, ``resolution`` and ``downsample``.

    Provides the :class:`Tokenizer` properties from the config, so each
    architecture only defines ``encode`` and ``decode``.
    """

    config: object

    @property
    def codebook_size(self) -> int:
        return self.config.n_embed

    @property
    def image_size(self) -> int:
        return self.config.resolution

    @property
    def grid(self) -> tuple[int, int]:
        side = self.config.resolution // self.config.downsample
        return side, side


def fingerprint(path: str | Path) -> str:
    """A short content hash of a tokenizer's weights, stored with token caches and checkpoints."""
    path = Path(path)
    weights = path / WEIGHTS_FILE if path.is_dir() else path
    return file_sha256(weights)[:16]
