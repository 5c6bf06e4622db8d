"""Reading and writing weight files safely, with errors that say what is wrong.

Foreign ``.ckpt``/``.pth`` files are read with ``torch.load(weights_only=True)``
so no pickled code runs; our own weights are safetensors.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from autonat.errors import AutonatError
from autonat.io.atomic import atomic_path


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from safetensors or a (weights-only) torch pickle."""
    path = Path(path)
    if not path.exists():
        raise AutonatError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    except AutonatError:
        raise
    except pickle.UnpicklingError as exc:  # names code or objects beyond plain tensors: never run
        raise AutonatError(f"refusing to read {path}: it holds more than plain tensors "
                           f"({unpickling_reason(exc)}); nothing in it was run") from exc
    except Exception as exc:  # corrupt, truncated or not a weights file at all
        raise AutonatError(f"cannot read weights from {path}: {type(exc).__name__}: {exc}".splitlines()[0]) from exc


def unpickling_reason(exc: Exception) -> str:
    """The informative line of a weights-only unpickling error (the one naming the refused global)."""
    lines = [line.strip().removeprefix("WeightsUnpickler error:").strip() for line in str(exc).splitlines()]
    lines = [line for line in lines
             if line and not line.startswith(("Weights only load failed", "Please file", "Check the doc", "(1)", "(2)"))]
    line = next((line for line in lines if "GLOBAL" in line), lines[0] if lines else type(exc).__name__)
    return line.split(". Please use")[0].rstrip(".")


def save_safetensors(state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Atomically write ``state`` as safetensors (contiguous copies, shared storage untied)."""
    tensors = {k: v.detach().contiguous().clone().cpu() for k, v in state.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))


def describe_mismatch(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> str:
    """Name the missing, unexpected and wrongly shaped keys between ``model`` and ``state``."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
              for k in sorted(set(expected) & set(state)) if state[k].shape != expected[k].shape]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if items:
            more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
            parts.append(f"{label} {len(items)}: {', '.join(items[:5])}{more}")
    return "; ".join(parts)


def load_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Load ``state`` into ``model`` requiring every key to match, else a clear error."""
    problem = describe_mismatch(model, state)
    if problem:
        raise AutonatError(f"{what} does not fit the architecture: {problem}")
    model.load_state_dict(state, strict=True)
