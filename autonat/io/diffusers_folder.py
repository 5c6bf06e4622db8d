"""Local diffusers pipeline folders: recognising an aMUSEd one, and importing the optional libraries.

A diffusers pipeline folder holds ``model_index.json``, whose ``_class_name``
names the pipeline (``AmusedPipeline`` for aMUSEd), and one subfolder per
component. Nothing here imports torch or diffusers until asked.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from autonat.errors import AutonatError
from autonat.io.config import read_json

#: ``_class_name`` in ``model_index.json`` of an aMUSEd pipeline folder, and the ``--kind`` that names it.
PIPELINE_CLASS = "AmusedPipeline"
KIND = "diffusers-amused"
EXTRA_HINT = "pip install -e '.[diffusers]'"


def import_diffusers():
    """The ``diffusers`` module, with ``transformers`` importable too, both set to read local files only and to
    stay quiet; a clear error naming the extra if either is missing."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import diffusers
        import transformers
    except ImportError as exc:
        raise AutonatError(f"aMUSEd checkpoints need diffusers and transformers ({exc.name} is missing); "
                           f"install the extra: {EXTRA_HINT}") from None
    for library in (diffusers, transformers):
        library.utils.logging.set_verbosity_error()
        library.utils.logging.disable_progress_bar()
    return diffusers


def read_model_index(path: str | Path) -> dict | None:
    """The ``model_index.json`` of a diffusers folder, or None when ``path`` is not one."""
    try:
        info = json.loads((Path(path) / "model_index.json").read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def is_amused_folder(path: str | Path) -> bool:
    """True if ``path`` is a diffusers folder whose ``model_index.json`` names ``AmusedPipeline``."""
    info = read_model_index(path)
    return info is not None and info.get("_class_name") == PIPELINE_CLASS


def check_amused_folder(path: str | Path) -> Path:
    """``path`` as an aMUSEd folder with its four model subfolders, or a one-line error saying what is wrong."""
    path = Path(path)
    info = read_model_index(path)
    if info is None:
        raise AutonatError(f"{path} is not a diffusers pipeline folder (no readable model_index.json); "
                           "point --checkpoint at a local aMUSEd folder (e.g. a snapshot of amused/amused-256)")
    if info.get("_class_name") != PIPELINE_CLASS:
        raise AutonatError(f"{path}/model_index.json names {info.get('_class_name')!r}, not {PIPELINE_CLASS}; "
                           "only aMUSEd pipelines are supported")
    missing = [p for p in ("vqvae", "transformer", "text_encoder", "tokenizer", "scheduler") if not (path / p).is_dir()]
    if missing:
        raise AutonatError(f"aMUSEd folder {path} lacks {', '.join(m + '/' for m in missing)}; "
                           "copy the whole pipeline snapshot")
    return path


def amused_weights(path: str | Path) -> Path:
    """The transformer's weights file of an aMUSEd folder (what a search's identity fingerprints)."""
    return Path(path) / "transformer" / "diffusion_pytorch_model.safetensors"


def amused_grid(path: str | Path) -> tuple[int, int]:
    """The token grid of an aMUSEd folder: the transformer's ``sample_size`` square (16 x 16 for amused-256,
    32 x 32 for amused-512), read from ``transformer/config.json`` without importing diffusers."""
    file = Path(path) / "transformer" / "config.json"
    config = read_json(file, "copy the whole aMUSEd pipeline folder") if file.is_file() else {}
    side = config.get("sample_size") if isinstance(config, dict) else None
    if not (isinstance(side, int) and side > 0):
        raise AutonatError(f"{file} gives no token grid (sample_size); copy the whole aMUSEd pipeline folder")
    return side, side
