"""The shapes and strategies the benchmarks run.

Model shapes are AutoNAT's ImageNet 256x256 ones: 16x16 = 256 tokens from a
codebook of 1024, 1000 classes; AutoNAT-S (13 blocks, width 512) and
AutoNAT-L (25 blocks, width 768, 8 heads). Weights are random but seeded,
so every process (ours, baseline) builds the very same network.
"""
from __future__ import annotations

from pathlib import Path

import torch

from autonat.generator.uvit import UViT, UViTConfig, named_config
from autonat.strategy.core import Strategy, maskgit_cosine
from autonat.strategy.files import load_strategy

SIZES = {
    "s": ("AutoNAT-S", "autonat-s"),
    "l": ("AutoNAT-L", "autonat-l"),
    "tiny": ("tiny", "tiny"),  # for checking the scripts in seconds
}

#: The released AutoNAT-L T=8 strategy (LeapLabTHU/ImprovedNAT, configs/AutoNAT_L-T8_strategy.yaml), the copy
#: the tests read. Its first three CFG scales are 1e-4, i.e. "no guidance" (see SamplerOptions.cfg_zero_threshold).
AUTONAT_L_T8 = Path(__file__).resolve().parents[1] / "tests" / "data" / "AutoNAT_L-T8_strategy.yaml"

STRATEGY_NAMES = {
    "t8": "AutoNAT-L T=8 (official)",
    "cosine": "MaskGIT cosine T=8, CFG 0",
    "cosine-cfg": "MaskGIT cosine T=8, CFG 2",
}


def model_config(size: str) -> UViTConfig:
    """The U-ViT of a named benchmark size (codebook 1024, 16x16 grid, 1000 classes)."""
    return named_config(SIZES[size][1], codebook_size=1024, grid=(16, 16), num_classes=1000)


def build_model(size: str, device: torch.device, seed: int = 0) -> UViT:
    """The seeded random-weight U-ViT of ``size`` on ``device``, in eval mode."""
    torch.manual_seed(seed)
    return UViT(model_config(size)).to(device).eval()


def strategy(name: str) -> Strategy:
    """A benchmark strategy by short name (see :data:`STRATEGY_NAMES`)."""
    if name == "t8":
        return load_strategy(AUTONAT_L_T8)
    if name == "cosine":
        return maskgit_cosine(8)
    if name == "cosine-cfg":
        return maskgit_cosine(8, cfg_scale=2.0)
    raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGY_NAMES)}")


def sample_labels(batch: int, num_classes: int = 1000) -> list[int]:
    """Fixed class labels for a batch (spread over the classes)."""
    return [(7 + 131 * i) % num_classes for i in range(batch)]
