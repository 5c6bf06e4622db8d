"""Loading a local aMUSEd pipeline folder as our generator, tokenizer and text encoder.

See :mod:`autonat.generator.amused` for how each diffusers component is
wrapped and :mod:`autonat.io.diffusers_folder` for how the folder is
recognised. The [MASK] id is the scheduler's ``mask_token_id``; the
scheduler's ``masking_schedule`` names the ``amused`` strategy's mask
schedule (:func:`autonat.strategy.zoo.amused`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from autonat.errors import AutonatError
from autonat.generator.amused import AmusedConfig, AmusedTextEncoder, AmusedTransformer
from autonat.generator.checkpoint import Generator
from autonat.io.config import read_json
from autonat.io.diffusers_folder import KIND, amused_grid, check_amused_folder, import_diffusers
from autonat.sampling.sampler import TokenSpace
from autonat.tokenizers.amused import AmusedVQTokenizer


@dataclass
class AmusedCheckpoint:
    """A loaded aMUSEd folder: generator, tokenizer, text encoder, and its token ids and scheduler settings."""

    model: AmusedTransformer
    tokenizer: AmusedVQTokenizer
    text_encoder: AmusedTextEncoder
    mask_id: int
    masking_schedule: str
    path: Path

    @property
    def config(self) -> AmusedConfig:
        return AmusedConfig(codebook_size=self.model.codebook_size, grid=self.model.grid, mask_id=self.mask_id,
                            image_size=self.tokenizer.image_size, masking_schedule=self.masking_schedule)

    def as_generator(self) -> Generator:
        """The transformer as a :class:`~autonat.generator.checkpoint.Generator` record (what the pipeline holds)."""
        return Generator(model=self.model, config=self.config, tokenizer={"kind": KIND, "path": str(self.path)},
                         path=self.path, meta={"format": KIND, "text_encoder": {"name": self.text_encoder.name}})

    @property
    def token_space(self) -> TokenSpace:
        """The token grid and [MASK] id; captions carry no class ids (the null class 1 is never used)."""
        return TokenSpace(mask_id=self.mask_id, null_class=1, grid=self.model.grid)


def load_amused(path: str | Path, device: torch.device | str = "cpu") -> AmusedCheckpoint:
    """Load a local aMUSEd pipeline folder (fp32 weights, eval mode, frozen); nothing is downloaded."""
    path = check_amused_folder(path)
    diffusers = import_diffusers()
    import transformers

    scheduler_file = path / "scheduler" / "scheduler_config.json"
    if not scheduler_file.exists():
        raise AutonatError(f"{scheduler_file} is missing; copy the whole aMUSEd pipeline folder")
    scheduler = read_json(scheduler_file, "copy the whole aMUSEd pipeline folder")
    try:
        vqvae = diffusers.VQModel.from_pretrained(path / "vqvae", local_files_only=True)
        transformer = diffusers.UVit2DModel.from_pretrained(path / "transformer", local_files_only=True)
        text_model = transformers.CLIPTextModelWithProjection.from_pretrained(path / "text_encoder",
                                                                             local_files_only=True)
        clip_tokenizer = transformers.CLIPTokenizer.from_pretrained(path / "tokenizer", local_files_only=True)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AutonatError(f"cannot load the aMUSEd folder {path}: {first}; copy the whole pipeline snapshot "
                           "(fp32 weights)") from None
    side = amused_grid(path)[0]
    image_side = side * 2 ** (len(vqvae.config.block_out_channels) - 1)
    tokenizer = AmusedVQTokenizer(vqvae, image_side)
    mask_id = int(scheduler["mask_token_id"])
    codebook = int(transformer.config.codebook_size)
    if tokenizer.codebook_size != codebook:
        raise AutonatError(f"{path}: the VQ model has {tokenizer.codebook_size} codes, the transformer predicts "
                           f"{codebook}; the folder mixes two models")
    if not codebook <= mask_id < int(transformer.config.vocab_size):
        raise AutonatError(f"{path}: mask_token_id {mask_id} must lie in [codebook size {codebook}, vocab size "
                           f"{transformer.config.vocab_size}); check scheduler/scheduler_config.json")
    text = AmusedTextEncoder(clip_tokenizer, text_model.to(device))
    model = AmusedTransformer(transformer, text.encode([""]), (side, side), (image_side, image_side))
    for module in (model, tokenizer):
        module.requires_grad_(False)
        module.eval().to(device)
    return AmusedCheckpoint(model, tokenizer, text, mask_id, str(scheduler.get("masking_schedule", "cosine")), path)
