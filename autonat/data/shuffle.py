"""The order a training run reads its items in: a keyed pseudo-random permutation of each epoch.

Item ``j`` of epoch ``e`` is ``permute(j, n, key(seed, e))``, where
``permute`` is a bijection of ``[0, n)``: a balanced Feistel network on
``2h`` bits (the smallest even width with ``2^(2h) >= n``) with
:data:`ROUNDS` rounds, restricted to ``[0, n)`` by cycle walking (a value
that lands at or past ``n`` is permuted again until it does not; a
bijection of the larger domain walked this way is a bijection of ``[0, n)``,
and since ``2^(2h) < 4 n`` fewer than 4 passes are expected).

Why this and not a stored permutation: the training loop needs the items of
one step only, on every process, at every step. A stored per-epoch
permutation (``rng.permutation(n)``) costs O(n) time once an epoch and O(n)
memory in every process, forever (2.56 M items: 20 MB and tens of
milliseconds per process); this costs O(batch) time and memory per step and
nothing else, and any step's items follow from ``(seed, step)`` alone, so
a resumed run reads exactly what an uninterrupted one would. An affine map
``(a j + b) mod n`` would be as cheap but a poor shuffle (neighbouring
positions stay a fixed stride apart, so a class-sorted cache gives batches
with regular class patterns); a Feistel network's rounds hash the bits.
"""
from __future__ import annotations

import numpy as np

ROUNDS = 6
_M1, _M2, _GOLDEN = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a fast 64-bit hash whose every output bit depends on every input bit."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def epoch_keys(seed: int, epoch: int) -> np.ndarray:
    """The round keys of epoch ``epoch`` of a run seeded ``seed``."""
    return np.random.SeedSequence([seed, epoch, 0x5348]).generate_state(ROUNDS, np.uint64)


def permute(positions: np.ndarray, n: int, keys: np.ndarray) -> np.ndarray:
    """The keyed bijection of ``[0, n)`` at ``positions`` (int array, values in ``[0, n)``), as int64."""
    half = max(1, (max(n - 1, 1).bit_length() + 1) // 2)
    low = np.uint64((1 << half) - 1)
    x = np.asarray(positions, dtype=np.uint64).copy()
    todo = np.ones(len(x), dtype=bool)
    with np.errstate(over="ignore"):
        while todo.any():
            y = x[todo]
            for key in keys:  # (left, right) -> (right, left ^ F(right))
                left, right = y >> np.uint64(half), y & low
                y = (right << np.uint64(half)) | (left ^ (_mix(right ^ (key + _GOLDEN)) & low))
            x[todo] = y
            todo &= x >= np.uint64(n)
    return x.astype(np.int64)


def epoch_items(seed: int, n: int, start: int, count: int) -> np.ndarray:
    """Items at positions ``start .. start + count - 1`` of the run's stream (epoch after epoch of ``n`` items)."""
    pos = np.arange(start, start + count, dtype=np.int64)
    epochs, offsets = np.divmod(pos, n)
    out = np.empty(count, dtype=np.int64)
    for epoch in np.unique(epochs):
        here = epochs == epoch
        out[here] = permute(offsets[here], n, epoch_keys(seed, int(epoch)))
    return out
