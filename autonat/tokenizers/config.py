"""Tokenizer settings as values, without torch: the VQGAN architecture and how to train one.

Recipes are parsed and checked before torch is imported (a typo fails fast);
:mod:`autonat.tokenizers.taming` builds the network and
:mod:`autonat.tokenizers.training` trains it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from autonat.io.config import (
    FieldError,
    build,
    require_counts,
    require_fractions,
    require_nonnegative,
    require_positive,
)


@dataclass
class VQGANConfig:
    """taming's ``ddconfig`` plus the codebook shape (``n_embed`` x ``embed_dim``)."""

    n_embed: int = 1024
    embed_dim: int = 256
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)
    dropout: float = 0.0
    in_channels: int = 3
    out_ch: int = 3
    resolution: int = 256
    z_channels: int = 256

    def __post_init__(self) -> None:
        self.ch_mult = tuple(int(m) for m in self.ch_mult)
        self.attn_resolutions = tuple(int(r) for r in self.attn_resolutions)

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    def ddconfig(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("n_embed", "embed_dim")}
        return {**d, "double_z": False}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "VQGANConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def from_taming(cls, params: dict) -> "VQGANConfig":
        """From a taming YAML's ``model.params`` (``ddconfig``, ``n_embed``, ``embed_dim``)."""
        return cls.from_dict({**params["ddconfig"], "n_embed": params["n_embed"], "embed_dim": params["embed_dim"]})


@dataclass(frozen=True)
class TokenizerTrainConfig:
    """Recipe for training a tokenizer; ``vqgan`` holds the architecture.

    Every ``log_every`` steps (and at the last) the losses and learning rate
    of that step become a row of the training log, which ``tokenizer.json``
    keeps under ``log`` (see :func:`train_tokenizer`), and the progress bar shows them.
    Checked on construction: counts >= 1, ``lr`` > 0, and a VQGAN whose
    ``resolution`` its ``2 ** (len(ch_mult) - 1)`` downsampling divides.
    """

    vqgan: VQGANConfig = field(default_factory=lambda: VQGANConfig(
        n_embed=64, embed_dim=32, ch=32, ch_mult=(1, 2, 2), num_res_blocks=1,
        attn_resolutions=(), resolution=32, z_channels=32))
    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    l1_weight: float = 0.5
    restart_every: int = 100
    log_every: int = 100
    checkpoint_every: int = 100  # steps between resumable states (see train_tokenizer)
    seed: int = 0

    def __post_init__(self) -> None:
        require_counts(self, "steps", "batch_size", "restart_every", "log_every", "checkpoint_every")
        require_positive(self, "lr")
        require_nonnegative(self, "l1_weight", "seed")
        _check_vqgan(self.vqgan)

    @classmethod
    def from_dict(cls, d: dict) -> "TokenizerTrainConfig":
        """From a mapping (a recipe's ``tokenizer:`` section, a tokenizer's recorded ``train``), checked."""
        return build(cls, d, "tokenizer")


GROUPS = 32  # taming's Normalize: GroupNorm(32, channels)


def _check_vqgan(vq: VQGANConfig) -> None:
    """Sizes of a VQGAN to train: counts >= 1, a width ``ch`` that taming's 32-group GroupNorm divides and a
    resolution the downsampling divides (errors name ``vqgan.*``)."""
    try:
        require_counts(vq, "n_embed", "embed_dim", "ch", "ch_mult", "num_res_blocks", "resolution", "z_channels",
                       "in_channels", "out_ch")
        require_fractions(vq, "dropout")
    except FieldError as exc:
        raise FieldError(f"vqgan.{exc.key}", exc.message) from exc
    if not vq.ch_mult:
        raise FieldError("vqgan.ch_mult", "is empty; give one channel multiplier per resolution level, e.g. [1, 2, 2]")
    if vq.ch % GROUPS:  # every block's width is ch x a whole multiplier
        raise FieldError("vqgan.ch", f"{vq.ch} is not a multiple of {GROUPS} (taming's GroupNorm has {GROUPS} "
                                     f"groups); use {GROUPS * max(1, round(vq.ch / GROUPS))}")
    if vq.resolution % vq.downsample:
        raise FieldError("vqgan.resolution", f"{vq.resolution} is not divisible by the downsampling {vq.downsample} "
                                             f"(2 ** (len(ch_mult) - 1)); use a multiple of {vq.downsample}")
