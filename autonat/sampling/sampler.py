"""Parallel decoding: from an all-[MASK] grid to a full token grid in T steps.

At step t the model predicts every position (classifier-free guidance mixes
conditional and unconditional logits as ``cond + s * (cond - uncond)``); a
token is drawn at each masked position from ``softmax(logits / sample_temp)``
(the argmax at temperature 0, unless ``SamplerOptions.temperature_floor`` is
set) and scored by its log-probability (already fixed tokens score +inf); Gumbel
noise scaled by ``remask_temp`` is added to the scores and the least confident
``masked_counts[t]`` positions are masked again. This is MaskGIT's decoding
with AutoNAT's four per-step schedule vectors (see :mod:`autonat.strategy`).

A strategy may carry two per-step reuse schedules (``cfg_reuse``,
``deep_reuse``, see :class:`~autonat.strategy.core.Strategy`): at a step
marked in them the sampler takes the guidance residual or the deep U-ViT
features from an earlier step instead of computing them (:class:`StepMemory`).
Without them every step computes everything, exactly as before.

With an order policy (``SamplerOptions.order``, see :mod:`autonat.sampling.order`) the
positions decoded at each step follow a fixed random or Halton order instead of
the confidences; the masked counts stay those of the strategy.

Randomness is explicit: every sample has its own ``torch.Generator``, and the
draws of one sample never depend on the others, so the same seed and label
give the same image whatever the batch size or process count.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import torch

from autonat.errors import AutonatError
from autonat.generator.condition import Condition, batch_size, check_class_ids, concat, null_condition
from autonat.generator.uvit import DeepReuse
from autonat.sampling.options import SamplerOptions
from autonat.sampling.order import position_ranks
from autonat.strategy.core import Strategy


@dataclass(frozen=True)
class TokenSpace:
    """The token sequence a generator decodes, and the two special ids around it.

    ``grid`` ``(h, w)`` is read row by row into ``seq_len = h * w`` positions;
    a position holds a codebook id ``0 .. mask_id - 1`` or ``mask_id``, the
    [MASK] token (one past the codebook). Class ids run ``0 .. null_class - 1``;
    ``null_class`` is the null condition (unconditional samples and the second
    pass of classifier-free guidance); it is 0 for a text-conditional model,
    which has no classes (its null is the empty caption it keeps).
    """

    mask_id: int
    null_class: int
    grid: tuple[int, int]

    def __post_init__(self) -> None:
        object.__setattr__(self, "grid", tuple(int(g) for g in self.grid))  # YAML and JSON give lists
        if len(self.grid) != 2 or min(self.grid) < 1:
            raise AutonatError(f"a token grid is (height, width) of positive sizes, got {self.grid}")
        if self.mask_id < 1 or self.null_class < 0:
            raise AutonatError(f"the mask id must be positive and the null class not negative, got {self.mask_id} "
                               f"and {self.null_class}")

    @property
    def seq_len(self) -> int:
        return self.grid[0] * self.grid[1]

    @classmethod
    def of(cls, config) -> TokenSpace:
        """The token space of a generator config (:class:`~autonat.generator.config.UViTConfig`)."""
        return cls(mask_id=config.mask_id, null_class=config.null_class, grid=config.grid)


@dataclass
class SamplerState:
    """The canvas after a decoding step (``step`` counts from 0)."""

    step: int
    tokens: torch.Tensor  # [B, L] codebook ids, ``mask_id`` where still masked
    masked: torch.Tensor  # [B, L] bool


def sample_seeds(seed: int, indices: Sequence[int]) -> list[int]:
    """One well-mixed 63-bit seed per sample index, derived from a run seed."""
    return [int(np.random.SeedSequence([seed, int(i)]).generate_state(2, np.uint64)[0] >> np.uint64(1))
            for i in indices]


def make_generators(seeds: Sequence[int], device: torch.device | str = "cpu") -> list[torch.Generator]:
    """A ``torch.Generator`` per sample, on ``device``."""
    return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]


def _uniform(shape: tuple[int, ...], generators: list[torch.Generator], device) -> torch.Tensor:
    """Stacked per-sample uniforms in (0, 1): row i comes from generator i alone."""
    u = torch.stack([torch.rand(shape, generator=g, device=device) for g in generators])
    return u.clamp_(1e-20, 1.0 - 1e-7)


def _gumbel(shape, generators, device) -> torch.Tensor:
    return -torch.log(-torch.log(_uniform(shape, generators, device)))


@dataclass
class StepMemory:
    """What a decode keeps from earlier steps to reuse at the steps its strategy marks.

    * ``residual``: the guidance residual ``cond - uncond`` (float32 logits
      ``[B, L, V]``) of the last step that ran both passes. At a
      ``cfg_reuse`` step only the conditional pass runs and the logits are
      ``cond_t + s_t * residual`` (LazyMAR's guidance reuse).
    * ``features``: per branch (``"cond"``, ``"uncond"``) the deep U-ViT
      features of the last pass of that branch that ran in full
      (:class:`~autonat.generator.uvit.DeepReuse`); a ``deep_reuse`` step runs
      only the ``keep`` shallow blocks at each end.

    A step marked for reuse with nothing stored yet (say the first guided
    step) computes in full and stores. Only what the strategy will reuse is
    kept. Set ``cfg_reuse`` / ``deep_reuse`` to the current step's flags
    before its forward passes.
    """

    keep: int
    store_residual: bool
    store_features: bool
    cfg_reuse: bool = False
    deep_reuse: bool = False
    residual: torch.Tensor | None = None
    features: dict[str, torch.Tensor] = field(default_factory=dict)

    @classmethod
    def of(cls, strategy: Strategy, options: SamplerOptions, model: torch.nn.Module) -> StepMemory | None:
        """The memory a decode of ``strategy`` needs, or None when it reuses nothing (the exact sampler)."""
        if not strategy.reuses:
            return None
        deep = any(strategy.deep_reuse or ())
        if deep:
            half = getattr(getattr(model, "config", None), "depth", 0) // 2
            if half < 1:
                raise AutonatError("deep_reuse needs a U-ViT generator (blocks joined by long skips); "
                                   "drop deep_reuse from the strategy for this model")
            if not 1 <= options.deep_keep <= half:
                raise AutonatError(f"deep_keep must lie in 1..{half} for this U-ViT ({half} blocks in each half), "
                                   f"got {options.deep_keep}")
        return cls(options.deep_keep, store_residual=any(strategy.cfg_reuse or ()), store_features=deep)

    def at_step(self, strategy: Strategy, t: int) -> StepMemory:
        self.cfg_reuse = bool(strategy.cfg_reuse and strategy.cfg_reuse[t])
        self.deep_reuse = bool(strategy.deep_reuse and strategy.deep_reuse[t])
        return self

    def forward(self, model: torch.nn.Module, tokens: torch.Tensor, cond: Condition,
                branches: tuple[str, ...]) -> torch.Tensor:
        """``model(tokens, cond)`` for the rows of ``branches`` (stacked in that order), reusing deep features
        when this step is marked and every branch has some stored (else running in full and storing them)."""
        if not self.store_features:
            return model(tokens, cond)
        stored = [self.features.get(b) for b in branches]
        reuse = self.deep_reuse and all(f is not None for f in stored)
        deep = DeepReuse(self.keep, torch.cat(stored) if reuse else None)
        logits = model(tokens, cond, deep=deep)
        if not reuse:
            self.features.update(zip(branches, deep.features.chunk(len(branches))))
        return logits


def guided_logits(model: torch.nn.Module, tokens: torch.Tensor, cond: Condition, scale: float,
                  null_class: int, options: SamplerOptions, memory: StepMemory | None = None) -> torch.Tensor:
    """Logits after classifier-free guidance.

    With ``|scale|`` under the threshold only the conditional pass runs;
    otherwise the conditional and unconditional passes run as one batch or
    one after the other (``options.cfg_batching``). The unconditional pass
    takes the model's null condition (:func:`autonat.generator.condition.null_condition`).
    With a ``memory`` the step may reuse earlier work (see :class:`StepMemory`).
    """
    def run(x, c, branches):
        return model(x, c) if memory is None else memory.forward(model, x, c, branches)

    device_type = tokens.device.type
    use_amp = options.autocast_dtype is not None
    with torch.autocast(device_type, dtype=options.autocast_dtype or torch.bfloat16, enabled=use_amp):
        if abs(scale) < options.cfg_zero_threshold:
            return run(tokens, cond, ("cond",)).float()
        if memory is not None and memory.cfg_reuse and memory.residual is not None:
            return run(tokens, cond, ("cond",)).float() + scale * memory.residual
        null = null_condition(model, cond, null_class)
        if options.batches_cfg(tokens.device):
            both = run(torch.cat([tokens, tokens]), concat(cond, null), ("cond", "uncond"))
            cond_logits, uncond = both.float().chunk(2)
        else:
            cond_logits = run(tokens, cond, ("cond",)).float()
            uncond = run(tokens, null, ("uncond",)).float()
    residual = cond_logits - uncond
    if memory is not None and memory.store_residual:
        memory.residual = residual
    return cond_logits + scale * residual


def decode(model: torch.nn.Module, strategy: Strategy, labels: Condition,
           generators: Sequence[torch.Generator], space: TokenSpace,
           options: SamplerOptions | None = None) -> Iterator[SamplerState]:
    """Run the T decoding steps over ``space``, yielding the canvas after each one.

    ``labels`` is the batch's condition (:mod:`autonat.generator.condition`):
    class ids ``[B]`` (``space.null_class`` for unconditional samples) or a
    :class:`~autonat.generator.condition.TextCondition`; ``generators`` holds
    one generator per sample on the model's device.
    """
    options = options or SamplerOptions()
    mask_id, null_class, seq_len = space.mask_id, space.null_class, space.seq_len
    b = batch_size(labels)
    if len(generators) != b:
        raise AutonatError(f"need one generator per sample: {len(generators)} generators for {b} labels")
    check_class_ids(labels, null_class)
    device = labels.device
    ranks = position_ranks(options.order, generators, seq_len, space.grid, device)
    tokens = torch.full((b, seq_len), mask_id, dtype=torch.long, device=device)
    counts = strategy.masked_counts(seq_len)
    memory = StepMemory.of(strategy, options, model)
    for t in range(strategy.steps):
        masked = tokens == mask_id
        logits = guided_logits(model, tokens, labels, strategy.cfg_scale[t], null_class, options,
                               memory and memory.at_step(strategy, t))
        temp = max(strategy.sample_temp[t], options.temperature_floor)
        if temp > 0:
            drawn = (logits / temp + _gumbel(logits.shape[1:], generators, device)).argmax(-1)
        else:
            drawn = logits.argmax(-1)
        tokens = torch.where(masked, drawn, tokens)
        if counts[t] > 0:
            if ranks is not None:
                confidence = -ranks.float()  # an order policy: positions late in the order wait
            else:
                confidence = torch.log_softmax(logits, dim=-1).gather(-1, drawn[..., None])[..., 0]
                if t < len(strategy.remask_temp) and strategy.remask_temp[t] > 0:
                    confidence = confidence + strategy.remask_temp[t] * _gumbel((seq_len,), generators, device)
                # fixed tokens score +inf and are never masked again, even when an extreme (valid) CFG scale
                # or temperature overflows float32 and turns a masked token's score into inf or NaN
                top = torch.finfo(confidence.dtype).max
                confidence = torch.where(masked, confidence.nan_to_num(nan=-float("inf"), posinf=top), float("inf"))
            remask = confidence.topk(counts[t], dim=-1, largest=False).indices
            tokens = tokens.scatter(1, remask, mask_id)
        del logits  # [B, L, V]: not held through the caller's time and the next forward pass (peak memory)
        yield SamplerState(step=t, tokens=tokens, masked=tokens == mask_id)


@torch.inference_mode()
def sample_tokens(model: torch.nn.Module, strategy: Strategy, labels: Condition,
                  generators: Sequence[torch.Generator], space: TokenSpace,
                  options: SamplerOptions | None = None) -> torch.Tensor:
    """Decode to completion; returns ``LongTensor[B, seq_len]`` of codebook ids."""
    *_, last = decode(model, strategy, labels, generators, space, options)
    return last.tokens
