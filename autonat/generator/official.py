"""The official AutoNAT U-ViT weights: key renaming both ways and the architecture read off the shapes."""
from __future__ import annotations

import math
import re
from pathlib import Path

import torch

from autonat.errors import AutonatError
from autonat.generator.uvit import UViT, UViTConfig
from autonat.io.released import _looks_like, _materialise, identify
from autonat.io.weights import read_state_dict

# --------------------------------------------------------------------------- AutoNAT generator

#: Official (``libs/nat_model.py``) key prefixes and ours (:mod:`autonat.generator.uvit`), in order of matching.
UVIT_RENAMES: tuple[tuple[str, str], ...] = (
    ("token_emb.word_embeddings.", "token_embed.tokens."),
    ("token_emb.position_embeddings.", "token_embed.positions."),
    ("token_emb.LayerNorm.", "token_embed.norm."),
    ("context_embed.word_embeddings.", "class_embed.tokens."),
    ("context_embed.position_embeddings.", "class_embed.positions."),
    ("context_embed.LayerNorm.", "class_embed.norm."),
    ("norm.", "final_norm."),
    ("mlm_layer.fc.", "head.fc."),
    ("mlm_layer.ln.", "head.norm."),
    ("mlm_layer.bias", "head.bias"),
)
_SKIP_OFFICIAL = re.compile(r"^out_blocks\.(\d+)\.skip_linear\.")
_SKIP_OURS = re.compile(r"^out_blocks\.(\d+)\.skip\.")


def official_to_ours(key: str) -> str:
    """Our name for an official AutoNAT U-ViT key (blocks keep their names but ``skip_linear``)."""
    for theirs, ours in UVIT_RENAMES:
        if key.startswith(theirs):
            return ours + key[len(theirs):]
    return _SKIP_OFFICIAL.sub(r"out_blocks.\1.skip.", key)


def ours_to_official(key: str) -> str:
    """The official name of one of our U-ViT keys (inverse of :func:`official_to_ours`)."""
    for theirs, ours in UVIT_RENAMES:
        if key.startswith(ours):
            return theirs + key[len(ours):]
    return _SKIP_OURS.sub(r"out_blocks.\1.skip_linear.", key)


def uvit_state_to_ours(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {official_to_ours(k): v for k, v in state.items()}


def uvit_state_to_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our U-ViT weights under the official names (loads into ``libs/nat_model.UViT``)."""
    return {ours_to_official(k): v for k, v in state.items()}


def uvit_config_from_official(state: dict[str, torch.Tensor], num_heads: int = 8,
                              path: Path | str = "state dict") -> UViTConfig:
    """Architecture of an official U-ViT state dict from its shapes.

    The official class table includes the null class (1001 rows for
    ImageNet, 1000 = unconditional); our ``num_classes`` counts real classes.
    """
    need = ("token_emb.word_embeddings.weight", "token_emb.position_embeddings.weight",
            "context_embed.word_embeddings.weight")
    missing = [k for k in need if k not in state]
    if missing:
        raise AutonatError(f"{path} is not AutoNAT generator weights: missing {', '.join(missing)}; "
                           f"{_looks_like(state)}")
    vocab, width = state[need[0]].shape
    length = state[need[1]].shape[0]
    side = math.isqrt(length)
    if side * side != length:
        raise AutonatError(f"{path}: {length} position embeddings is not a square token grid")
    depth = 2 * len({k.split(".")[1] for k in state if k.startswith("in_blocks.")})
    fc1 = state.get("mid_block.mlp.fc1.weight")
    if width % num_heads:
        raise AutonatError(f"{path}: width {width} is not divisible by {num_heads} heads (--num-heads)")
    return UViTConfig(codebook_size=vocab - 1, grid=(side, side), num_classes=state[need[2]].shape[0] - 1,
                      width=width, depth=depth, num_heads=num_heads,
                      mlp_ratio=(fc1.shape[0] / width) if fc1 is not None else 4.0)


def uvit_from_official(state: dict[str, torch.Tensor], num_heads: int = 8,
                       path: Path | str = "state dict") -> UViT:
    """Our U-ViT holding an official AutoNAT state dict, every key used and none missing."""
    config = uvit_config_from_official(state, num_heads, path)
    return _materialise(lambda: UViT(config), state, path,
                        f"the AutoNAT U-ViT read off its shapes ({config.width} wide, {config.depth + 1} blocks)",
                        file_name=ours_to_official, to_model=uvit_state_to_ours)


def load_official_uvit(path: str | Path, num_heads: int = 8) -> UViT:
    """Read ``nnet_ema.pth`` (or any official AutoNAT U-ViT state dict file) into our U-ViT."""
    state = read_state_dict(path)
    if identify(state) != "autonat":
        raise AutonatError(f"{path} is not AutoNAT generator weights (no token_emb.word_embeddings.weight); "
                           f"{_looks_like(state)}")
    return uvit_from_official(state, num_heads, path)
