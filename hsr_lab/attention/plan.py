"""When ``backend="auto"`` computes an HSR method with the dense kernel, and why.

(The thresholds below were measured with the NumPy walk; the compiled tree, ``hsr.TREE`` where
Numba is installed, pays for itself earlier, so they err towards the dense kernel there.)

A half-space query pays off only where the tree prunes: low dimension and enough keys and
rows to amortise its fixed costs. Elsewhere the dense kernel (``dense.py``) is faster, and
method="hsr" with ``backend="auto"`` runs it, saying so in ``AttentionStats.kernel``. The rows
are identical either way (the kept entries are decided on the decisive score on every path),
so the choice only changes the time. An explicit backend ("numpy", "brute", ...) always runs
its structure.

A batch (``relu_attention`` / ``softmax_attention``, m rows, n keys, head dimension d) takes
the dense kernel when

1. ``d > hsr.auto.MAX_D``: the box test prunes nothing (``hsr.auto``, measured), or
2. ``n < MIN_KEYS``: the dense product over so few keys costs less than a structure's calls, or
3. ``m < ROWS_PER_LEVEL * log2(n)``: too few rows to pay for building the tree over n keys
   (a build costs about ``n log2 n`` key moves, a dense row about n products) and for the
   race (about 4 ``RACE_ROWS`` rows' work), or
4. otherwise, the race: the tree and the dense kernel each compute the same ``RACE_ROWS`` rows
   of the batch (spread evenly; causal rows raced as if they saw all n keys, both kernels'
   costs halve alike), twice, best time kept (``hsr.auto.best_times``); the faster wins.

A decoding step (``Decoder.attend``, one row over a cache of n keys) takes the dense kernel
when ``n < DECODE_MIN_KEYS`` or ``n d < DECODE_MIN_WORK``: there one HSR query's fixed cost
(argument checks, one call per block, sorting the ids) exceeds what it saves over the dense
step, measured at every d from 2 to 128 (``benchmarks/bench_attention.py``: at n = 2^12 the
scan plus exact row loses at d <= 16 and wins at d >= 32). Above it the structure's own
"auto" (``hsr.auto``) picks the tree or the scan for each block, and a scan plus the exact row
over the reported keys is faster than the dense step (one pass over the keys, not two).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..hsr import auto

MIN_KEYS = 2**13  # a batch over fewer keys is dense (at 2^12 the race alone cost 12%)
ROWS_PER_LEVEL = 64  # fewer than 64 log2(n) rows amortise neither the build nor the race
RACE_ROWS = 16  # rows of the batch each kernel computes in the race
DECODE_MIN_KEYS = 2**12  # a decoding step over fewer keys is dense ...
DECODE_MIN_WORK = 2**17  # ... and so is one with n d below this


def batch_is_dense(m: int, n: int, d: int) -> bool:
    """Rules 1-3: the dense kernel without a race."""
    return d > auto.MAX_D or n < MIN_KEYS or m < ROWS_PER_LEVEL * math.log2(n)


def race_rows(m: int) -> np.ndarray:
    """The rows of an m-row batch that the race computes (``RACE_ROWS``, spread evenly)."""
    return np.unique(np.linspace(0, m - 1, min(m, RACE_ROWS)).astype(np.int64))


def tree_wins(tree: Callable[[], object], dense: Callable[[], object]) -> bool:
    """Rule 4: whether ``tree()`` beat ``dense()`` (each the same rows), best of two rounds."""
    tree_time, dense_time = auto.best_times([tree, dense], rounds=2)
    return tree_time < dense_time


def decode_is_dense(n: int, d: int) -> bool:
    """A decoding step over n keys of dimension d with ``backend="auto"`` is dense."""
    return n < DECODE_MIN_KEYS or n * d < DECODE_MIN_WORK
