"""Tokenizers from released checkpoints: the MaskGIT VQGAN and taming-transformers VQGANs."""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch
import yaml

from autonat.errors import AutonatError
from autonat.io.released import TAMING_TRAINING_PREFIXES, _looks_like, _materialise, identify
from autonat.io.weights import head, read_state_dict

# --------------------------------------------------------------------------- tokenizers


def load_foreign_tokenizer(path: str | Path, config: str | Path | None = None) -> torch.nn.Module:
    """A tokenizer from a released checkpoint file, its kind detected from the keys.

    The MaskGIT VQGAN needs no config; a taming VQGAN needs its ``model.yaml``
    (or a JSON with the same ``ddconfig``, ``n_embed``, ``embed_dim``).
    """
    path = Path(path)
    return tokenizer_from_state(read_state_dict(path), config, path)


def tokenizer_from_state(state: dict[str, torch.Tensor], config: str | Path | None = None,
                         path: str | Path = "state dict") -> torch.nn.Module:
    """A tokenizer from an already read state dict (see :func:`load_foreign_tokenizer`)."""
    kind = identify(state)
    if kind in ("maskgit-vqgan", "maskgit-vqgan-muse"):
        return maskgit_vqgan_from_state(state, path)
    if kind == "taming-vqgan":
        if config is None:
            raise AutonatError(f"{path} is a taming-transformers VQGAN: pass its model.yaml too "
                               "(--tokenizer-config), or convert it once with `autonat convert --kind taming`")
        return taming_vqgan_from_state(state, read_taming_config(config), path)
    raise AutonatError(f"{path} is not a tokenizer checkpoint: {_looks_like(state)}")


def _rename_muse(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """open-MUSE names (``mid.0``, ``upsample_conv``) to the released MAGE/AutoNAT names."""
    def rename(k: str) -> str:
        k = re.sub(r"^(encoder|decoder)\.mid\.0\.", r"\1.mid.block_1.", k)
        k = re.sub(r"^(encoder|decoder)\.mid\.1\.", r"\1.mid.block_2.", k)
        return re.sub(r"\.upsample_conv\.", ".upsample.conv.", k)
    return {rename(k): v for k, v in state.items()}


def maskgit_vqgan_from_state(state: dict[str, torch.Tensor], path: Path | str = "state dict"):
    """The MaskGIT VQGAN from its state dict; the architecture is read off the shapes."""
    from autonat.tokenizers.maskgit import MaskGITVQGAN

    if identify(state) == "maskgit-vqgan-muse":
        state = _rename_muse(state)
    config = maskgit_config_from_state(state, path)
    return _materialise(lambda: MaskGITVQGAN(config), state, path, "the MaskGIT VQGAN architecture")


def maskgit_config_from_state(state: dict[str, torch.Tensor], path: Path | str = "state dict"):
    """A :class:`MaskGITVQGANConfig` from tensor shapes (the released file gives ``vq-f16-jax``)."""
    from autonat.tokenizers.maskgit import MaskGITVQGANConfig

    try:
        levels = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"encoder\.down\.(\d+)\.", k)))
        blocks = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"encoder\.down\.0\.block\.(\d+)\.", k)))
        ch = state["encoder.conv_in.weight"].shape[0]
        mult = tuple(state[f"encoder.down.{i}.block.0.conv1.weight"].shape[0] // ch for i in range(levels))
        n_embed, z = state["quantize.embedding.weight"].shape
        return MaskGITVQGANConfig(channels=ch, channel_mult=mult, num_res_blocks=blocks, z_channels=z,
                                  n_embed=n_embed, in_channels=state["encoder.conv_in.weight"].shape[1])
    except (KeyError, ValueError, IndexError) as exc:
        raise AutonatError(f"{path}: incomplete MaskGIT VQGAN weights ({type(exc).__name__}: {exc}); "
                           f"{_looks_like(state)}") from exc


def taming_vqgan_from_state(state: dict[str, torch.Tensor], config, path: Path | str = "state dict"):
    """A taming VQGAN (:class:`~autonat.tokenizers.taming.VQGAN`) from a Lightning ``state_dict``, no loss weights."""
    from autonat.tokenizers.taming import VQGAN

    kept = {k: v for k, v in state.items() if not k.startswith(TAMING_TRAINING_PREFIXES)}
    return _materialise(lambda: VQGAN(config), kept, path,
                        f"the taming VQGAN of its config ({_config_summary(config)})")


def _config_summary(config) -> str:
    return (f"ch {config.ch}, ch_mult {list(config.ch_mult)}, {config.n_embed} x {config.embed_dim} codes, "
            f"attn at {list(config.attn_resolutions)}")


def read_taming_config(path: str | Path):
    """A :class:`~autonat.tokenizers.config.VQGANConfig` from a taming ``model.yaml`` or a JSON/YAML of the same fields.

    Accepted: taming's ``model: {target, params: {ddconfig, n_embed, embed_dim}}``,
    ``params`` alone, our ``tokenizer.json``, or a flat mapping of VQGANConfig fields.
    ``target`` is only read, never imported.
    """
    from autonat.tokenizers.taming import VQGANConfig

    path = Path(path)
    if not path.is_file():
        raise AutonatError(f"tokenizer config not found: {path} (taming publishes it as configs/model.yaml "
                           "beside ckpts/last.ckpt)")
    try:
        data = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise AutonatError(f"{path} is not valid {path.suffix.lstrip('.').upper() or 'YAML'}: "
                           f"{str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise AutonatError(f"{path} must hold a mapping")
    model = data.get("model", data)
    target = str(model.get("target", "")) if isinstance(model, dict) else ""
    if "Gumbel" in target or "EMA" in target:
        raise AutonatError(f"{path}: {target} is not supported; only taming's VQModel is")
    params = model.get("params", model) if isinstance(model, dict) else None
    if isinstance(params, dict) and "ddconfig" in params:
        if params["ddconfig"].get("double_z", False):
            raise AutonatError(f"{path}: double_z: true is a KL autoencoder setting, not a VQGAN")
        try:
            return VQGANConfig.from_taming(params)
        except (KeyError, TypeError, ValueError) as exc:
            raise AutonatError(f"{path}: bad taming model params: {exc}") from exc
    flat = data.get("config", data)
    if isinstance(flat, dict) and {"n_embed", "embed_dim", "ch", "ch_mult"} <= set(flat):
        return VQGANConfig.from_dict(flat)
    raise AutonatError(f"{path} is not a taming VQGAN config: expected model.params.ddconfig with n_embed and "
                       f"embed_dim (taming's model.yaml); top-level keys: {head(map(str, data))}")
