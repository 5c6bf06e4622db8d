"""Reading the field's released weights into our modules.

Three kinds of released file are understood, told apart by their keys:

* **AutoNAT generator** (``nnet_ema.pth``, LeapLabTHU/ImprovedNAT): the
  official U-ViT state dict. Our :class:`~autonat.model.UViT` computes the
  same function, so loading is key renaming alone (:data:`UVIT_RENAMES`);
  the architecture is read off the tensor shapes (the number of attention
  heads is not in the weights: 8 for the released models).
* **MaskGIT VQGAN** (``vqgan_jax_strongaug.ckpt``, released with MAGE and
  used by AutoNAT): loaded into :class:`~autonat.maskgit_vqgan.MaskGITVQGAN`
  unchanged; the open-MUSE port's layout of the same network is renamed.
* **taming-transformers VQGAN** (``last.ckpt`` + ``model.yaml``): a Lightning
  checkpoint whose ``state_dict`` also holds the training loss (LPIPS and
  discriminator) weights, which are dropped.

Files are read with ``torch.load(weights_only=True)`` (or safetensors), so no
pickled code runs. Lightning checkpoints also pickle trainer objects (e.g.
the ``ModelCheckpoint`` class as a dict key) that ``weights_only`` refuses;
those names are replaced by inert placeholder classes, never imported or
called, and only the tensors are kept. A file of the wrong kind or shape
gets an :class:`~autonat.errors.AutonatError` naming the missing, unexpected
or mis-shaped keys and what the file seems to be.
"""
from __future__ import annotations

import json
import math
import pickle
import re
from pathlib import Path

import torch
import yaml

from .errors import AutonatError
from .model import UViT, UViTConfig
from .weights import describe_mismatch

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
    from .maskgit_vqgan import MaskGITVQGAN

    if identify(state) == "maskgit-vqgan-muse":
        state = _rename_muse(state)
    config = maskgit_config_from_state(state, path)
    return _materialise(lambda: MaskGITVQGAN(config), state, path, "the MaskGIT VQGAN architecture")


def maskgit_config_from_state(state: dict[str, torch.Tensor], path: Path | str = "state dict"):
    """A :class:`MaskGITVQGANConfig` from tensor shapes (the released file gives ``vq-f16-jax``)."""
    from .maskgit_vqgan import MaskGITVQGANConfig

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
    """A taming VQGAN (:class:`autonat.vqgan.VQGAN`) from a Lightning ``state_dict``, loss weights dropped."""
    from .vqgan import VQGAN

    kept = {k: v for k, v in state.items() if not k.startswith(TAMING_TRAINING_PREFIXES)}
    return _materialise(lambda: VQGAN(config), kept, path,
                        f"the taming VQGAN of its config ({_config_summary(config)})")


def _config_summary(config) -> str:
    return (f"ch {config.ch}, ch_mult {list(config.ch_mult)}, {config.n_embed} x {config.embed_dim} codes, "
            f"attn at {list(config.attn_resolutions)}")


def read_taming_config(path: str | Path):
    """A :class:`~autonat.vqgan.VQGANConfig` from a taming ``model.yaml`` or a JSON/YAML of the same fields.

    Accepted: taming's ``model: {target, params: {ddconfig, n_embed, embed_dim}}``,
    ``params`` alone, our ``tokenizer.json``, or a flat mapping of VQGANConfig fields.
    ``target`` is only read, never imported.
    """
    from .vqgan import VQGANConfig

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
                       f"embed_dim (taming's model.yaml); top-level keys: {_head(map(str, data))}")


# --------------------------------------------------------------------------- AutoNAT generator

#: Official (``libs/nat_model.py``) key prefixes and ours (:mod:`autonat.model`), in order of matching.
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
