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
    from autonat.tokenizers.taming import VQGANConfig
    from autonat.tokenizers.training import save_random_tokenizer

    vq = VQGANConfig(n_embed=16, embed_dim=8, ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(),
                     resolution=8, z_channels=8)
    return save_random_tokenizer(path, vq)


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


class FakeTextEncoder:
    """A text encoder of the :mod:`autonat.text` contract for tests: per-word hidden states.

    A caption's token ``t`` is its ``t``-th word (the first token a [CLS]-like
    start): its hidden vector is ``sin((k + 1) * crc(word))`` over the width
    ``k``; tokens past the words are padding (mask False) with hidden 0. The
    empty caption is the start token alone.
    """

    def __init__(self, width: int = 6, max_length: int = 5, tag: str = "0" * 16) -> None:
        self.width, self.max_length = width, max_length
        self.name = f"fake-words@{tag}"

    def encode(self, captions: list[str]):
        import zlib

        import torch

        from autonat.generator.condition import TextCondition

        hidden = torch.zeros(len(captions), self.max_length, self.width)
        mask = torch.zeros(len(captions), self.max_length, dtype=torch.bool)
        k = torch.arange(1, self.width + 1, dtype=torch.float32)
        for b, caption in enumerate(captions):
            words = ["<start>"] + caption.split()
            for t, word in enumerate(words[: self.max_length]):
                hidden[b, t] = torch.sin(k * (zlib.crc32(word.encode()) % 1000) / 100.0)
                mask[b, t] = True
        return TextCondition(hidden, mask)


def write_caption_dataset(root: Path, kind: str = "jsonl", n: int = 6, size: int = 10,
                          width: int | None = None) -> tuple[Path, Path]:
    """``n`` synthetic ``size`` x ``width`` (default square) images under ``root/images`` and a caption file
    naming them (2 or 3 captions each); returns ``(image folder, caption file)``. ``kind``: ``jsonl`` or ``coco``."""
    import json

    from PIL import Image

    rng = np.random.default_rng(0)
    images = root / "images"
    images.mkdir(parents=True)
    rows = []
    for i in range(n):
        arr = rng.integers(0, 255, (size, width or size, 3), dtype=np.uint8)
        Image.fromarray(arr).save(images / f"{i}.png")
        for j in range(2 + i % 2):
            rows.append((f"{i}.png", i, f"picture {i} caption {j}"))
    if kind == "jsonl":
        file = root / "captions.jsonl"
        file.write_text("".join(json.dumps({"image": name, "caption": text}) + "\n" for name, _, text in rows))
    else:
        file = root / "annotations" / "captions_train.json"
        file.parent.mkdir()
        info = {"images": [{"id": 100 + i, "file_name": f"{i}.png"} for i in range(n)] + [
                    {"id": 999, "file_name": "uncaptioned.png"}],
                "annotations": [{"id": k, "image_id": 100 + i, "caption": text}
                                for k, (_, i, text) in enumerate(rows)]}
        file.write_text(json.dumps(info))
    return images, file


def write_tiny_text_generator(root: Path, spec: str = "fake", grid=(4, 4)) -> Path:
    """A random-weight text-conditional generator (the :class:`FakeTextEncoder`'s 5 x 6 states) with its
    tokenizer under ``root``; its empty caption is the fake encoder's. Returns the checkpoint."""
    import torch

    from autonat.data.captions import encoder_record
    from autonat.generator.checkpoint import save_generator
    from autonat.generator.uvit import UViT, UViTConfig
    from autonat.tokenizers.base import fingerprint

    tok = write_tiny_tokenizer(root / "tokenizer")
    torch.manual_seed(0)
    config = UViTConfig(codebook_size=16, grid=grid, num_classes=0, width=32, depth=2, num_heads=2, dropout=0.0,
                        text_width=6, text_length=5)
    model, encoder = UViT(config), FakeTextEncoder()
    model.set_empty_caption(encoder.encode([""]))
    save_generator(root / "text_generator", model, config, {"path": str(tok), "fingerprint": fingerprint(tok)},
                   meta={"text_encoder": encoder_record(encoder, spec)})
    return root / "text_generator"
