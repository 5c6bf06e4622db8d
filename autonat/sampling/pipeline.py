"""From a checkpoint and a strategy to images: the library side of ``autonat sample``.

Sample ``i`` of a request is seeded from ``(seed, i)``, so a set of images
is the same whatever the batch size, and any subset (one process's share)
can be produced on its own.

A request's labels are class ids for a class-conditional generator and
captions (strings) for a text-conditional one; captions are encoded by the
text encoder the checkpoint records (:meth:`Pipeline.text_encoder`) and
rounded to float16, as the training cache stores them.

Speed options (measured in ``docs/benchmarks.md``): ``precision="auto"`` runs
the generator under bf16 autocast on CUDA and in full precision on CPU (so
CPU results stay bit-for-bit those of the plain sampler); ``compile=True``
runs the generator through ``torch.compile`` (opt-in: the first batch pays
the compilation, and compiled kernels may round differently).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

from autonat.data.captions import check_same_encoder, draw_eval_captions, open_text_encoder, read_caption_groups
from autonat.data.tokenization import verify_tokenizer
from autonat.errors import AutonatError
from autonat.generator.checkpoint import Generator, load_generator
from autonat.generator.condition import Condition, TextCondition
from autonat.io.diffusers_folder import is_amused_folder
from autonat.runtime import warn_bf16_cpu
from autonat.sampling.options import PRECISIONS
from autonat.sampling.sampler import (
    SamplerOptions,
    TokenSpace,
    make_generators,
    sample_seeds,
    sample_tokens,
)
from autonat.strategy.core import Strategy
from autonat.tokenizers.loader import load_tokenizer


@dataclass
class Pipeline:
    """A generator with its tokenizer: labels in, images in [0, 1] out."""

    generator: Generator
    tokenizer: torch.nn.Module
    device: torch.device
    precision: str = "auto"  # see :func:`autocast_dtype`
    compile: bool = False
    text_encoder_spec: str | None = None  # overrides the checkpoint's recorded encoder spec
    _network: torch.nn.Module | None = field(default=None, init=False, repr=False)
    _encoder: object | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        autocast_dtype(self.precision, self.device)  # reject a bad name before any work
        if self.precision == "bf16" and torch.device(self.device).type == "cpu":
            warn_bf16_cpu("sampling", "use --precision fp32 (or auto, fp32 on a CPU)")

    @classmethod
    def load(cls, checkpoint: str | Path, tokenizer: str | Path | None = None,
             tokenizer_config: str | Path | None = None, device: str | torch.device = "cpu",
             precision: str = "auto", compile: bool = False, force: bool = False,
             text_encoder: str | None = None) -> "Pipeline":
        """Load a checkpoint and its tokenizer (the recorded one unless ``tokenizer`` is given).

        The tokenizer's content fingerprint must be the one the checkpoint
        records; ``force`` turns a mismatch into a warning. ``text_encoder``
        names the text encoder of a text-conditional checkpoint when its
        recorded spec does not load here (it must be the same encoder).
        """
        if is_amused_folder(checkpoint):
            if tokenizer is not None or text_encoder is not None:
                raise AutonatError(f"{checkpoint} is an aMUSEd folder with its own VQ model and text encoder; "
                                   "drop --tokenizer and --text-encoder")
            return AmusedPipeline.from_folder(checkpoint, device, precision, compile)
        device = torch.device(device)
        gen = load_generator(checkpoint, device)
        tok_path = gen.tokenizer_path(tokenizer)
        verify_tokenizer(gen.tokenizer, tok_path, f"checkpoint {gen.path}",
                         fix="pass the tokenizer it was trained with (--tokenizer)", force=force)
        tok = load_tokenizer(tok_path, tokenizer_config, device=device)
        if tok.codebook_size != gen.config.codebook_size:
            raise AutonatError(f"tokenizer has {tok.codebook_size} codes but the generator was trained "
                               f"for {gen.config.codebook_size}; pass the tokenizer it was trained with")
        if not fits_grid(tuple(tok.grid), tuple(gen.config.grid)):
            raise AutonatError(f"tokenizer grid {tuple(tok.grid)} differs from the generator's {gen.config.grid}")
        return cls(gen, tok, device, precision, compile, text_encoder)

    @property
    def network(self) -> torch.nn.Module:
        """The generator network the sampler calls; compiled on first use when ``compile`` is set."""
        if self._network is None:
            model = self.generator.model
            self._network = torch.compile(model, dynamic=False) if self.compile else model
        return self._network

    def sampler_options(self, options: SamplerOptions | None = None) -> SamplerOptions:
        """``options`` with the pipeline's autocast dtype filled in where they give none."""
        options = options or SamplerOptions()
        if options.autocast_dtype is None:
            options = replace(options, autocast_dtype=autocast_dtype(self.precision, self.device))
        return options

    @property
    def token_space(self) -> TokenSpace:
        """The generator's token grid, [MASK] id and null class."""
        return TokenSpace.of(self.generator.config)

    @property
    def num_classes(self) -> int:
        return self.generator.config.num_classes

    @property
    def is_text(self) -> bool:
        """True if the generator takes captions, not class ids."""
        return self.generator.config.is_text

    def check_labels(self, labels: Sequence) -> None:
        """Class ids in range for a class-conditional generator, captions (strings) for a text one."""
        texts = [isinstance(c, str) for c in labels]
        if self.is_text and not all(texts):
            raise AutonatError(f"checkpoint {self.generator.path} is text-conditional: give it captions "
                               "(--prompt / --prompts, --captions), not class ids (--classes)")
        if self.is_text:
            return
        if any(texts):
            raise AutonatError(f"checkpoint {self.generator.path} is class-conditional: give it classes "
                               "(--classes), not captions (--prompt / --prompts, --captions)")
        bad = [c for c in labels if not 0 <= int(c) <= self.num_classes]
        if bad:
            raise AutonatError(f"class id(s) {bad[:5]} out of range: this model knows classes "
                               f"0..{self.num_classes - 1} ({self.num_classes} = unconditional)")

    def text_encoder(self):
        """The text encoder of a text-conditional checkpoint: the recorded spec (or the override), loaded once
        and checked to be the encoder the generator was trained with."""
        if self._encoder is None:
            record = self.generator.meta.get("text_encoder") or {}
            spec = self.text_encoder_spec or record.get("spec")
            if not spec:
                raise AutonatError(f"checkpoint {self.generator.path} records no text encoder; pass "
                                   "--text-encoder SPEC (the encoder it was trained with)")
            try:
                encoder = open_text_encoder(spec, device=self.device)
            except AutonatError as exc:
                if self.text_encoder_spec:
                    raise
                raise AutonatError(f"{exc} (the text encoder checkpoint {self.generator.path} records; pass "
                                   "--text-encoder SPEC where it is now)") from exc
            check_same_encoder(record, encoder, f"checkpoint {self.generator.path}",
                               fix="pass --text-encoder SPEC naming the encoder it was trained with")
            self._encoder = encoder
        return self._encoder

    def condition(self, labels: Sequence) -> Condition:
        """The generator's condition for ``labels``: class ids, or the encoded captions (float16-rounded)."""
        if not self.is_text:
            return torch.as_tensor(list(labels), dtype=torch.long, device=self.device)
        with torch.inference_mode():
            cond = self.text_encoder().encode([str(c) for c in labels])
        return TextCondition(cond.hidden.half().float(), cond.mask.bool()).to(self.device)

    def eval_labels(self, n: int, captions: str | Path | None = None, seed: int = 0) -> list:
        """What ``eval`` and the search generate: ``n`` class-balanced ids, or for a text-conditional generator
        ``n`` captions of the caption file ``captions`` (:func:`autonat.data.captions.draw_eval_captions`)."""
        if self.is_text:
            if captions is None:
                raise AutonatError(f"checkpoint {self.generator.path} is text-conditional: pass --captions FILE "
                                   "(COCO captions .json, .jsonl or .txt) to generate from")
            drawn = draw_eval_captions(read_caption_groups(captions), n, seed)
            self.text_encoder()  # an encoder that does not load fails before any work
            return drawn
        if captions is not None:
            raise AutonatError(f"checkpoint {self.generator.path} is class-conditional: drop --captions")
        return balanced_labels(n, self.num_classes)

    def tokens(self, strategy: Strategy, labels: Sequence, seeds: Sequence[int],
               options: SamplerOptions | None = None) -> torch.Tensor:
        """Token grids ``[B, h, w]`` for ``labels`` (class ids or captions) with one seed per sample."""
        cfg = self.generator.config
        y = self.condition(labels)
        ids = sample_tokens(self.network, strategy, y, make_generators(seeds, self.device), self.token_space,
                            self.sampler_options(options))
        return ids.view(-1, *cfg.grid)

    @torch.inference_mode()
    def images(self, strategy: Strategy, labels: Sequence, seeds: Sequence[int],
               options: SamplerOptions | None = None) -> torch.Tensor:
        """Images ``[B, 3, H, W]`` in [0, 1]."""
        return self.tokenizer.decode(self.tokens(strategy, labels, seeds, options)).float()

    def batches(self, strategy: Strategy, labels: Sequence, seed: int, batch_size: int,
                indices: Sequence[int] | None = None, progress: bool = True,
                options: SamplerOptions | None = None) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
        """Yield ``(images, labels)`` batches; sample ``indices[k]`` gets seed ``(seed, indices[k])``."""
        self.check_labels(labels)
        indices = list(range(len(labels))) if indices is None else list(indices)
        labels = np.asarray(labels, dtype=object if self.is_text else np.int64)
        bar = tqdm(total=len(indices), desc="sample", unit="img", disable=not progress, dynamic_ncols=True)
        for start in range(0, len(indices), batch_size):
            chunk = indices[start: start + batch_size]
            y = labels[chunk]
            yield self.images(strategy, y.tolist(), sample_seeds(seed, chunk), options), y
            bar.update(len(chunk))
        bar.close()


