"""Reading and writing weight files safely, with errors that say what is wrong.

One reader, :func:`read_state_dict`, for every weights file the toolkit
opens (its own safetensors, released ``.pth``/``.ckpt``/``.bin``): pickles are
read with ``torch.load(weights_only=True)``, so no pickled code runs. One
writer, :func:`save_safetensors`, for every weights file it writes.
"""
from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch

from autonat.errors import AutonatError, path_hint
from autonat.io.atomic import atomic_path, follow_umask

#: Prefixes added by DDP / ``torch.compile`` wrappers, stripped on reading.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")

# --------------------------------------------------------------------------- reading


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
    """The tensors of a weights file (``.safetensors``, or a ``.pth``/``.ckpt``/``.bin`` pickle).

    Unwraps ``{"state_dict": ...}`` (Lightning, MAGE) and ``{"model": ...}``
    and strips DDP/compile prefixes; any other object a pickle names becomes
    an inert placeholder and is dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise AutonatError(f"weights file not found: {path}{path_hint(path)}")
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
        raise AutonatError(f"{path} holds no tensors under string keys; keys: {head(map(str, obj))}")
    for prefix in WRAPPER_PREFIXES:
        if all(k.startswith(prefix) for k in tensors):
            tensors = {k[len(prefix):]: v for k, v in tensors.items()}
    return tensors


def head(items, n: int = 5) -> str:
    """The first ``n`` of ``items`` joined by commas, with how many more there are."""
    items = list(items)
    return ", ".join(items[:n]) + (f" (+{len(items) - n} more)" if len(items) > n else "")


# --------------------------------------------------------------------------- writing


def save_safetensors(state: dict[str, torch.Tensor], path: str | Path, *, atomic: bool = True) -> None:
    """Write ``state`` as safetensors: contiguous CPU copies, so tensors sharing storage are untied.

    ``atomic=False`` writes straight to ``path``: for a file inside a folder
    that :func:`autonat.io.atomic.atomic_dir` renames into place as a whole.
    """
    import safetensors.torch  # looked up at call time: tests replace save_file to simulate failures

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    if not atomic:
        safetensors.torch.save_file(tensors, str(path))
        follow_umask(path)  # safetensors writes its files 0600
        return
    with atomic_path(path) as tmp:
        safetensors.torch.save_file(tensors, str(tmp))


# --------------------------------------------------------------------------- fitting a model


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
            parts.append(f"{label} {len(items)}: {head(items)}")
    return "; ".join(parts)


def load_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Load ``state`` into ``model`` requiring every key to match, else a clear error."""
    problem = describe_mismatch(model, state)
    if problem:
        raise AutonatError(f"{what} does not fit the architecture: {problem}")
    model.load_state_dict(state, strict=True)
