"""The VQ tokenizer interface and the loader that picks an implementation.

A tokenizer maps images in [0, 1] (``[B, 3, H, W]``) to a grid of codebook
ids (``[B, h, w]``) and back. The generator and sampler only see this
interface, so any VQ model that provides it can drive them.

A tokenizer lives on disk as a directory with ``tokenizer.json`` (its kind
and architecture) and ``model.safetensors``. Foreign checkpoints (taming
``.ckpt`` + YAML, the MaskGIT VQGAN) are read by :func:`load_tokenizer` too.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

from .errors import AutonatError

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
    h = hashlib.sha256()
    with open(weights, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def load_tokenizer(path: str | Path, config: str | Path | None = None,
                   device: torch.device | str = "cpu") -> torch.nn.Module:
    """Load a tokenizer, frozen and in eval mode.

    ``path`` is one of: a directory written by this toolkit; a taming-transformers
    checkpoint (``.ckpt``/``.pth``) with ``config`` its YAML or JSON; the
    MaskGIT VQGAN checkpoint (``vqgan_jax_strongaug.ckpt``, detected by its keys).
    """
    path = Path(path)
    if not path.exists():
        raise AutonatError(
            f"tokenizer not found: {path} (train one with `autonat train-tokenizer`, "
            "or point at a taming-transformers .ckpt with --tokenizer-config, see README 'Using released weights')"
        )
    if path.is_dir():
        model = _load_native(path)
    else:
        from .released import load_foreign_tokenizer

        model = load_foreign_tokenizer(path, config)
    model.requires_grad_(False)
    return model.eval().to(device)


def _load_native(path: Path) -> torch.nn.Module:
    meta_file = path / TOKENIZER_FILE
    if not meta_file.exists():
        raise AutonatError(f"{path} is not a tokenizer directory: {TOKENIZER_FILE} is missing")
    meta = json.loads(meta_file.read_text())
    kind = meta.get("kind")
    if kind == "taming-vqgan":
        from .vqgan import VQGAN, VQGANConfig

        model = VQGAN(VQGANConfig.from_dict(meta["config"]))
    elif kind == "maskgit-vqgan":
        from .maskgit_vqgan import MaskGITVQGAN, MaskGITVQGANConfig

        model = MaskGITVQGAN(MaskGITVQGANConfig.from_dict(meta["config"]) if meta.get("config") else None)
    else:
        raise AutonatError(f"{meta_file}: unknown tokenizer kind {kind!r}")
    from .weights import load_state_dict_file, load_strict

    load_strict(model, load_state_dict_file(path / WEIGHTS_FILE), what=f"tokenizer {path}")
    return model
