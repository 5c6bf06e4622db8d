"""aMUSEd (Patil et al., 2024) through diffusers: its transformer behind our generator contract.

A local diffusers ``AmusedPipeline`` folder (``model_index.json`` with
``_class_name: AmusedPipeline``; subfolders ``vqvae/``, ``transformer/``,
``text_encoder/``, ``tokenizer/``, ``scheduler/``) becomes three parts of ours:

* its ``VQModel`` as a tokenizer (:class:`~autonat.tokenizers.amused.AmusedVQTokenizer`);
  :func:`autonat.sampling.amused.load_amused` loads the folder;
* its CLIP text model with projection and CLIP tokenizer as a text encoder
  (:class:`AmusedTextEncoder`): a caption is padded / truncated to the
  tokenizer's ``model_max_length`` (77), the text model runs without an
  attention mask (as the pipeline runs it), ``hidden`` is the penultimate
  layer's hidden states ``hidden_states[-2]`` and ``pooled`` the projected
  ``text_embeds``;
* its ``UVit2DModel`` as a generator (:class:`AmusedTransformer`):
  ``model(tokens [B, L], cond) -> logits [B, L, codebook]`` with the
  micro-conditioning filled as ``AmusedPipeline.__call__`` fills it by
  default, ``[width, height, crop_x, crop_y, aesthetic] = [W, H, 0, 0, 6]``
  where ``W = H = sample_size * 2 ** (len(vqvae.block_out_channels) - 1)``
  (the pipeline's default image size); its null condition is the encoded
  empty caption ``""`` (the pipeline's default negative prompt).

The text mask of a :class:`~autonat.generator.condition.TextCondition` marks
the caption's real tokens, but aMUSEd's transformer attends to all 77
positions, padding included, as it was trained; the wrapper passes no mask.

Guidance: the pipeline's ``uncond + g (cond - uncond)`` is ours with
``s = g - 1`` (:func:`autonat.strategy.zoo.cfg_from_uncond_form`); the
``amused`` strategy of the zoo holds the scheduler's defaults. Files are read
with ``local_files_only``: nothing is downloaded.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from autonat.errors import AutonatError
from autonat.generator.condition import TextCondition


@dataclass(frozen=True)
class AmusedConfig:
    """What the sampling pipeline reads of a generator's config, for an aMUSEd folder.

    Captions carry no class ids: ``num_classes`` is 0 and ``null_class`` (1)
    is never used; the null condition is the model's (the empty caption).
    """

    codebook_size: int
    grid: tuple[int, int]
    mask_id: int
    image_size: int
    masking_schedule: str = "cosine"
    num_classes: int = 0
    null_class: int = 1
    is_text: bool = True


#: ``AmusedPipeline.__call__`` defaults for the micro-conditioning.
AESTHETIC_SCORE = 6
CROP_COORD = (0, 0)


class AmusedTextEncoder:
    """aMUSEd's CLIP text encoder: captions -> :class:`TextCondition` (penultimate hidden states, ``text_embeds``)."""

    def __init__(self, tokenizer, text_model, name: str = "amused-clip") -> None:
        self.tokenizer = tokenizer
        self.model = text_model.eval().requires_grad_(False)
        self.name = name
        self.max_length = int(tokenizer.model_max_length)
        self.width = int(text_model.config.hidden_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def encode(self, captions: list[str]) -> TextCondition:
        """``hidden [B, max_length, width]``, ``mask [B, max_length]`` (True at real tokens), ``pooled [B, proj]``."""
        if isinstance(captions, str) or not all(isinstance(c, str) for c in captions):
            raise AutonatError("captions are a list of strings")
        batch = self.tokenizer(list(captions), return_tensors="pt", padding="max_length", truncation=True,
                               max_length=self.max_length)
        out = self.model(batch.input_ids.to(self.device), return_dict=True, output_hidden_states=True)
        return TextCondition(out.hidden_states[-2], batch.attention_mask.to(self.device).bool(), out.text_embeds)


class AmusedTransformer(torch.nn.Module):
    """A diffusers ``UVit2DModel`` called as ``model(tokens [B, L], cond: TextCondition) -> logits [B, L, V]``.

    ``V`` is the codebook size; the [MASK] id is the scheduler's
    ``mask_token_id``. ``null`` is the encoded empty caption (one row).
    """

    def __init__(self, transformer: torch.nn.Module, null: TextCondition, grid: tuple[int, int],
                 image_size: tuple[int, int], aesthetic_score: float = AESTHETIC_SCORE,
                 crop_coord: tuple[int, int] = CROP_COORD) -> None:
        super().__init__()
        if len(null) != 1:
            raise AutonatError("the null condition of aMUSEd is one encoded caption (the empty one)")
        self.transformer = transformer
        self.grid = tuple(grid)
        height, width = image_size
        # the pipeline's order: width, height, crop coordinates, aesthetic score
        self.register_buffer("micro", torch.tensor([width, height, *crop_coord, aesthetic_score], dtype=torch.float32),
                             persistent=False)
        self.register_buffer("null_hidden", null.hidden, persistent=False)
        self.register_buffer("null_mask", null.mask, persistent=False)
        self.register_buffer("null_pooled", null.pooled, persistent=False)

    @property
    def codebook_size(self) -> int:
        return int(self.transformer.config.codebook_size)

    def null_condition(self, cond: TextCondition) -> TextCondition:
        """The empty caption for every row of ``cond``."""
        return TextCondition(self.null_hidden, self.null_mask, self.null_pooled).repeat(len(cond))

    def forward(self, tokens: torch.Tensor, cond: TextCondition) -> torch.Tensor:
        if not isinstance(cond, TextCondition) or cond.pooled is None:
            raise AutonatError("aMUSEd is conditioned on captions: pass a TextCondition with its pooled embedding "
                               "(encode the captions with the checkpoint's text encoder)")
        b = tokens.shape[0]
        hidden = cond.hidden
        micro = self.micro.to(hidden.dtype)[None].expand(b, -1)
        logits = self.transformer(tokens.view(b, *self.grid), encoder_hidden_states=hidden,
                                  pooled_text_emb=cond.pooled, micro_conds=micro)  # [B, V, h, w]
        return logits.flatten(2).transpose(1, 2)
