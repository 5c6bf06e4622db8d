"""The token cache: a dataset encoded once by the frozen tokenizer.

A cache of a captioned dataset also holds the caption features, encoded once
by a text encoder (see :mod:`autonat.data.captions`); its ``labels`` are all
-1 (no class) and ``num_classes`` is 0.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from autonat.data.captions import CaptionFeatures, read_caption_features
from autonat.errors import AutonatError
from autonat.io.atomic import atomic_dir, check_output_dir
from autonat.io.identity import resolve_recorded, with_portable_path


# --------------------------------------------------------------------------- token cache
@dataclass
class TokenCache:
    """Token ids ``[N, L]`` and labels ``[N]`` (both memory-mapped: nothing is loaded into memory, a reader
    indexes the rows it needs), the caption features of a captioned dataset, and the cache's metadata."""

    tokens: np.ndarray
    labels: np.ndarray
    meta: dict
    path: Path | None = None  # the cache directory, when read from disk
    captions: CaptionFeatures | None = None  # caption features, for a captioned dataset

    @property
    def is_text(self) -> bool:
        return self.captions is not None

    @property
    def grid(self) -> tuple[int, int]:
        return tuple(self.meta["grid"])

    @property
    def codebook_size(self) -> int:
        return int(self.meta["codebook_size"])

    @property
    def num_classes(self) -> int:
        return int(self.meta["num_classes"])

    def __len__(self) -> int:
        return len(self.labels)

    def value_ranges(self) -> dict[str, list[int]]:
        """``{"tokens": [min, max], "labels": [min, max]}``: as recorded when written, else read in chunks."""
        recorded = self.meta.get("value_ranges")
        if recorded:
            return recorded
        return {"tokens": _chunked_range(self.tokens), "labels": _chunked_range(self.labels)}

    def tokenizer_record(self) -> dict:
        """The recorded tokenizer, its ``path`` made valid from the working directory when it is found."""
        record = dict(self.meta.get("tokenizer", {}))
        found = self.tokenizer_path()
        return {**record, "path": str(found)} if found is not None else record

    def tokenizer_path(self) -> Path | None:
        """Where the tokenizer that made the cache is (see :func:`resolve_recorded`), or None if not found."""
        recorded = self.meta.get("tokenizer", {}).get("path")
        if not recorded or self.path is None:
            return None
        return resolve_recorded(recorded, self.path)


CACHE_KIND = "token-cache"
CACHE_FILES = ("tokens.npy", "labels.npy", "meta.json")


def is_token_cache(path: str | Path) -> bool:
    """True if ``path`` holds a token cache's files (also one written before output markers)."""
    return all((Path(path) / name).is_file() for name in CACHE_FILES)


def check_cache_output(path: str | Path) -> Path:
    """Refuse, before any work, an ``--out`` where writing a token cache would lose a user's files."""
    return check_output_dir(path, CACHE_KIND, is_token_cache)


CHUNK_ROWS = 65536  # rows read or copied at a time by whole-cache passes (memory O(chunk), not O(N))


def _chunked_range(a: np.ndarray) -> list[int]:
    """``[min, max]`` of an array read ``CHUNK_ROWS`` rows at a time (``[0, -1]`` when empty)."""
    if not len(a):
        return [0, -1]
    parts = [(int(a[i: i + CHUNK_ROWS].min()), int(a[i: i + CHUNK_ROWS].max())) for i in range(0, len(a), CHUNK_ROWS)]
    return [min(p[0] for p in parts), max(p[1] for p in parts)]


def token_dtype(codebook_size: int) -> np.dtype:
    """uint16 when the codebook fits (up to 65,536 codes), else int32."""
    return np.dtype(np.uint16 if codebook_size <= np.iinfo(np.uint16).max + 1 else np.int32)


