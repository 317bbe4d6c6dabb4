"""Small helpers for CSR-like results: row i of a batch owns ``values[indptr[i]:indptr[i + 1]]``.

``query_many`` answers m queries at once with one flat array of ids and the row pointers
``indptr`` (m + 1,), rather than m separate arrays: building m small arrays would cost as much
Python overhead as the m single queries that batching avoids.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import _radix

# Rows of at least this many values on average are sorted one by one, shorter ones by one sort
# of a combined key: per row was 1.4x faster at 600 values a row (1024 rows) and 3.5x at 28,400
# (64 rows), the combined key 2.5x faster at 50 (4096 rows; a loaded 2-core machine).
ROW_SORT = 512


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


def ascending(ids: np.ndarray, bound: int) -> np.ndarray:
    """Ids (integers in ``[0, bound)``) in ascending order, as a fresh int64 array. Below
    ``bound = 2^31``: many ids (``_radix.MIN_IDS``) by the compiled radix sort of ``_radix``
    where Numba is installed, linear in their number; else sorted as int32 (NumPy's SIMD sort
    then moves half the bytes).

    >>> ascending(np.array([7, 2, 5, 0]), 8)
    array([0, 2, 5, 7])
    """
    if bound <= 2**31:
        if _radix.AVAILABLE and len(ids) >= _radix.MIN_IDS:  # compiled counting passes
            return _radix.radix(np.asarray(ids, dtype=np.int64), bound)
        return np.sort(np.asarray(ids).astype(np.int32)).astype(np.int64)
    return np.sort(np.asarray(ids, dtype=np.int64))


def sort_rows(indptr: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The values (integers >= 0) with each row sorted ascending, as a fresh int64 array.

    Rows of ``ROW_SORT`` values or more on average are sorted one by one (``ascending``); many
    short rows take one sort of the combined key ``row * base + value`` instead (a lexsort if
    that key could overflow int64), whose cost does not grow with the number of rows.

    >>> sort_rows(np.array([0, 3, 5]), np.array([4, 1, 3, 2, 0]))
    array([1, 3, 4, 0, 2])
    """
    m = len(indptr) - 1
    if len(values) == 0:
        return np.asarray(values, dtype=np.int64)
    base = int(values.max()) + 1
    if len(values) >= ROW_SORT * m:
        out = np.empty(len(values), dtype=np.int64)
        for lo, hi in zip(indptr[:-1].tolist(), indptr[1:].tolist(), strict=True):
            out[lo:hi] = ascending(values[lo:hi], base)
        return out
    rows = row_of(indptr)
    if base * m >= 2**62:
        return values[np.lexsort((values, rows))].astype(np.int64)
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
