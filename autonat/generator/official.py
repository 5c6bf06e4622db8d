"""The official AutoNAT U-ViT weights: key renaming both ways and the architecture read off the shapes."""
from __future__ import annotations

import math
import re
from pathlib import Path

import torch

from autonat.errors import AutonatError
from autonat.generator.uvit import UViT, UViTConfig
from autonat.io.config import read_yaml
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


def uvit_config_from_official(state: dict[str, torch.Tensor], num_heads: int,
                              path: Path | str = "state dict") -> UViTConfig:
    """Architecture of an official U-ViT state dict from its shapes, with ``num_heads`` heads.

    The official class table includes the null class (1001 rows for
    ImageNet, 1000 = unconditional); our ``num_classes`` counts real classes.
    The head count is not in the shapes (see :func:`official_num_heads`).
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


def uvit_from_official(state: dict[str, torch.Tensor], num_heads: int,
                       path: Path | str = "state dict") -> UViT:
    """Our U-ViT holding an official AutoNAT state dict, every key used and none missing."""
    config = uvit_config_from_official(state, num_heads, path)
    return _materialise(lambda: UViT(config), state, path,
                        f"the AutoNAT U-ViT read off its shapes ({config.width} wide, {config.depth + 1} blocks)",
                        file_name=ours_to_official, to_model=uvit_state_to_ours)


def load_official_uvit(path: str | Path, num_heads: int | None = None, config: str | Path | None = None) -> UViT:
    """Read ``nnet_ema.pth`` (or any official AutoNAT U-ViT state dict file) into our U-ViT.

    ``num_heads`` when given, else the official config's (:func:`official_num_heads`).
    """
    state = read_state_dict(path)
    if identify(state) != "autonat":
        raise AutonatError(f"{path} is not AutoNAT generator weights (no token_emb.word_embeddings.weight); "
                           f"{_looks_like(state)}")
    return uvit_from_official(state, official_num_heads(state, path, config, num_heads), path)


def official_num_heads(state: dict[str, torch.Tensor], weights: str | Path, config: str | Path | None = None,
                       requested: int | None = None) -> int:
    """The attention heads of official U-ViT weights, which their shapes do not tell.

    Read from the official training config (``configs/AutoNAT_L.yaml``: its
    ``nnet`` section names ``embed_dim``, ``depth`` and ``num_heads``):
    ``config`` when given, else the one YAML file beside ``weights`` (in its
    folder, or a ``configs`` folder there or one level up) whose ``nnet``
    width and depth are the weights'. ``requested`` (``--num-heads``) wins
    but must agree with a given ``config``. With neither, a one-line error
    asks for ``--num-heads``: a wrong head count loads without complaint and
    gives other logits, so there is no default.
    """
    width, depth = _width_depth(state, weights)
    if config is not None:
        nnet = _official_nnet(config, strict=True)
        if (nnet.get("embed_dim"), nnet.get("depth")) != (width, depth):
            raise AutonatError(f"--config {config} describes a U-ViT {nnet.get('embed_dim')} wide and "
                               f"{nnet.get('depth')} deep, but {weights} is {width} wide and {depth} deep; "
                               "pass the config the weights were trained with")
        if requested is not None and requested != nnet["num_heads"]:
            raise AutonatError(f"--num-heads {requested} but --config {config} says num_heads "
                               f"{nnet['num_heads']}; drop one of them")
        return int(nnet["num_heads"])
    if requested is not None:
        return requested
    beside = {int(nnet["num_heads"]) for nnet in map(_official_nnet, _configs_beside(Path(weights)))
              if nnet and (nnet.get("embed_dim"), nnet.get("depth")) == (width, depth)}
    if len(beside) == 1:
        return beside.pop()
    found = f"configs beside {weights} disagree ({sorted(beside)} heads)" if beside else \
        f"no official config for a {width}-wide, {depth}-deep U-ViT beside {weights}"
    raise AutonatError(f"the weights do not store their number of attention heads and {found}; pass "
                       "--num-heads (8 for AutoNAT-S and -L) or --config with the official configs/*.yaml")


def _width_depth(state: dict[str, torch.Tensor], weights: str | Path) -> tuple[int, int]:
    """Width and depth (the official ``embed_dim`` and ``depth``) read off the shapes."""
    config = uvit_config_from_official(state, 1, weights)  # one head divides any width
    return config.width, config.depth


def _configs_beside(weights: Path) -> list[Path]:
    """YAML files in the weights' folder, and in a ``configs`` folder there or one level up."""
    folders = (weights.parent, weights.parent / "configs", weights.parent.parent / "configs")
    return sorted({f for folder in folders if folder.is_dir() for f in folder.glob("*.y*ml")})


def _official_nnet(path: str | Path, strict: bool = False) -> dict:
    """The ``nnet`` section of an official config holding ``num_heads``; ``{}`` (or, ``strict``, an error) else."""
    try:
        data = read_yaml(path, "official AutoNAT config")
    except AutonatError:
        if strict:
            raise
        return {}
    nnet = data.get("nnet") if isinstance(data, dict) else None
    if isinstance(nnet, dict) and isinstance(nnet.get("num_heads"), int) and nnet["num_heads"] > 0:
        return nnet
    if strict:
        raise AutonatError(f"{path} is not an official AutoNAT config (no nnet.num_heads); pass the "
                           "configs/*.yaml the weights were trained with, or --num-heads")
    return {}