def cache_meta(meta: dict, path: str | Path, num_items: int, ranges: dict) -> str:
    """The ``meta.json`` text: ``meta``, the tokenizer path made portable, the item count and value ranges."""
    if "tokenizer" in meta:
        meta = {**meta, "tokenizer": with_portable_path(meta["tokenizer"], path)}
    return json.dumps({**meta, "num_items": int(num_items), "value_ranges": ranges}, indent=2)


def write_token_cache(path: str | Path, tokens: np.ndarray, labels: np.ndarray, meta: dict,
                      extra: Callable[[Path], dict] | None = None) -> None:
    """Write a token cache directory atomically (it replaces only an earlier cache, and only when complete).

    ``extra(folder)`` writes more files into the folder being built (the
    caption features) and returns entries added to ``meta.json``.

    ``meta["tokenizer"]["path"]`` (valid from the working directory) is
    recorded relative to the cache, or absolute (see :func:`autonat.io.identity.portable_path`).
    """
    tokens = tokens.reshape(len(tokens), -1)
    write_token_cache_blocks(path, lambda: [tokens], labels, tokens.shape[1], meta, extra)


def write_token_cache_blocks(path: str | Path, blocks: Callable[[], Iterable[np.ndarray]], labels: np.ndarray,
                             length: int, meta: dict, extra: Callable[[Path], dict] | None = None) -> None:
    """:func:`write_token_cache` with the tokens given as consecutive row blocks ``[b, length]`` by ``blocks()``.

    The blocks are copied one at a time into a memory-mapped ``tokens.npy``,
    so writing a cache of any size takes the memory of one block.
    """
    ranges = {"tokens": [0, -1], "labels": _chunked_range(labels)}
    with atomic_dir(path, CACHE_KIND, is_token_cache) as tmp:
        out = np.lib.format.open_memmap(tmp / "tokens.npy", mode="w+", dtype=token_dtype(meta["codebook_size"]),
                                        shape=(len(labels), length))
        row = 0
        for block in blocks():
            if len(block):
                out[row: row + len(block)] = block
                low, high = int(block.min()), int(block.max())
                ranges["tokens"] = [low, high] if row == 0 else [min(low, ranges["tokens"][0]),
                                                                 max(high, ranges["tokens"][1])]
            row += len(block)
        if row != len(labels):
            raise AutonatError(f"token cache {path}: {row} token rows for {len(labels)} labels (an internal error)")
        out.flush()
        del out
        np.save(tmp / "labels.npy", labels.astype(np.int64))
        if extra is not None:
            meta = {**meta, **extra(tmp)}
        (tmp / "meta.json").write_text(cache_meta(meta, path, len(labels), ranges))


def read_token_cache(path: str | Path) -> TokenCache:
    """Open a token cache written by :func:`write_token_cache` (tokens memory-mapped)."""
    path = Path(path)
    for name in CACHE_FILES:
        if not (path / name).exists():
            raise AutonatError(f"{path} is not a token cache: {name} is missing (write one with `autonat tokenize`)")
    try:
        meta = json.loads((path / "meta.json").read_text())
        tokens = np.load(path / "tokens.npy", mmap_mode="r")  # allow_pickle stays False: no code runs
        labels = np.load(path / "labels.npy", mmap_mode="r")
    except (OSError, ValueError) as exc:  # truncated, corrupt, or pickled objects
        reason = str(exc).splitlines()[0]
        if "Python objects" in reason:  # numpy's words when memory-mapping an object (pickle) array
            reason = "it holds pickled Python objects, which are never loaded"
        raise AutonatError(f"token cache {path} is corrupt ({reason}); "
                           "write it again with `autonat tokenize`") from exc
    grid = meta.get("grid", [])
    if tokens.ndim != 2 or len(tokens) != len(labels) or tokens.shape[1] != int(np.prod(grid)):
        raise AutonatError(
            f"token cache {path} is inconsistent: tokens {tokens.shape}, labels {labels.shape}, grid {grid}"
        )
    captions = read_caption_features(path, meta, len(labels)) if "text_encoder" in meta else None
    return TokenCache(tokens=tokens, labels=labels, meta=meta, path=path, captions=captions)
