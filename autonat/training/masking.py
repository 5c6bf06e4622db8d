"""The training-time masking policy of AutoNAT.

For every sequence a mask ratio r ~ Beta(alpha, beta) is drawn and
``round(r * L)`` random positions (at least one) are replaced by [MASK]; the
loss is label-smoothed cross-entropy on the masked positions only. Labels are
dropped to the null class with probability ``p_uncond`` so that one network
also learns the unconditional model used by classifier-free guidance; a
text condition is dropped to the encoded empty caption the same way
(:func:`drop_conditions`). AutoNAT's searched training strategy is Beta(12, 3).

:func:`mask_rows` draws every row from its own counter-based streams
(Philox, keyed by the training step), so the rows a process masks are
exactly the rows it would get from the whole global batch masked at once:
each process masks only its own rows, and the masks do not depend on the
number of processes or on gradient accumulation. Row ``i`` of a global
batch reads draw ``i`` of stream 0 (its masked count, by the inverse CDF of
the rounded Beta, :func:`mask_count_cdf`), draw ``i`` of stream 1 (condition
dropout) and draws ``i L .. i L + L - 1`` of stream 2 (the scores whose
``count`` smallest positions are masked).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from autonat.generator.condition import Condition, TextCondition
from autonat.training.recipe import MaskingConfig


@dataclass
class MaskedBatch:
    """Model inputs and loss targets for one training batch."""

    inputs: torch.Tensor  # [B, L] tokens with [MASK] at masked positions
    mask: torch.Tensor  # [B, L] bool, True where masked
    labels: Condition  # [B] class ids, or a TextCondition, after condition dropout


# --------------------------------------------------------------------------- per-row draws
def stream_uniforms(key: tuple[int, ...], stream: int, start: int, n: int) -> np.ndarray:
    """Draws ``start .. start + n - 1`` of the uniform stream ``(key, stream)``, in O(n) whatever ``start``.

    A Philox generator keyed by ``SeedSequence([*key, stream])`` is a counter:
    it jumps to draw ``start`` (4 doubles per counter step) instead of
    drawing the ones before, so a process reads its own rows only.
    """
    state = np.random.SeedSequence([*key, stream]).generate_state(2, np.uint64)
    bits = np.random.Philox(key=state)
    bits.advance(start // 4)
    gen = np.random.Generator(bits)
    gen.random(start % 4)
    return gen.random(n)


def mask_count_cdf(length: int, alpha: float, beta: float) -> np.ndarray:
    """``P(count <= k)`` for ``k = 1 .. L``, where ``count = clamp(round(r L), 1, L)`` and r ~ Beta(alpha, beta).

    ``count <= k`` exactly when ``r L < k + 1/2`` (a tie has probability 0),
    so the k-th entry is the regularised incomplete Beta function at
    ``(k + 1/2) / L``; the last is 1.
    """
    from scipy.special import betainc

    cdf = betainc(float(alpha), float(beta), np.clip((np.arange(1, length + 1) + 0.5) / length, 0.0, 1.0))
    cdf[-1] = 1.0
    return cdf


def drop_conditions(cond: Condition, drop: torch.Tensor, null: int | TextCondition) -> Condition:
    """Row ``i`` of ``cond`` replaced by the null condition where ``drop[i]``: the null class id, or the
    encoded empty caption ``null`` (one row) for a :class:`TextCondition`."""
    if isinstance(cond, TextCondition):
        return cond.where(drop, null.repeat(len(cond)))
    return torch.where(drop, torch.full_like(cond, null), cond)


def mask_counts(key: tuple[int, ...], start: int, n: int, length: int, config: MaskingConfig) -> np.ndarray:
    """Masked-token counts of global rows ``start .. start + n - 1`` (inverse CDF of their stream-0 draws)."""
    u = stream_uniforms(key, 0, start, n)
    cdf = mask_count_cdf(length, config.alpha, config.beta)
    return np.searchsorted(cdf, u, side="right").clip(max=length - 1) + 1


def mask_rows(tokens: torch.Tensor, labels: Condition, start: int, key: tuple[int, ...], config: MaskingConfig,
              mask_id: int, null_class: int | TextCondition) -> MaskedBatch:
    """Mask rows ``start .. start + n - 1`` of a global batch (``tokens`` [n, L], ``labels``: class ids [n] or a
    TextCondition; ``null_class`` is the null class id, or the empty caption for text conditions).

    Row ``i`` masks the ``count_i`` positions of smallest score (its own L
    draws of stream 2) and drops its condition when its stream-1 draw is
    below ``p_uncond``; see the module notes. Any split of the global batch
    into pieces masked separately gives the same rows as the whole.
    """
    n, length = tokens.shape
    counts = mask_counts(key, start, n, length, config)
    scores = stream_uniforms(key, 2, start * length, n * length).reshape(n, length)
    kth = np.take_along_axis(np.sort(scores, axis=1), (counts - 1)[:, None], axis=1)  # numpy's SIMD sort: 20x torch's
    mask = torch.from_numpy(scores <= kth).to(tokens.device)
    inputs = torch.where(mask, torch.full_like(tokens, mask_id), tokens)
    drop = torch.from_numpy(stream_uniforms(key, 1, start, n) < config.p_uncond)
    return MaskedBatch(inputs=inputs, mask=mask, labels=drop_conditions(labels, drop, null_class))


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                         label_smoothing: float = 0.1, reduction: str = "mean") -> torch.Tensor:
    """Label-smoothed cross-entropy over the masked positions only: their mean, or their ``"sum"``."""
    return F.cross_entropy(logits[mask].float(), targets[mask], label_smoothing=label_smoothing,
                           reduction=reduction)


def masked_accuracy(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                    k: int = 1) -> torch.Tensor:
    """Fraction of masked positions whose target is among the top-``k`` predictions."""
    top = logits[mask].topk(k, dim=-1).indices
    return (top == targets[mask][:, None]).any(dim=-1).float().mean()
