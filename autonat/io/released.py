"""Recognising released weight files and building modules from them.

The files themselves are read by :func:`autonat.io.weights.read_state_dict`.
"""
from __future__ import annotations

from pathlib import Path

import torch

from autonat.errors import AutonatError
from autonat.io.weights import describe_mismatch, head

#: Prefixes of a taming Lightning ``state_dict`` that belong to training only.
TAMING_TRAINING_PREFIXES = ("loss.", "discriminator.")

# --------------------------------------------------------------------------- what a file is

KIND_DESCRIPTIONS = {
    "autonat": "AutoNAT generator weights (nnet_ema.pth); convert with `autonat convert --kind autonat`",
    "maskgit-vqgan": "a MaskGIT VQGAN tokenizer (vqgan_jax_strongaug.ckpt)",
    "maskgit-vqgan-muse": "a MaskGIT VQGAN tokenizer in the open-MUSE layout",
    "taming-vqgan": "a taming-transformers VQGAN (needs its model.yaml)",
    "autonat-native": "the weights of one of our own generator checkpoints (load the checkpoint directory)",
    "unknown": "nothing this toolkit knows",
}


def identify(state: dict[str, torch.Tensor]) -> str:
    """Which released format a state dict is in, from its keys (see :data:`KIND_DESCRIPTIONS`)."""
    if "token_emb.word_embeddings.weight" in state:
        return "autonat"
    if "token_embed.tokens.weight" in state:
        return "autonat-native"
    if "quantize.embedding.weight" not in state or "encoder.conv_in.weight" not in state:
        return "unknown"
    if "quant_conv.weight" in state:
        return "taming-vqgan"
    if "encoder.mid.0.conv1.weight" in state:
        return "maskgit-vqgan-muse"
    if "encoder.mid.block_1.conv1.weight" in state and "encoder.conv_in.bias" not in state:
        return "maskgit-vqgan"
    return "unknown"


def _looks_like(state: dict) -> str:
    kind = identify(state)
    return f"it looks like {KIND_DESCRIPTIONS[kind]}" if kind != "unknown" else \
        f"its keys ({head(sorted(state), 4)}) match no known format"


class _Shapes:
    """Expected key names and shapes, in the form :func:`describe_mismatch` reads (no memory used)."""

    def __init__(self, shapes: dict[str, torch.Size]) -> None:
        self.shapes = shapes

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: torch.empty(s, device="meta") for k, s in self.shapes.items()}


def _mismatch(expected: dict[str, torch.Size], state: dict[str, torch.Tensor]) -> str:
    """Missing, unexpected and mis-shaped keys of ``state`` against ``expected`` shapes."""
    return describe_mismatch(_Shapes(expected), state)


def _materialise(build, state: dict[str, torch.Tensor], path: Path | str, what: str,
                 file_name=None, to_model=None) -> torch.nn.Module:
    """Build a module and give it ``state``, every key used and none missing, or raise naming the mismatch.

    ``build`` runs on the meta device (no memory, no random init: the file
    supplies every value) and the tensors are adopted in float32.
    ``file_name`` maps a module key to the file's name for it and ``to_model``
    renames the file's keys to the module's (both identity by default).
    """
    with torch.device("meta"):
        model = build()
    expected = {(file_name or str)(k): v.shape for k, v in model.state_dict().items()}
    problem = _mismatch(expected, state)
    if problem:
        raise AutonatError(f"{path} does not fit {what}: {problem}; {_looks_like(state)}")
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(to_model(state) if to_model else state, strict=True, assign=True)
    return model.eval()
