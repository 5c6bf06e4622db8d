"""Starting a generator from another checkpoint's weights (``train.init``), e.g. a wider grid or a new condition.

Every tensor of the new model whose name and shape match one of the
checkpoint's is copied. The image position table ``token_embed.positions``
(``[h * w, d]``, row-major over the token grid) of a checkpoint trained on a
grid ``h' x w'`` that tiles the new grid (``h' | h``, ``w' | w``) is tiled:
position ``(r, c)`` starts from the old ``(r mod h', c mod w')``, so a
32x64 two-digit model starts as two copies of a 32x32 one-digit model side by
side. Everything else (a text projection where the checkpoint had classes,
a tensor of another shape) keeps its fresh initialisation and is listed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from autonat.errors import AutonatError
from autonat.generator.checkpoint import WEIGHTS_FILE, read_generator_config
from autonat.generator.uvit import UViT
from autonat.io.weights import read_state_dict

POSITIONS = "token_embed.positions.weight"


@dataclass(frozen=True)
class WarmStart:
    """What :func:`warm_start` did: names copied, tiled and left fresh (in the new model), and ignored (old)."""

    copied: tuple[str, ...]
    tiled: tuple[str, ...]
    fresh: tuple[str, ...]
    ignored: tuple[str, ...]

    def summary(self) -> str:
        return (f"{len(self.copied)} tensors copied, {len(self.tiled)} tiled, {len(self.fresh)} new "
                f"({', '.join(self.fresh) or 'none'}), {len(self.ignored)} of the checkpoint unused")


def tile_positions(old: torch.Tensor, old_grid: tuple[int, int], grid: tuple[int, int]) -> torch.Tensor:
    """``[h' * w', d]`` -> ``[h * w, d]``: row ``r * w + c`` is old row ``(r mod h') * w' + (c mod w')``."""
    (oh, ow), (h, w) = old_grid, grid
    if h % oh or w % ow:
        raise AutonatError(f"a {oh}x{ow} position table cannot tile a {h}x{w} token grid; start from a checkpoint "
                           "whose grid divides this one, or without train.init")
    rows = (torch.arange(h)[:, None] % oh) * ow + torch.arange(w)[None, :] % ow
    return old[rows.flatten()]


@torch.no_grad()
def warm_start(model: UViT, checkpoint: str | Path) -> WarmStart:
    """Copy (or tile) ``checkpoint``'s weights into ``model`` in place (module notes)."""
    path = Path(checkpoint)
    info = read_generator_config(path)
    old = read_state_dict(path / WEIGHTS_FILE)
    old_grid = tuple(int(g) for g in info["model"]["grid"])
    new = model.state_dict()
    copied, tiled, fresh = [], [], []
    for name, tensor in new.items():
        source = old.get(name)
        if source is not None and source.shape == tensor.shape:
            tensor.copy_(source)
            copied.append(name)
        elif name == POSITIONS and source is not None and source.shape[1:] == tensor.shape[1:]:
            tensor.copy_(tile_positions(source, old_grid, model.config.grid))
            tiled.append(name)
        else:
            fresh.append(name)
    if not copied:
        raise AutonatError(f"{path} shares no weights with this model (other width or depth); "
                           "train.init needs a checkpoint of the same size")
    return WarmStart(tuple(copied), tuple(tiled), tuple(fresh), tuple(sorted(set(old) - set(new))))
