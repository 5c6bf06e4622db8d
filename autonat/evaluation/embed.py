"""Embedding an image set with a feature extractor, sharded over processes."""
from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from autonat.errors import AutonatError
from autonat.evaluation.features import FeatureExtractor
from autonat.evaluation.images import ImageSet


# --------------------------------------------------------------------------- embedding in shares
def shard(n: int, batch_size: int, rank: int = 0, world: int = 1) -> list[list[int]]:
    """Process ``rank``'s batches: consecutive index ranges of ``batch_size``, dealt round-robin."""
    if batch_size < 1:
        raise AutonatError(f"batch size must be at least 1, got {batch_size}")
    batches = [list(range(s, min(s + batch_size, n))) for s in range(0, n, batch_size)]
    return batches[rank::world]


def embed(images: ImageSet, extractor: FeatureExtractor, batch_size: int = 100, state=None,
          progress: bool = True, desc: str = "embed") -> dict[str, torch.Tensor]:
    """Features ``{layer: [N, D]}`` of the whole set, in index order, on every process.

    ``state`` is an accelerate ``PartialState``; each process embeds its share
    and the shares are gathered (a collective: every process must call this).
    """
    rank, world = (state.process_index, state.num_processes) if state is not None else (0, 1)
    mine = shard(len(images), batch_size, rank, world)
    label = desc if world == 1 else f"{desc} (share of process 0 of {world})"
    bar = tqdm(total=sum(map(len, mine)), desc=label, unit="img", dynamic_ncols=True,
               disable=not progress or rank != 0)
    parts = []
    for idx in mine:
        feats = extractor.embed(images.batch(idx))
        parts.append((idx, {k: v.numpy() for k, v in feats.items()}))
        bar.update(len(idx))
    bar.close()
    if world > 1:
        from accelerate.utils import gather_object

        parts = gather_object(parts)
    return _assemble(parts, len(images))


def _assemble(parts: list, n: int) -> dict[str, torch.Tensor]:
    parts = sorted(parts, key=lambda p: p[0][0])
    if [i for idx, _ in parts for i in idx] != list(range(n)):
        raise RuntimeError("gathered features do not cover every sample exactly once")
    return {k: torch.from_numpy(np.concatenate([f[k] for _, f in parts])) for k in parts[0][1]}
