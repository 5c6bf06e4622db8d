"""Tokenising in shards: split over processes, written as it goes, resumable, merged into one token cache.

The items ``0 .. N-1`` of a dataset are cut into shards of ``shard_size``
consecutive items; shard ``k`` is encoded by process ``k mod W`` of ``W``.
A finished shard is one file ``shard_<k>.npz`` in the work folder
``.<cache name>.shards`` beside the cache, written under a temporary name
and renamed, so a shard file there is always complete. The work folder's
``manifest.json`` records what the shards are made of (source, listing,
tokenizer, size, resize policy, mirror, shard size); a rerun with the same
inputs skips the finished shards, a rerun with other inputs is refused
before it mixes them. When every shard is there the main process merges
them, in shard order, into the cache (one shard in memory at a time) and
removes the work folder.

A shard file holds ``tokens`` [rows, L], ``labels`` [rows], ``grid`` [2]
(the token grid of its images), and per item of the shard ``status``
(:data:`~autonat.data.images.READ`, ``UNREADABLE``, ``TOO_LARGE``) and
``upscaled``. Its rows are, batch after batch, the batch's readable images
and then (``hflip``) their mirror images.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autonat.errors import AutonatError
from autonat.io.atomic import atomic_path, explain_disk_full

SHARD_KEYS = ("tokens", "labels", "grid", "status", "upscaled")


@dataclass(frozen=True)
class ShardPlan:
    """``num_items`` items cut into shards of ``shard_size`` consecutive items."""

    num_items: int
    shard_size: int

    def __post_init__(self) -> None:
        if self.shard_size < 1:
            raise AutonatError(f"shard size must be at least 1, got {self.shard_size}")

    @property
    def num_shards(self) -> int:
        return -(-self.num_items // self.shard_size)

    def items(self, shard: int) -> range:
        return range(shard * self.shard_size, min((shard + 1) * self.shard_size, self.num_items))

    def shards_of(self, rank: int, world: int) -> list[int]:
        """The shards process ``rank`` of ``world`` encodes: ``rank, rank + world, ...``."""
        return list(range(rank, self.num_shards, world))


def work_folder(cache: str | Path) -> Path:
    """Where the shards of the cache ``cache`` are kept until they are merged: ``.<name>.shards`` beside it."""
    cache = Path(cache)
    return cache.parent / f".{cache.name}.shards"


def shard_file(work: Path, shard: int) -> Path:
    return work / f"shard_{shard:06d}.npz"


def open_work_folder(work: Path, manifest: dict) -> int:
    """Create ``work`` with ``manifest``, or check that an existing one was made with the same inputs.

    Returns the number of finished shards found there (0 for a new folder).
    A different manifest is a one-line error naming what differs.
    """
    file = work / "manifest.json"
    if file.exists():
        try:
            recorded = json.loads(file.read_text())
        except (OSError, ValueError):
            recorded = {}
        differs = sorted(k for k in set(recorded) | set(manifest) if recorded.get(k) != manifest.get(k))
        if differs:
            raise AutonatError(f"{work} holds shards of another tokenization ({', '.join(differs)} differ); delete "
                               "that folder to start over, or run with the inputs it was made with")
        return sum(1 for _ in work.glob("shard_*.npz"))
    work.mkdir(parents=True, exist_ok=True)
    with atomic_path(file) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2))
    return 0


def write_shard(work: Path, shard: int, arrays: dict[str, np.ndarray]) -> None:
    """Write shard ``shard`` atomically (a kill leaves no partial shard file)."""
    path = shard_file(work, shard)
    with explain_disk_full(path, kept="the finished shards are kept; rerun to go on"), \
            atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def read_shard(work: Path, shard: int) -> dict[str, np.ndarray]:
    """Shard ``shard``'s arrays (:data:`SHARD_KEYS`); a missing or damaged file is a one-line error."""
    path = shard_file(work, shard)
    try:
        with np.load(path) as z:
            return {key: z[key] for key in SHARD_KEYS}
    except (OSError, ValueError, KeyError) as exc:
        raise AutonatError(f"shard {path} is missing or damaged ({type(exc).__name__}); delete it and rerun "
                           "the same command to encode it again") from exc


def remove_work_folder(work: Path) -> None:
    shutil.rmtree(work, ignore_errors=True)
