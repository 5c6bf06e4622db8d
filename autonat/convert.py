"""Converting released weights (AutoNAT, MaskGIT and taming VQGANs) into this toolkit's formats."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autonat.errors import AutonatError
from autonat.generator.official import official_num_heads, uvit_from_official
from autonat.io.formats import KINDS
from autonat.io.released import KIND_DESCRIPTIONS, identify
from autonat.io.weights import read_state_dict
from autonat.tokenizers.foreign import tokenizer_from_state


@dataclass
class ConvertRequest:
    """What to convert and where; ``kind`` ``"auto"`` detects it from the keys."""

    weights: Path
    out: Path
    kind: str = "auto"
    config: Path | None = None  # taming model.yaml, or the official AutoNAT configs/*.yaml
    tokenizer: Path | None = None  # recorded in a converted generator checkpoint
    tokenizer_config: Path | None = None
    num_heads: int | None = None  # None: the official config's (``config`` or one beside the weights)


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
    """Write a tokenizer directory that :func:`autonat.tokenizers.loader.load_tokenizer` reads without a config."""
    from autonat.tokenizers.base import fingerprint
    from autonat.tokenizers.training import save_tokenizer

    if kind == "taming" and request.config is None:
        raise AutonatError("--kind taming needs --config model.yaml (published beside ckpts/last.ckpt)")
    model = tokenizer_from_state(state, request.config, request.weights)
    source = {"file": Path(request.weights).name, "fingerprint": fingerprint(request.weights)}
    save_tokenizer(model, request.out, extra={"converted_from": source})


def convert_generator(request: ConvertRequest, state: dict) -> None:
    """Write a generator checkpoint directory from official AutoNAT U-ViT weights."""
    from autonat.generator.checkpoint import save_generator
    from autonat.tokenizers.base import fingerprint

    num_heads = official_num_heads(state, request.weights, request.config, request.num_heads)
    model = uvit_from_official(state, num_heads, request.weights)
    tokenizer = _tokenizer_record(request, model.config) if request.tokenizer else {}
    source = {"file": Path(request.weights).name, "fingerprint": fingerprint(request.weights),
              "format": "LeapLabTHU/ImprovedNAT libs/nat_model.py UViT"}
    save_generator(request.out, model, model.config, tokenizer, meta={"converted_from": source})


def _tokenizer_record(request: ConvertRequest, config) -> dict:
    """Load the tokenizer once to check it fits the generator, and describe it for ``config.json``."""
    from autonat.data.tokenization import tokenizer_identity
    from autonat.tokenizers.loader import load_tokenizer

    path = Path(request.tokenizer).resolve()
    tok = load_tokenizer(path, request.tokenizer_config)
    if tok.codebook_size != config.codebook_size or tuple(tok.grid) != tuple(config.grid):
        raise AutonatError(f"tokenizer {path} ({tok.codebook_size} codes, grid {tuple(tok.grid)}) does not fit "
                           f"the generator ({config.codebook_size} codes, grid {config.grid})")
    config_path = Path(request.tokenizer_config).resolve() if request.tokenizer_config else None
    return tokenizer_identity(path, tok, config_path)
