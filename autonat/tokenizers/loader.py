"""The one tokenizer loader: our tokenizer directories and released checkpoints."""
from __future__ import annotations

from pathlib import Path

import torch

from autonat.errors import AutonatError
from autonat.io.config import read_json
from autonat.tokenizers.base import TOKENIZER_FILE, WEIGHTS_FILE


def load_tokenizer(path: str | Path, config: str | Path | None = None,
                   device: torch.device | str = "cpu") -> torch.nn.Module:
    """Load a tokenizer, frozen and in eval mode.

    ``path`` is one of: a directory written by this toolkit; a taming-transformers
    checkpoint (``.ckpt``/``.pth``) with ``config`` its YAML or JSON; the
    MaskGIT VQGAN checkpoint (``vqgan_jax_strongaug.ckpt``, detected by its keys).
    """
    path = Path(path)
    if not path.exists():
        raise AutonatError(
            f"tokenizer not found: {path} (train one with `autonat train-tokenizer`, "
            "or point at a taming-transformers .ckpt with --tokenizer-config, see README 'Using released weights')"
        )
    if path.is_dir():
        model = _load_native(path)
    else:
        from autonat.tokenizers.foreign import load_foreign_tokenizer

        model = load_foreign_tokenizer(path, config)
    model.requires_grad_(False)
    return model.eval().to(device)


def _load_native(path: Path) -> torch.nn.Module:
    meta_file = path / TOKENIZER_FILE
    if not meta_file.exists():
        raise AutonatError(f"{path} is not a tokenizer directory: {TOKENIZER_FILE} is missing")
    meta = read_json(meta_file, "restore the tokenizer folder, or train it again with `autonat train-tokenizer`")
    kind = meta.get("kind")
    if kind == "taming-vqgan":
        from autonat.tokenizers.taming import VQGAN, VQGANConfig

        model = VQGAN(VQGANConfig.from_dict(meta["config"]))
    elif kind == "maskgit-vqgan":
        from autonat.tokenizers.maskgit import MaskGITVQGAN, MaskGITVQGANConfig

        model = MaskGITVQGAN(MaskGITVQGANConfig.from_dict(meta["config"]) if meta.get("config") else None)
    else:
        raise AutonatError(f"{meta_file}: unknown tokenizer kind {kind!r}")
    from autonat.io.weights import load_strict, read_state_dict

    load_strict(model, read_state_dict(path / WEIGHTS_FILE), what=f"tokenizer {path}")
    return model
