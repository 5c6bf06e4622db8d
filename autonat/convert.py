"""``autonat convert``: released weights into this toolkit's own formats.

* a generator (AutoNAT ``nnet_ema.pth``) becomes a checkpoint directory
  (``config.json`` + ``model.safetensors``), which ``autonat sample`` and
  ``autonat eval`` read like any trained checkpoint;
* a tokenizer (MaskGIT VQGAN ``.ckpt``, taming ``last.ckpt`` + ``model.yaml``)
  becomes a tokenizer directory (``tokenizer.json`` + ``model.safetensors``),
  which needs no config and loads without unpickling anything.

The kind is detected from the file's keys unless ``--kind`` names it; a
mismatch between the two is an error that says what the file seems to be.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from .errors import AutonatError
from .released import KIND_DESCRIPTIONS, identify, read_state_dict, tokenizer_from_state, uvit_from_official

#: ``--kind`` values and the detected kinds each accepts.
KINDS = {
    "autonat": ("autonat",),
    "maskgit-vqgan": ("maskgit-vqgan", "maskgit-vqgan-muse"),
    "taming": ("taming-vqgan",),
}


@dataclass
class ConvertRequest:
    """What to convert and where; ``kind`` ``"auto"`` detects it from the keys."""

    weights: Path
    out: Path
    kind: str = "auto"
    config: Path | None = None  # taming model.yaml
    tokenizer: Path | None = None  # recorded in a converted generator checkpoint
    tokenizer_config: Path | None = None
    num_heads: int = 8


def detect_kind(state: dict, requested: str = "auto", where: str | Path = "the file") -> str:
    """The ``--kind`` of a state dict (``autonat``, ``maskgit-vqgan``, ``taming``), checked against a request."""
    found = identify(state)
    kind = next((k for k, accepted in KINDS.items() if found in accepted), None)
    if requested == "auto":
        if kind is None:
            raise AutonatError(f"cannot tell what {where} is: {KIND_DESCRIPTIONS[found]}")
        return kind
    if requested not in KINDS:
        raise AutonatError(f"unknown --kind {requested!r}; choose auto, {', '.join(KINDS)}")
    if kind != requested:
        raise AutonatError(f"{where} is not --kind {requested}: it looks like {KIND_DESCRIPTIONS[found]}")
    return kind


def convert(request: ConvertRequest) -> str:
    """Convert one file (read once); returns the kind converted."""
    state = read_state_dict(request.weights)
    kind = detect_kind(state, request.kind, request.weights)
    if kind == "autonat":
        convert_generator(request, state)
    else:
        convert_tokenizer(request, state, kind)
    return kind


def convert_tokenizer(request: ConvertRequest, state: dict, kind: str) -> None:
    """Write a tokenizer directory that :func:`autonat.tokenizer.load_tokenizer` reads without a config."""
    from .tokenizer import fingerprint
    from .tokenizer_training import save_tokenizer

    if kind == "taming" and request.config is None:
        raise AutonatError("--kind taming needs --config model.yaml (published beside ckpts/last.ckpt)")
    model = tokenizer_from_state(state, request.config, request.weights)
    source = {"file": Path(request.weights).name, "fingerprint": fingerprint(request.weights)}
    save_tokenizer(model, request.out, extra={"converted_from": source})


def convert_generator(request: ConvertRequest, state: dict) -> None:
    """Write a generator checkpoint directory from official AutoNAT U-ViT weights."""
    from .checkpoint import save_generator
    from .tokenizer import fingerprint

    model = uvit_from_official(state, request.num_heads, request.weights)
    tokenizer = _tokenizer_record(request, model.config) if request.tokenizer else {}
    source = {"file": Path(request.weights).name, "fingerprint": fingerprint(request.weights),
              "format": "LeapLabTHU/ImprovedNAT libs/nat_model.py UViT"}
    save_generator(request.out, model, model.config, tokenizer, meta={"converted_from": source})


def _tokenizer_record(request: ConvertRequest, config) -> dict:
    """Load the tokenizer once to check it fits the generator, and describe it for ``config.json``."""
    from .tokenize import tokenizer_identity
    from .tokenizer import load_tokenizer

    path = Path(request.tokenizer).resolve()
    tok = load_tokenizer(path, request.tokenizer_config)
    if tok.codebook_size != config.codebook_size or tuple(tok.grid) != tuple(config.grid):
        raise AutonatError(f"tokenizer {path} ({tok.codebook_size} codes, grid {tuple(tok.grid)}) does not fit "
                           f"the generator ({config.codebook_size} codes, grid {config.grid})")
    config_path = Path(request.tokenizer_config).resolve() if request.tokenizer_config else None
    return tokenizer_identity(path, tok, config_path)


# --------------------------------------------------------------------------- command line


def add_convert_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True, type=Path,
                   help="released file: nnet_ema.pth, vqgan_jax_strongaug.ckpt, or taming last.ckpt")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--kind", default="auto", choices=["auto", *KINDS], help="what the file is (default: detect)")
    p.add_argument("--config", type=Path, help="taming model.yaml (for --kind taming)")
    p.add_argument("--tokenizer", type=Path,
                   help="tokenizer to record in a converted generator (a converted tokenizer directory is best)")
    p.add_argument("--tokenizer-config", type=Path, help="model.yaml when --tokenizer is a taming .ckpt")
    p.add_argument("--num-heads", type=int, default=8,
                   help="attention heads of the generator (not stored in the weights; 8 for AutoNAT-S/L)")


def run_convert(args: argparse.Namespace) -> None:
    request = ConvertRequest(weights=args.weights, out=args.out, kind=args.kind, config=args.config,
                             tokenizer=args.tokenizer, tokenizer_config=args.tokenizer_config,
                             num_heads=args.num_heads)
    kind = convert(request)
    what = "generator checkpoint" if kind == "autonat" else f"{kind} tokenizer"
    print(f"{what} written to {request.out}")
