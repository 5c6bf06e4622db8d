"""The typed training recipe: every section of the recipe YAML as a dataclass."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from autonat.data.token_cache import read_token_cache
from autonat.errors import AutonatError
from autonat.generator.uvit import NAMED_SIZES, UViTConfig
from autonat.io.config import build
from autonat.training.masking import MaskingConfig


@dataclass
class OptimConfig:
    lr: float = 4e-4
    betas: tuple[float, float] = (0.99, 0.99)
    weight_decay: float = 0.03
    warmup_steps: int = 5000
    grad_clip: float = 1.0


@dataclass
class TrainConfig:
    out_dir: str = "runs/generator"
    steps: int = 10000
    batch_size: int = 256  # global batch, split across processes
    ema_decay: float = 0.9999
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    log_every: int = 10
    seed: int = 0
    mixed_precision: str = "auto"  # "auto" (bf16 on CUDA with bf16 support, else "no"), "no", "bf16", "fp16"
    resume: bool = True


@dataclass
class Recipe:
    """Everything :func:`train` needs, read from the recipe YAML."""

    cache: str
    model: UViTConfig
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def recipe_from_dict(d: dict) -> Recipe:
    """Build a :class:`Recipe`; model sizes, grid and codebook come from the token cache."""
    if "cache" not in d:
        raise AutonatError("the recipe needs `cache:` (a token cache written by `autonat tokenize`)")
    cache = read_token_cache(d["cache"])
    model = dict(d.get("model", {}))
    size = model.pop("size", None)
    if size is not None:
        if size.lower() not in NAMED_SIZES:
            raise AutonatError(f"unknown model size {size!r}; choose one of {sorted(NAMED_SIZES)}")
        model = {**NAMED_SIZES[size.lower()], **model}
    model.update(codebook_size=cache.codebook_size, grid=list(cache.grid), num_classes=cache.num_classes)
    return Recipe(
        cache=d["cache"],
        model=build(UViTConfig, model, "model"),
        masking=build(MaskingConfig, d.get("masking"), "masking"),
        optim=build(OptimConfig, d.get("optim"), "optim"),
        train=build(TrainConfig, d.get("train"), "train"),
    )


MIXED_PRECISIONS = ("auto", "no", "bf16", "fp16")


def resolve_mixed_precision(name: str) -> str:
    """accelerate's ``mixed_precision`` for a recipe value.

    ``auto`` is bf16 autocast on CUDA devices that support it (1.6-1.8x the
    fp32 step in benchmarks/bench_training.py) and full precision elsewhere,
    so CPU runs stay exactly reproducible.
    """
    if name not in MIXED_PRECISIONS:
        raise AutonatError(f"unknown train.mixed_precision {name!r}; choose one of {', '.join(MIXED_PRECISIONS)}")
    if name == "auto":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    return name
