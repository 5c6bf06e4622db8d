"""Generator checkpoints: a directory with ``config.json`` and ``model.safetensors``.

``config.json`` names the architecture, codebook size, token grid, number of
classes (or, for a text-conditional generator, the text width and length,
and under ``text_encoder`` the encoder it was trained with: its spec, name
with weights fingerprint, width and length) and the tokenizer (a path,
relative to the checkpoint when they share a folder, and a content
fingerprint);
``model.safetensors`` holds the EMA weights used for inference (a text
generator's also its null condition, the encoded empty caption, as the
buffers ``empty_hidden`` and ``empty_mask``). The resumable
training state lives apart from it (see :mod:`autonat.training`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from autonat.errors import AutonatError, path_hint
from autonat.generator.uvit import UViT, UViTConfig
from autonat.io.atomic import atomic_dir
from autonat.io.config import to_plain
from autonat.io.diffusers_folder import amused_grid, is_amused_folder
from autonat.io.identity import resolve_recorded, with_portable_path
from autonat.io.weights import load_strict, read_state_dict, save_safetensors

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = "autonat-generator"


@dataclass
class Generator:
    """A loaded generator and what it was trained with."""

    model: UViT
    config: UViTConfig
    tokenizer: dict  # {"path": ..., "fingerprint": ..., "config": ...}
    path: Path
    meta: dict

    def tokenizer_path(self, override: str | Path | None = None) -> Path:
        """Where the tokenizer is: ``override``, else the recorded path (see :func:`resolve_recorded`)."""
        if override is not None:
            return Path(override)
        recorded = self.tokenizer.get("path")
        if not recorded:
            raise AutonatError(f"{self.path}/{CONFIG_FILE} records no tokenizer; pass --tokenizer")
        found = resolve_recorded(recorded, self.path)
        if found is None:
            raise AutonatError(f"tokenizer {recorded} of checkpoint {self.path} not found; pass --tokenizer PATH")
        return found


KIND = "generator"


def is_generator_checkpoint(path: str | Path) -> bool:
    """True if ``path`` holds a generator checkpoint (also one written before output markers)."""
    try:
        return json.loads((Path(path) / CONFIG_FILE).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def save_generator(path: str | Path, model: torch.nn.Module, config: UViTConfig, tokenizer: dict,
                   meta: dict | None = None) -> None:
    """Write a checkpoint directory atomically (a crash never leaves half of one).

    ``tokenizer["path"]`` (valid from the working directory) is recorded
    relative to the checkpoint, or absolute (see :func:`autonat.io.identity.portable_path`).
    """
    tokenizer = with_portable_path(to_plain(tokenizer), path)
    info = {"format": FORMAT, "version": 1, "model": to_plain(config), "tokenizer": tokenizer,
            **to_plain(meta or {})}
    with atomic_dir(path, KIND, is_generator_checkpoint) as tmp:
        save_safetensors(model.state_dict(), tmp / WEIGHTS_FILE, atomic=False)
        (tmp / CONFIG_FILE).write_text(json.dumps(info, indent=2))


def _checkpoint_hint(path: Path) -> str:
    """How to fix a checkpoint path without config.json: a training run's folder names its latest checkpoint, a
    missing path asks for a check, any other folder says what a checkpoint folder holds."""
    steps = sorted((int(p.name[5:]), p) for p in (path / "checkpoints").glob("step_*")
                   if p.name[5:].isdigit() and (p / CONFIG_FILE).exists())
    if steps:
        return f" (a training run keeps them under checkpoints/; the latest is {steps[-1][1]})"
    if (path / "checkpoints").is_dir():
        return " (a training run keeps them under checkpoints/)"
    if not path.exists():
        return path_hint(path) or ("; check the path (a checkpoint is a folder of config.json and weights, as a run's "
                                   "checkpoints/step_N)")
    return "; give the folder of config.json and weights (a run's checkpoints/step_N, or `autonat convert`'s output)"


def read_generator_config(path: str | Path) -> dict:
    path = Path(path)
    if not (path / CONFIG_FILE).exists():
        raise AutonatError(f"{path} is not a generator checkpoint: {CONFIG_FILE} is missing{_checkpoint_hint(path)}")
    try:
        info = json.loads((path / CONFIG_FILE).read_text())
    except json.JSONDecodeError as exc:
        raise AutonatError(f"{path / CONFIG_FILE} is corrupt: {exc}") from exc
    if info.get("format") != FORMAT:
        hint = (f"; {path.parent} is an aMUSEd pipeline: pass that folder" if is_amused_folder(path.parent)
                else "")
        raise AutonatError(f"{path / CONFIG_FILE} is not an autonat generator config "
                           f"(format {info.get('format')!r}){hint}")
    return info


def checkpoint_grid(path: str | Path) -> tuple[int, int]:
    """The token grid ``(h, w)`` recorded in the generator checkpoint ``path`` (``model.grid`` of its config), or
    of an aMUSEd pipeline folder (:func:`~autonat.io.diffusers_folder.amused_grid`)."""
    if is_amused_folder(path):
        return amused_grid(path)
    grid = (read_generator_config(path).get("model") or {}).get("grid")
    if not (isinstance(grid, list) and len(grid) == 2 and all(isinstance(g, int) and g > 0 for g in grid)):
        raise AutonatError(f"{Path(path) / CONFIG_FILE} records no token grid (model.grid: {grid!r}); "
                           "give the grid with --grid H W")
    return int(grid[0]), int(grid[1])


def load_generator(path: str | Path, device: torch.device | str = "cpu") -> Generator:
    """Load a generator checkpoint in eval mode with its EMA weights."""
    path = Path(path)
    info = read_generator_config(path)
    try:
        config = UViTConfig(**info["model"])
    except (TypeError, ValueError) as exc:
        raise AutonatError(f"{path / CONFIG_FILE}: bad model section: {exc}") from exc
    model = UViT(config)
    load_strict(model, read_state_dict(path / WEIGHTS_FILE), what=f"checkpoint {path}")
    model.requires_grad_(False)
    return Generator(model=model.eval().to(device), config=config, tokenizer=info.get("tokenizer", {}),
                     path=path, meta=info)
