"""The training-time masking policy of AutoNAT.

For every sequence a mask ratio r ~ Beta(alpha, beta) is drawn and
``round(r * L)`` random positions (at least one) are replaced by [MASK]; the
loss is label-smoothed cross-entropy on the masked positions only. Labels are
dropped to the null class with probability ``p_uncond`` so that one network
also learns the unconditional model used by classifier-free guidance; a
text condition is dropped to the encoded empty caption the same way
(:func:`drop_conditions`). AutoNAT's searched training strategy is Beta(12, 3).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from autonat.generator.condition import Condition, TextCondition
from autonat.io.config import FieldError, require_fractions, require_positive


@dataclass(frozen=True)
class MaskingConfig:
    """Mask-ratio distribution and loss settings (the training strategy)."""

    alpha: float = 12.0
    beta: float = 3.0
    label_smoothing: float = 0.1
    p_uncond: float = 0.15

    def __post_init__(self) -> None:
        require_positive(self, "alpha", "beta")  # the Beta distribution's parameters
        require_fractions(self, "label_smoothing")
        if not 0.0 <= self.p_uncond <= 1.0:
            raise FieldError("p_uncond", f"must be in [0, 1], got {self.p_uncond}")

    @property
    def mean_ratio(self) -> float:
        return self.alpha / (self.alpha + self.beta)


@dataclass
class MaskedBatch:
    """Model inputs and loss targets for one training batch."""

    inputs: torch.Tensor  # [B, L] tokens with [MASK] at masked positions
    mask: torch.Tensor  # [B, L] bool, True where masked
    labels: Condition  # [B] class ids, or a TextCondition, after condition dropout


def sample_mask_ratios(n: int, alpha: float, beta: float, generator: torch.Generator | None = None,
                       device: torch.device | str = "cpu") -> torch.Tensor:
    """Draw ``n`` mask ratios from Beta(alpha, beta), reproducibly from ``generator``.

    ``torch.distributions.Beta`` takes no generator, so a seed drawn from
    ``generator`` seeds a forked global RNG for the draw.
    """
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ratios = torch.distributions.Beta(float(alpha), float(beta)).sample((n,))
    return ratios.to(device)


def random_mask(shape: tuple[int, int], ratios: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """A boolean mask with ``max(1, round(r * L))`` random True positions per row."""
    n, length = shape
    counts = (ratios * length).round().clamp(1, length).long()
    scores = torch.rand(n, length, generator=generator, device=ratios.device)
    ranks = scores.argsort(dim=1).argsort(dim=1)
    return ranks < counts[:, None]


def drop_conditions(cond: Condition, drop: torch.Tensor, null: int | TextCondition) -> Condition:
    """Row ``i`` of ``cond`` replaced by the null condition where ``drop[i]``: the null class id, or the
    encoded empty caption ``null`` (one row) for a :class:`TextCondition`."""
    if isinstance(cond, TextCondition):
        return cond.where(drop, null.repeat(len(cond)))
    return torch.where(drop, torch.full_like(cond, null), cond)


def mask_batch(tokens: torch.Tensor, labels: Condition, config: MaskingConfig, mask_id: int,
               null_class: int | TextCondition, generator: torch.Generator | None = None) -> MaskedBatch:
    """Mask ``tokens`` [B, L] and drop ``labels`` (class ids [B] or a TextCondition) as the training strategy
    says; ``null_class`` is the null class id, or the empty caption for text conditions."""
    b, length = tokens.shape
    ratios = sample_mask_ratios(b, config.alpha, config.beta, generator, device=tokens.device)
    mask = random_mask((b, length), ratios, generator)
    inputs = torch.where(mask, torch.full_like(tokens, mask_id), tokens)
    drop = torch.rand(b, generator=generator, device=tokens.device) < config.p_uncond
    return MaskedBatch(inputs=inputs, mask=mask, labels=drop_conditions(labels, drop, null_class))


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                         label_smoothing: float = 0.1) -> torch.Tensor:
    """Mean label-smoothed cross-entropy over the masked positions only."""
    return F.cross_entropy(logits[mask].float(), targets[mask], label_smoothing=label_smoothing)


def masked_accuracy(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                    k: int = 1) -> torch.Tensor:
    """Fraction of masked positions whose target is among the top-``k`` predictions."""
    top = logits[mask].topk(k, dim=-1).indices
    return (top == targets[mask][:, None]).any(dim=-1).float().mean()
