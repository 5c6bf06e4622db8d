"""The sampler's knobs that are not part of the strategy, and the names they accept.

Nothing here imports torch, so the command line can offer these names as
choices without loading it; :mod:`autonat.sampling.sampler`,
:mod:`autonat.sampling.order` and :mod:`autonat.sampling.pipeline` use them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from autonat.errors import AutonatError

if TYPE_CHECKING:
    import torch

ORDERS = ("confidence", "random", "halton")
"""``confidence`` is MaskGIT's re-masking of the least confident tokens (the default)."""

CFG_BATCHING = ("auto", "batched", "split")
"""How a guided step gets its two sets of logits (see :class:`SamplerOptions`)."""

OFFICIAL_TEMPERATURE_FLOOR = 1e-4
"""The official AutoNAT sampler draws each token at temperature ``max(sample_temp, 1e-4)``."""

PRECISIONS = ("auto", "fp32", "bf16")
"""Generator arithmetic: ``auto`` is bf16 autocast on CUDA, full precision elsewhere."""


@dataclass
class SamplerOptions:
    """Knobs of the decoding loop that are not part of the strategy.

    cfg_zero_threshold: a CFG scale with ``|s|`` below this is treated as 0 and
        the unconditional pass is skipped (the released AutoNAT-L T=8 strategy
        writes "no guidance" as 1e-4; the effect of 1e-4 on logits is
        ``1e-4 * (cond - uncond)``, far below sampling noise).
    autocast_dtype: run the network under autocast in this dtype (e.g.
        ``torch.bfloat16`` on CUDA); ``None`` keeps full precision.
    order: which masked positions to decode: ``"confidence"`` (MaskGIT's
        re-masking of the least confident, the default), ``"random"`` or
        ``"halton"`` (see :mod:`autonat.sampling.order`); the last two ignore
        ``remask_temp``.
    cfg_batching: how a guided step gets its two sets of logits: ``"batched"``
        (one forward pass over ``2B`` rows: on CUDA the larger batch fills the
        device better), ``"split"`` (a conditional and an unconditional pass
        of ``B`` rows: on a CPU this is about as fast at the AutoNAT shapes,
        faster for small models, and keeps the activations, dominated by
        U-ViT's long skips, those of ``B`` rows) or
        ``"auto"`` (batched on CUDA, split elsewhere; see docs/benchmarks.md).
        Both give the same logits up to float rounding.
    temperature_floor: tokens are drawn at ``max(sample_temp, floor)``, so a
        step at temperature 0 still samples; 0 (the default) keeps the exact
        argmax at temperature 0. :data:`OFFICIAL_TEMPERATURE_FLOOR` (1e-4)
        reproduces the official sampler, whose "greedy" steps may pick another
        token than the argmax at a position whose best logit leads the next by
        ``gap``: with probability at most ``(V - 1) exp(-gap / 1e-4)`` over
        ``V`` codes (27% against one runner-up at a lead of 1e-4); above a
        lead of about 0.0104 (104 floors) every other token's float32
        probability is 0 and the floored draw is the argmax.
    deep_keep: at a step the strategy's ``deep_reuse`` marks, the number of
        blocks recomputed at each end of the U-ViT (in blocks ``0 .. k-1`` and
        the last ``k`` out blocks; see :class:`autonat.generator.uvit.DeepReuse`);
        the rest comes from the last step that ran in full. Unused when the
        strategy reuses nothing.
    """

    cfg_zero_threshold: float = 1e-3
    autocast_dtype: torch.dtype | None = None
    order: str = "confidence"
    cfg_batching: str = "auto"
    temperature_floor: float = 0.0
    deep_keep: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.deep_keep, bool) or not isinstance(self.deep_keep, int) or self.deep_keep < 1:
            raise AutonatError(f"deep_keep counts blocks recomputed at each end: a whole number >= 1, "
                               f"got {self.deep_keep!r}")
        if not self.temperature_floor >= 0:
            raise AutonatError(f"temperature_floor must be >= 0 (got {self.temperature_floor}); "
                               f"0 turns it off, {OFFICIAL_TEMPERATURE_FLOOR} is the official sampler's")
        if self.cfg_batching not in CFG_BATCHING:
            raise AutonatError(f"unknown cfg_batching {self.cfg_batching!r}; choose one of {', '.join(CFG_BATCHING)}")

    def batches_cfg(self, device: torch.device) -> bool:
        """Whether a guided step runs its two passes as one batch on ``device``."""
        return self.cfg_batching == "batched" or (self.cfg_batching == "auto" and device.type == "cuda")
