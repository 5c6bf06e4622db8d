"""What a generator is conditioned on, and the null condition of classifier-free guidance.

Every generator is called as ``model(tokens, cond) -> logits [B, L, codebook]``
where ``cond`` is one of two kinds:

* class ids, a ``LongTensor[B]`` in ``[0, num_classes]``; ``num_classes`` is
  the null class (AutoNAT on ImageNet, the built-in digit demo);
* a :class:`TextCondition`: a text encoder's per-token hidden states
  ``[B, n, d]`` with their mask ``[B, n]``, and for models that also take a
  pooled sentence embedding (aMUSEd) that embedding ``[B, p]``. The null
  condition is the encoded empty caption (U-ViT on MS-COCO).

The sampler and the search never look inside a condition: they use the four
operations below (its batch size, a sub-batch, the concatenation of two
batches for one guided forward pass, and the null batch of the same size), so
the same decoding loop serves both kinds. A model with a learned or encoded
null defines ``null_condition(cond)``; a class-conditional model need not, its
null is the class ``num_classes`` (:func:`null_condition`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import torch

from autonat.errors import AutonatError


@dataclass(frozen=True)
class TextCondition:
    """A batch of encoded captions: ``hidden [B, n, d]``, ``mask [B, n]`` (True at real tokens), ``pooled [B, p]``."""

    hidden: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.hidden.dim() != 3:
            raise AutonatError(f"text hidden states are [batch, tokens, width], got shape {tuple(self.hidden.shape)}")
        if tuple(self.mask.shape) != tuple(self.hidden.shape[:2]):
            raise AutonatError(f"text mask shape {tuple(self.mask.shape)} does not match the hidden states "
                               f"{tuple(self.hidden.shape[:2])}; pass one mask entry per text token")
        if self.pooled is not None and (self.pooled.dim() != 2 or self.pooled.shape[0] != self.hidden.shape[0]):
            raise AutonatError(f"a pooled text embedding is [batch, width], got shape {tuple(self.pooled.shape)}")

    def __len__(self) -> int:
        return self.hidden.shape[0]

    def __getitem__(self, index) -> TextCondition:
        """Rows ``index`` (an int keeps the batch dimension)."""
        if isinstance(index, int):
            index = slice(index, index + 1 or None)
        pooled = None if self.pooled is None else self.pooled[index]
        return TextCondition(self.hidden[index], self.mask[index], pooled)

    @property
    def device(self) -> torch.device:
        return self.hidden.device

    def to(self, device: torch.device | str) -> TextCondition:
        pooled = None if self.pooled is None else self.pooled.to(device)
        return TextCondition(self.hidden.to(device), self.mask.to(device), pooled)

    def repeat(self, n: int) -> TextCondition:
        """This condition (one row) repeated ``n`` times, e.g. the empty caption for a batch."""
        if len(self) != 1:
            raise AutonatError(f"only a single condition can be repeated, this one has {len(self)} rows")
        pooled = None if self.pooled is None else self.pooled.expand(n, -1)
        return TextCondition(self.hidden.expand(n, -1, -1), self.mask.expand(n, -1), pooled)

    def where(self, use_other: torch.Tensor, other: TextCondition) -> TextCondition:
        """Row ``i`` from ``other`` where ``use_other[i]``, else from ``self`` (condition dropout)."""
        rows = use_other.to(torch.bool)
        pooled = None if self.pooled is None else torch.where(rows[:, None], other.pooled, self.pooled)
        return TextCondition(torch.where(rows[:, None, None], other.hidden, self.hidden),
                             torch.where(rows[:, None], other.mask, self.mask), pooled)


Condition = Union[torch.Tensor, TextCondition]


def batch_size(cond: Condition) -> int:
    """The number of samples a batch of conditions describes."""
    return len(cond) if isinstance(cond, TextCondition) else int(cond.shape[0])


def concat(a: Condition, b: Condition) -> Condition:
    """One batch of ``a``'s rows followed by ``b``'s (the two passes of guidance in one forward)."""
    if isinstance(a, TextCondition) != isinstance(b, TextCondition):
        raise AutonatError("cannot join class ids and text conditions in one batch; use one kind per model")
    if not isinstance(a, TextCondition):
        return torch.cat([a, b])
    if a.hidden.shape[1:] != b.hidden.shape[1:]:
        raise AutonatError(f"text conditions of shapes {tuple(a.hidden.shape[1:])} and {tuple(b.hidden.shape[1:])} "
                           "cannot share a batch; encode both with the same encoder and length")
    pooled = None if a.pooled is None else torch.cat([a.pooled, b.pooled])
    return TextCondition(torch.cat([a.hidden, b.hidden]), torch.cat([a.mask, b.mask]), pooled)


def null_condition(model: torch.nn.Module, cond: Condition, null_class: int) -> Condition:
    """The null condition for every row of ``cond``: ``model.null_condition(cond)`` when the model defines one,
    else class ids all equal to ``null_class``."""
    own = getattr(model, "null_condition", None)
    if own is not None:
        return own(cond)
    if isinstance(cond, TextCondition):
        raise AutonatError("this model takes text conditions but defines no null_condition; "
                           "give it one (the encoded empty caption)")
    return torch.full_like(cond, null_class)


def check_class_ids(cond: Condition, null_class: int) -> None:
    """Refuse class ids outside ``[0, null_class]`` (text conditions pass)."""
    if isinstance(cond, TextCondition) or cond.numel() == 0:
        return
    if int(cond.min()) < 0 or int(cond.max()) > null_class:
        raise AutonatError(f"class ids must lie in [0, {null_class - 1}] (or {null_class} for unconditional); "
                           f"got {cond.min().item()}..{cond.max().item()}")
