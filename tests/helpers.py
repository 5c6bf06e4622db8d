"""Builders for tiny on-disk artefacts used by several tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data"
#: The released AutoNAT-L T=8 strategy file, as published (official keys ``manual_ratios``, ...).
OFFICIAL_T8 = DATA / "AutoNAT_L-T8_strategy.yaml"


def write_tiny_cache(path: Path, n: int = 96, grid=(4, 4), codebook: int = 16, classes: int = 3) -> Path:
    """A token cache whose tokens depend on the class (so a model can learn it)."""
    from autonat.data.token_cache import write_token_cache

    rng = np.random.default_rng(0)
    labels = np.arange(n) % classes
    length = grid[0] * grid[1]
    base = rng.integers(0, codebook, (classes, length))
    tokens = base[labels].copy()
    noise = rng.random(tokens.shape) < 0.1
    tokens[noise] = rng.integers(0, codebook, noise.sum())
    meta = {"tokenizer": {"path": "none", "fingerprint": "test"}, "grid": list(grid),
            "codebook_size": codebook, "num_classes": classes, "augmentation": "none"}
    write_token_cache(path, tokens, labels, meta)
    return path


def tiny_recipe(cache: Path, out_dir: Path, steps: int = 20, **train) -> dict:
    return {
        "cache": str(cache),
        "model": {"width": 32, "depth": 2, "num_heads": 2, "dropout": 0.1},
        "masking": {"alpha": 4.0, "beta": 2.0},
        "optim": {"lr": 3e-3, "warmup_steps": 5},
        "train": {"out_dir": str(out_dir), "steps": steps, "batch_size": 16, "checkpoint_every": 10,
                  "log_every": 2, "ema_decay": 0.9, **train},
    }


def write_tiny_tokenizer(path: Path) -> Path:
    """A random-weight 16-code tokenizer for 8x8 images (4x4 tokens)."""
    import torch

    from autonat.tokenizers.taming import VQGAN, VQGANConfig
    from autonat.tokenizers.training import save_tokenizer

    torch.manual_seed(0)
    vq = VQGANConfig(n_embed=16, embed_dim=8, ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(),
                     resolution=8, z_channels=8)
    save_tokenizer(VQGAN(vq), path)
    return path


def write_tiny_generator(root: Path) -> Path:
    """A random-weight 3-class generator with its tokenizer under ``root``; returns the checkpoint."""
    import torch

    from autonat.generator.checkpoint import save_generator
    from autonat.generator.uvit import UViT, UViTConfig
    from autonat.tokenizers.base import fingerprint

    tok = write_tiny_tokenizer(root / "tokenizer")
    torch.manual_seed(0)
    config = UViTConfig(codebook_size=16, grid=(4, 4), num_classes=3, width=32, depth=2, num_heads=2, dropout=0.0)
    save_generator(root / "generator", UViT(config), config, {"path": str(tok), "fingerprint": fingerprint(tok)})
    return root / "generator"
