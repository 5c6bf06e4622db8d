"""Decoding-order policies that choose positions without the model's confidence.

MaskGIT decodes, at each step, the tokens the model is most confident about
(plus Gumbel noise). An *order policy* instead fixes, before decoding, the
order in which positions are revealed; the sampler still keeps the strategy's
masked counts, so after step ``t`` exactly the first ``L - masked_counts[t]``
positions of the order are decoded.

* ``random``: a uniformly random permutation per sample, drawn from that
  sample's own generator (so it does not depend on the batch).
* ``halton``: the quasi-random Halton order over the 2-D token grid of
  Besnier et al., "Halton Scheduler for Masked Generative Image Transformer"
  (ICLR 2025; valeoai/Halton-MaskGIT): points of the 2-D Halton sequence
  (bases 2 and 3) mapped to grid cells, each cell kept at its first visit.
  Successive tokens are spread evenly over the image, so tokens decoded in
  the same step are far apart and depend on each other little.

Orders are returned as *ranks*: ``rank[b, p]`` is the index at which sample
``b`` decodes position ``p`` (0 first).
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import torch

from autonat.errors import AutonatError
from autonat.sampling.options import ORDERS


def radical_inverse(index: int, base: int) -> float:
    """The ``index``-th element of the van der Corput sequence in ``base`` (digits mirrored after the point)."""
    value, scale = 0.0, 1.0 / base
    while index:
        index, digit = divmod(index, base)
        value += digit * scale
        scale /= base
    return value


@lru_cache(maxsize=32)
def halton_order(grid: tuple[int, int]) -> tuple[int, ...]:
    """Raster indices of an ``(h, w)`` grid in Halton order; every position exactly once.

    Point ``i = 1, 2, ...`` of the Halton sequence is
    ``(radical_inverse(i, 2), radical_inverse(i, 3))``; it falls in row
    ``floor(x * h)`` and column ``floor(y * w)``. Cells already visited are
    skipped, and the sequence runs until every cell is covered (it is dense,
    so it always ends; a generous cap guards against float edge cases by
    appending any stragglers in raster order).
    """
    h, w = int(grid[0]), int(grid[1])
    if h < 1 or w < 1:
        raise AutonatError(f"the token grid must be at least 1 x 1, got {grid}")
    total, seen, order = h * w, set(), []
    index, cap = 1, 1000 * total + 1000
    while len(order) < total and index < cap:
        cell = math.floor(radical_inverse(index, 2) * h) * w + math.floor(radical_inverse(index, 3) * w)
        if cell not in seen:
            seen.add(cell)
            order.append(cell)
        index += 1
    order += [c for c in range(total) if c not in seen]
    return tuple(order)


def ranks_from_order(order: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """Invert an order (positions listed first to last) into ranks (rank of each position)."""
    order = torch.as_tensor(order, dtype=torch.long)
    ranks = torch.empty_like(order)
    ranks.scatter_(-1, order, torch.arange(order.shape[-1]).expand_as(order).contiguous())
    return ranks


def random_ranks(generators: Sequence[torch.Generator], seq_len: int, device) -> torch.Tensor:
    """``[B, L]`` ranks of a random permutation per sample; row ``i`` uses generator ``i`` only."""
    return torch.stack([torch.randperm(seq_len, generator=g, device=device) for g in generators])


def infer_grid(seq_len: int, grid: tuple[int, int] | None) -> tuple[int, int]:
    """The token grid: ``grid`` if given (and matching), else the square one for ``seq_len``."""
    if grid is not None:
        grid = (int(grid[0]), int(grid[1]))
        if grid[0] * grid[1] != seq_len:
            raise AutonatError(f"token grid {grid} has {grid[0] * grid[1]} positions, not {seq_len}")
        return grid
    side = math.isqrt(seq_len)
    if side * side != seq_len:
        raise AutonatError(f"{seq_len} tokens are not a square grid; give the grid (SamplerOptions.grid)")
    return side, side


def position_ranks(order: str, generators: Sequence[torch.Generator], seq_len: int,
                   grid: tuple[int, int] | None, device) -> torch.Tensor | None:
    """``[B, L]`` decoding ranks under ``order``, or ``None`` for confidence-based decoding."""
    if order == "confidence":
        return None
    if order == "random":
        return random_ranks(generators, seq_len, device)
    if order == "halton":
        ranks = ranks_from_order(halton_order(infer_grid(seq_len, grid))).to(device)
        return ranks.expand(len(generators), seq_len)
    raise AutonatError(f"unknown decoding order {order!r}; choose one of {', '.join(ORDERS)}")
