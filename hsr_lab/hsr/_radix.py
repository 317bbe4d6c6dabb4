"""Ids in ascending order by a least-significant-digit radix sort, compiled by Numba: the fast
path of ``csr.ascending`` for the ids one query reports (integers below n <= 2^31).

A query at n = 2^22 reports tens of thousands of ids; ``np.sort`` of them costs several times
the compiled walk that found them (``benchmarks/results/sort_float32.md``). Ids below ``bound``
need only ``ceil(log2(bound) / 11)`` counting passes of 2^11 buckets (two for n <= 2^22), each
linear in the number of ids: a stable counting sort per digit, least significant first, sorts
the whole key. Without Numba ``AVAILABLE`` is False and ``csr.ascending`` keeps ``np.sort``.
"""

from __future__ import annotations

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - the lean install: csr.ascending uses np.sort
    numba = None

from ._kernel_cache import cached_njit

AVAILABLE = numba is not None
DIGIT = 11  # bits per pass: 2^11 int64 counts (16 KiB) stay in the L1 cache
MIN_IDS = 2048  # below this many ids np.sort is as fast (no pass over 2^11 buckets to pay)


def _radix(ids: np.ndarray, bound: int) -> np.ndarray:  # pragma: no cover - compiled
    """``ids`` (int64, each in ``[0, bound)``, ``bound <= 2^31``) sorted ascending, as a fresh
    int64 array: stable counting passes over the 11-bit digits, least significant first."""
    n = len(ids)
    src = np.empty(n, np.int32)
    for i in range(n):
        src[i] = ids[i]
    dst = np.empty(n, np.int32)
    count = np.empty(1 << DIGIT, np.int64)
    mask = (1 << DIGIT) - 1
    shift = 0
    while (1 << shift) < bound:  # a digit of bound - 1 is left to sort
        count[:] = 0
        for i in range(n):
            count[(src[i] >> shift) & mask] += 1
        total = 0
        for b in range(1 << DIGIT):  # counts -> where each digit's run starts
            c = count[b]
            count[b] = total
            total += c
        for i in range(n):
            b = (src[i] >> shift) & mask
            dst[count[b]] = src[i]
            count[b] += 1
        src, dst = dst, src
        shift += DIGIT
    out = np.empty(n, np.int64)
    for i in range(n):
        out[i] = src[i]
    return out


radix = cached_njit(_radix, nogil=True) if AVAILABLE else None