def fits_grid(tokenizer_grid: tuple[int, int], generator_grid: tuple[int, int]) -> bool:
    """Whether a generator's token grid is one the tokenizer makes: its own (square) grid, or a non-square grid
    whose shorter side is the tokenizer's (images kept whole, ``data.crop: false``, their shorter side resized
    to the tokenizer's input size; a convolutional tokenizer codes and decodes any such shape)."""
    if tuple(tokenizer_grid) == tuple(generator_grid):
        return True
    return tokenizer_grid[0] == tokenizer_grid[1] and min(generator_grid) == tokenizer_grid[0]


def autocast_dtype(precision: str, device: torch.device | str) -> torch.dtype | None:
    """The generator's autocast dtype: ``auto`` is bf16 on CUDA (where supported), none elsewhere.

    Full precision stays the CPU default because it keeps CPU samples exactly
    those of the plain sampler; ``bf16`` on a CPU with bf16 instructions
    (AVX512-BF16, AMX) is faster but changes the numbers slightly, and on a
    CPU without them it is several times slower (the pipeline warns, see
    :func:`autonat.runtime.bf16_cpu_warning`).
    """
    if precision not in PRECISIONS:
        raise AutonatError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    device = torch.device(device)
    if precision == "bf16" or (precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return None


def balanced_labels(n: int, num_classes: int) -> list[int]:
    """``n`` labels cycling over the classes (class-balanced up to one sample)."""
    return [i % num_classes for i in range(n)]


class AmusedPipeline(Pipeline):
    """A local aMUSEd folder (diffusers ``AmusedPipeline``, see :mod:`autonat.sampling.amused`): captions in.

    Captions are encoded by the folder's own CLIP text encoder as the
    diffusers pipeline encodes them (penultimate hidden states and the
    projected pooled embedding, in full precision); the null condition is
    the empty caption.
    """

    @classmethod
    def from_folder(cls, folder: str | Path, device: str | torch.device = "cpu", precision: str = "auto",
                    compile: bool = False) -> "AmusedPipeline":
        from autonat.sampling.amused import load_amused

        checkpoint = load_amused(folder, device)
        pipe = cls(checkpoint.as_generator(), checkpoint.tokenizer, torch.device(device), precision, compile)
        pipe._encoder = checkpoint.text_encoder
        return pipe

    def condition(self, labels: Sequence[str]) -> TextCondition:
        """The encoded captions ``labels``."""
        self.check_labels(labels)
        with torch.inference_mode():
            return self.text_encoder().encode(list(labels))
