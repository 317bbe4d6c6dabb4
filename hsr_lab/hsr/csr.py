"""Small helpers for CSR-like results: row i of a batch owns ``values[indptr[i]:indptr[i + 1]]``.

``query_many`` answers m queries at once with one flat array of ids and the row pointers
``indptr`` (m + 1,), rather than m separate arrays: building m small arrays would cost as much
Python overhead as the m single queries that batching avoids.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def ranges(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Concatenate ``arange(s, s + z)`` for every (s, z), vectorised; every z must be >= 1.

    int32 when every value and the total fit (half the memory traffic of the cumulative sum
    that builds it), else int64: an index array either way.
    """
    if len(sizes) == 0:
        return np.empty(0, dtype=np.int64)
    total = int(sizes.sum())
    fits = total < 2**31 and int(starts.max()) + int(sizes.max()) < 2**31
    dtype = np.int32 if fits and int(starts.min()) >= 0 else np.int64
    steps = np.ones(total, dtype=dtype)
    steps[0] = starts[0]
    # At the first slot of each range, jump from the previous range's last value to its start.
    steps[(np.cumsum(sizes) - sizes)[1:]] = starts[1:] - (starts[:-1] + sizes[:-1] - 1)
    return np.cumsum(steps, dtype=dtype)


def indptr_of(counts: np.ndarray) -> np.ndarray:
    """Row pointers (m + 1,) of rows holding ``counts[i]`` values each."""
    indptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr


def row_of(indptr: np.ndarray) -> np.ndarray:
    """The row of every value: ``repeat(arange(m), diff(indptr))``."""
    return np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))


def keep_rows(indptr: np.ndarray, values: np.ndarray, keep: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """The CSR of the values where ``keep`` (a mask over values) is True, rows unchanged."""
    kept = np.zeros(len(keep) + 1, dtype=np.int64)
    np.cumsum(keep, out=kept[1:])
    return kept[indptr], values[keep]


def sort_rows(indptr: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The values with each row sorted ascending (values >= 0): one sort of the combined key
    ``row * base + value``, or a lexsort if that key could overflow int64."""
    if len(values) == 0:
        return values
    m, base = len(indptr) - 1, int(values.max()) + 1
    rows = row_of(indptr)
    if base * m >= 2**62:
        return values[np.lexsort((values, rows))]
    key = rows * base + values
    key.sort()
    key -= rows * base
    return key


def concat_rows(parts: Sequence[tuple[np.ndarray, np.ndarray]]
                ) -> tuple[np.ndarray, np.ndarray]:
    """One CSR whose row i is row i of every part, the parts one after the other."""
    parts = [part for part in parts if len(part[1])] or list(parts[:1])
    if len(parts) == 1:  # nothing to interleave
        return parts[0][0], parts[0][1]
    counts = [np.diff(indptr) for indptr, _ in parts]
    indptr = indptr_of(np.sum(counts, axis=0))
    out = np.empty(indptr[-1], dtype=np.int64)
    offset = indptr[:-1].copy()
    for (_, values), count in zip(parts, counts, strict=True):
        some = count > 0
        out[ranges(offset[some], count[some])] = values
        offset += count
    return indptr, out
