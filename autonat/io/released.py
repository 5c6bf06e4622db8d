"""Reading released weight files safely and recognising what they are."""
from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch

from autonat.errors import AutonatError
from autonat.io.weights import describe_mismatch

#: Prefixes of a taming Lightning ``state_dict`` that belong to training only.
TAMING_TRAINING_PREFIXES = ("loss.", "discriminator.")
#: Prefixes added by DDP / ``torch.compile`` wrappers, stripped on reading.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")

# --------------------------------------------------------------------------- reading files


class _Opaque:
    """Stands in for a class or function a checkpoint names; holds what it was given, runs nothing."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state) -> None:
        self.state = state


def _placeholder(full_name: str) -> tuple[type, str]:
    module, _, name = full_name.rpartition(".")
    return type(name or full_name, (_Opaque,), {"__module__": module, "__qualname__": name}), full_name


def _unsafe_globals(path: Path) -> list[str]:
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # legacy (non-zip) format: found one at a time below
        return []


_UNSUPPORTED = re.compile(r"GLOBAL (\S+) was not an allowed global")


def _torch_load(path: Path):
    """``torch.load(weights_only=True)``, with inert placeholders for trainer objects' classes."""
    names = _unsafe_globals(path)
    for _ in range(64):
        try:
            with torch.serialization.safe_globals([_placeholder(n) for n in names]):
                return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            found = _UNSUPPORTED.search(str(exc))
            if found and found.group(1) not in names:
                names.append(found.group(1))
                continue
            reason = _reason(exc)
            if "GLOBAL" in reason:  # a name torch blocks outright (os, subprocess, ...): never allow it
                raise AutonatError(f"refusing to read {path}: {reason}") from exc
            raise AutonatError(f"cannot read weights from {path}: not a torch weights file ({reason})") from exc
    raise AutonatError(f"cannot read {path}: it names too many foreign classes to be a weights file")


def _reason(exc: Exception) -> str:
    """The informative line of a weights-only unpickling error (the one naming the global)."""
    lines = [line.strip() for line in str(exc).splitlines()
             if line.strip() and not line.startswith(("Weights only load failed", "Please file", "Check the doc"))]
    return next((line for line in lines if "GLOBAL" in line), lines[0] if lines else type(exc).__name__)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a released weights file (``.pth``/``.ckpt``/``.bin``/``.safetensors``).

    Unwraps ``{"state_dict": ...}`` (Lightning, MAGE) and ``{"model": ...}``
    and strips DDP/compile prefixes.
    """
    path = Path(path)
    if not path.is_file():
        raise AutonatError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path))
        else:
            obj = _torch_load(path)
    except AutonatError:
        raise
    except Exception as exc:  # truncated, corrupt, or not a torch file at all
        raise AutonatError(f"cannot read weights from {path}: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
    return _unwrap(obj, path)


def _unwrap(obj, path: Path) -> dict[str, torch.Tensor]:
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj:
        raise AutonatError(f"{path} holds no state dict (found {type(obj).__name__})")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise AutonatError(f"{path} holds no tensors under string keys; keys: {_head(map(str, obj))}")
    for prefix in WRAPPER_PREFIXES:
        if all(k.startswith(prefix) for k in tensors):
            tensors = {k[len(prefix):]: v for k, v in tensors.items()}
    return tensors


def _head(items, n: int = 5) -> str:
    items = list(items)
    return ", ".join(items[:n]) + (f" (+{len(items) - n} more)" if len(items) > n else "")


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
        f"its keys ({_head(sorted(state), 4)}) match no known format"


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
