"""A visible decoding process: the canvas after every sampler step, as a GIF or a PNG strip.

For a few samples, the tokens of each step's canvas are decoded to pixels
and the still-masked tokens are painted grey, so one sees which regions the
sampler commits to first (confidence-based decoding tends to start with the
background; a Halton order spreads its choices evenly).

* ``.gif``: one frame per step, the samples side by side;
* ``.png``: a strip, one row per sample and one column per step.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torchvision.utils import make_grid

from autonat.errors import AutonatError
from autonat.generator.condition import TextCondition
from autonat.io.atomic import atomic_path
from autonat.sampling.sampler import (
    SamplerOptions,
    SamplerState,
    TokenSpace,
    decode,
    make_generators,
)
from autonat.strategy.core import Strategy

GREY = 0.5
FORMATS = (".gif", ".png")

TokenDecoder = Callable[[torch.Tensor], torch.Tensor]
"""``LongTensor[B, h, w]`` codebook ids -> images ``[B, 3, H, W]`` in [0, 1] (a tokenizer's ``decode``)."""


@torch.inference_mode()
def decoding_states(model: torch.nn.Module, strategy: Strategy, labels: torch.Tensor,
                    generators: Sequence[torch.Generator], space: TokenSpace,
                    options: SamplerOptions | None = None) -> list[SamplerState]:
    """The sampler's canvas after each of the strategy's steps."""
    return list(decode(model, strategy, labels, generators, space, options))


@torch.inference_mode()
def render_canvas(state: SamplerState, decode_tokens: TokenDecoder, grid: tuple[int, int]) -> torch.Tensor:
    """Images ``[B, 3, H, W]`` of one canvas, masked tokens grey.

    Masked positions are decoded as code 0 (any valid code) and then covered,
    so the grey squares show exactly the token cells still to be decided.
    """
    b = state.tokens.shape[0]
    ids = torch.where(state.masked, torch.zeros_like(state.tokens), state.tokens).view(b, *grid)
    images = decode_tokens(ids).float().clamp(0, 1).cpu()
    cover = F.interpolate(state.masked.view(b, 1, *grid).float().cpu(), size=images.shape[-2:], mode="nearest")
    return torch.where(cover.bool(), torch.full_like(images, GREY), images)


def render_trace(states: Sequence[SamplerState], decode_tokens: TokenDecoder,
                 grid: tuple[int, int]) -> torch.Tensor:
    """``[T, B, 3, H, W]``: every step's canvas for every sample."""
    return torch.stack([render_canvas(s, decode_tokens, grid) for s in states])


def _upscale(frames: torch.Tensor, min_side: int) -> torch.Tensor:
    """Nearest-neighbour enlargement so small images (e.g. 32 px digits) stay readable."""
    factor = max(1, math.ceil(min_side / frames.shape[-1]))
    if factor == 1:
        return frames
    return F.interpolate(frames.flatten(0, 1), scale_factor=factor, mode="nearest").view(
        *frames.shape[:2], 3, frames.shape[-2] * factor, frames.shape[-1] * factor)


def _to_pil(image: torch.Tensor):
    from PIL import Image

    return Image.fromarray(image.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy())


def check_trace_path(path: str | Path) -> Path:
    """``path`` as a :class:`Path` if it names a format we write, else a clear error."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise AutonatError(f"--trace writes {' or '.join(FORMATS)} files, not {path.name!r}")
    return path


def save_trace(frames: torch.Tensor, path: str | Path, frame_ms: int = 500, min_side: int = 96) -> Path:
    """Write ``[T, B, 3, H, W]`` frames as a GIF (one frame per step) or a PNG strip (rows: samples).

    The file is written atomically; the last GIF frame is held three times as long.
    """
    path = check_trace_path(path)
    suffix = path.suffix.lower()
    if frames.ndim != 5 or frames.shape[0] == 0:
        raise AutonatError("a trace needs at least one step of at least one sample")
    frames = _upscale(frames, min_side)
    steps, samples = frames.shape[:2]
    with atomic_path(path) as tmp:
        if suffix == ".png":
            strip = make_grid(frames.transpose(0, 1).flatten(0, 1), nrow=steps, padding=2, pad_value=1.0)
            _to_pil(strip).save(tmp, format="png")
        else:
            pictures = [_to_pil(make_grid(f, nrow=samples, padding=2, pad_value=1.0)) for f in frames]
            durations = [frame_ms] * (steps - 1) + [3 * frame_ms]
            pictures[0].save(tmp, format="gif", save_all=True, append_images=pictures[1:], duration=durations,
                             loop=0)
    return path


def write_trace(model: torch.nn.Module, decode_tokens: TokenDecoder, strategy: Strategy,
                labels: Sequence[int] | TextCondition, seeds: Sequence[int], path: str | Path, space: TokenSpace,
                options: SamplerOptions | None = None) -> Path:
    """Sample ``labels`` (class ids, or encoded captions) with one seed each, recording every step, and write
    the trace to ``path``.

    With the same seeds as a full run these are the same samples as that run's
    first images (the sampler's draws for a sample depend on its seed only).
    """
    device = next(model.parameters()).device
    y = labels.to(device) if isinstance(labels, TextCondition) else torch.as_tensor(
        list(labels), dtype=torch.long, device=device)
    states = decoding_states(model, strategy, y, make_generators(seeds, device), space, options)
    return save_trace(render_trace(states, decode_tokens, space.grid), path)
