"""Shared fixtures: tiny models and data built on the fly, nothing downloaded."""
from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Every test runs torch on one thread: tiny models gain nothing from more, and on a busy 2-core
    machine thread hand-offs cost milliseconds per call (subprocesses read OMP_NUM_THREADS instead)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_config():
    from autonat.generator.uvit import UViTConfig

    return UViTConfig(codebook_size=16, grid=(4, 4), num_classes=3, width=32, depth=2, num_heads=2, dropout=0.0)


@pytest.fixture
def tiny_model(tiny_config):
    from autonat.generator.uvit import UViT

    torch.manual_seed(0)
    return UViT(tiny_config).eval()


@pytest.fixture
def tiny_vqgan_config():
    from autonat.tokenizers.taming import VQGANConfig

    return VQGANConfig(n_embed=16, embed_dim=8, ch=32, ch_mult=(1, 2), num_res_blocks=1,
                       attn_resolutions=(), resolution=8, z_channels=8)


@pytest.fixture
def tiny_image_folder(tmp_path):
    """Three classes of 6 small synthetic RGB images each."""
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for c in range(3):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(6):
            arr = np.zeros((10, 10, 3), np.uint8)
            arr[..., c] = 200
            arr += rng.integers(0, 40, arr.shape, dtype=np.uint8)
            Image.fromarray(arr).save(root / f"class{c}" / f"{i}.png")
    return root
