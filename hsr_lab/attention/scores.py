"""The score, the kept set and the bounds of a row: decided once, the same way on every path.

The score of query i and key j is ``s_ij = <q_i, k_j> / sqrt(d)``. Dense attention computes it
with a matrix product, the HSR rows with one inner product per (row, key) pair, the decoder
with a matrix-vector product: three summation orders, three roundings. Deciding ``s_ij >= b``
(softmax) or ``s_ij > b`` (ReLU^alpha) on those rounded values would let a key exactly at b be
kept by one path and dropped by another. So every path decides on the *decisive score*

    sigma_ij = fl( fl(<q_i, k_j>) / fl(sqrt(d)) ),   fl(<q_i, k_j>) correctly rounded,

a function of (q_i, k_j, d) alone. Any computed score s_ij is within

    tol_i = rel(d) ||q_i||_1 max_j |k_j| / sqrt(d) + 2 d TINY,   rel(d) = margin(d) + 4 u

of sigma_ij (``hsr.numerics.margin`` covers any summation order, the 4 u the roundings of
sigma, of the division by sqrt(d) and of tol itself; ``2 d TINY``, twice
``hsr.numerics.underflow_floor``, the underflow of the products and of the division, so that
tol_i stays above the rounding where the relative part underflows to 0: subnormal keys),
so where ``|s_ij - b| > tol_i`` both lie on the same side of b, and only the rare entries
within ``tol_i`` of b need sigma_ij, computed exactly (``decisive``). ``settle`` (a list of
pairs) and ``settle_block`` (a block of rows) replace those entries by sigma_ij; after them, the
kept set ``{j : s_ij >= b}`` (or ``> b``) is identical on every path, and the weights of the
kept entries agree to rounding.

Ties at b (zero query rows, padding, integer data at the default b = 0) can make every entry
near b, so the settling costs work linear in their number, in bulk: a zero row needs none
(its scores are exactly 0: ``tol_i`` is -1), rows whose products are exact on a dyadic grid
need none (``hsr.exact.exactly_computed``, asked where the near entries are many), and the
rest get sigma_ij from error-free transformations over whole arrays
(``hsr.exact.nearest_dot``: the same machinery that settles the HSR backends' ties,
``hsr.numerics``).

The bounds are L1-style (no squares), so nothing under- or overflows at any finite scale.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from ..hsr.exact import exactly_computed, nearest_dot
from ..hsr.numerics import MAX_PRODUCT, UNIT_ROUNDOFF, margin, underflow_floor

# Work sizes of the attention paths, in one place.
SCORE_BLOCK = 1 << 21  # dense score entries computed at once: 16 MiB of float64
ROW_BLOCK = 1 << 18  # floats in one temporary of the exact rows (2 MiB)
QUERY_IDS = 1 << 22  # reported ids one chunk of batched queries may hold (32 MiB of int64)
QUERY_ROWS = 1024  # batched queries asked at once at most (1024 beat 4096 by a quarter)
# Leaf size of the kd-trees that only batches ask: a batch scores a leaf's points with one
# stacked matrix-vector product, cheap next to its per-node bookkeeping, so leaves 4x a lone
# query's (hsr.DEFAULT_LEAF_SIZE) pay. Causal prefill at n = 2^16, d = 4 (kd-tree): leaf 32
# 9.1 s, 64 8.0 s, 128 7.8 s, 256 8.1 s, 512 8.9 s; d = 2: 3.9 s at 32, 3.6 s at 64..256.
# Not causal (4096 rows, 2^16 keys), leaf 32 against 128: d = 2 0.33 s both, d = 4 0.87 s
# against 0.78 s, d = 8 3.2 s against 2.5 s (the NumPy walk). The compiled walk, which "auto"
# builds, hardly cares: causal prefill at n = 2^14 and 2^16, d = 2 and 4, took within 1.11x of
# the best with leaves of 32, 64 and 128 (benchmarks/bench_leaf_size.py), so 128 stays.
BATCH_LEAF_SIZE = 128
NEAR_CHECK = 1 << 16  # score entries checked against b at once (512 KiB: stays in cache)
SETTLE_PAIRS = 1 << 16  # pairs settled at once (two gathers of 64Ki rows of Q and K)
FAR_B = 2.0**1020  # |b| beyond: no score is near b (|s| <= MAX_PRODUCT), s - b may overflow


def row_bounds(seen: np.ndarray | int, sinks: int, window: int
               ) -> tuple[np.ndarray | int, np.ndarray | int]:
    """The sinks ``[0, s0)`` and the window ``[w0, seen)`` of rows that see ``seen`` keys.

    ``s0 = min(sinks, seen)`` and ``w0 = max(seen - window, s0)``: the two never overlap, and
    the keys ``[s0, w0)`` between them are the ones a half-space query decides.
    """
    if isinstance(seen, int):  # one decoding step: plain integers are faster
        return min(sinks, seen), max(seen - window, min(sinks, seen))
    s0 = np.minimum(sinks, seen)
    return s0, np.maximum(seen - window, s0)


def tolerance(Q: np.ndarray, max_key: float) -> np.ndarray:
    """Per row of Q, ``tol_i``: any computed score is within it of the decisive score; -1 for
    a zero row, whose every score is exactly 0 (nothing to settle)."""
    d = Q.shape[1]
    l1 = np.abs(Q).sum(axis=1)  # ||q_i||_1; times max|k|, at least sum_k |q_k| |k_k|
    zero = l1 == 0
    l1 *= _relative(d) * max_key / math.sqrt(d)  # may underflow to 0: the floor covers it
    l1 += 2 * underflow_floor(d)  # the products' underflow, and the division's rounding
    l1[zero] = -1.0
    return l1


def _relative(d: int) -> float:
    """rel(d): the relative rounding bound of a score against its decisive score."""
    return margin(d) + 4 * UNIT_ROUNDOFF


def hsr_offset(Q: np.ndarray, b: float, max_key: float) -> np.ndarray:
    """Per row of Q (m x d), the half-space query offset: every key with decisive score
    ``sigma_ij >= b`` has ``<q_i, k_j> >=`` it, however a structure sums ``<q_i, k_j>``:

        t_i = sqrt(d) b' - rel(d) (||q_i||_1 max|k| + sqrt(d) |b'|) - 2 d TINY,

    with b' = b clamped to ``[-2 MAX_PRODUCT, 2 MAX_PRODUCT]``. Every ``|<q, k>|`` is at most
    ``||q||_1 max|k| <= d max|q| max|k| <= MAX_PRODUCT`` (``_checks.magnitude``), so the clamp
    changes no answer (a b beyond it keeps nothing or everything) and t stays finite; the
    L1-style bound neither underflows nor overflows at any finite scale.
    """
    d = Q.shape[1]
    root = math.sqrt(d)
    b = min(max(b, -2 * MAX_PRODUCT), 2 * MAX_PRODUCT)
    spread = np.abs(Q).sum(axis=1) * max_key + root * abs(b)
    return root * b - _relative(d) * spread - 2 * underflow_floor(d)


def decisive(q: np.ndarray, k: np.ndarray) -> float:
    """sigma = fl(fl(<q, k>) / sqrt(d)), the inner product summed exactly (as fractions): the
    definition, for one pair (``decisive_many`` computes it in bulk)."""
    exact = sum((Fraction(a) * Fraction(x) for a, x in zip(q.tolist(), k.tolist(), strict=True)),
                Fraction(0))
    return float(exact) / math.sqrt(len(q))  # float(Fraction) rounds correctly


def decisive_many(A: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``decisive(A[e], X[e])`` for every pair e (rows of A and X, N x d), in bulk: the
    correctly rounded ``<a, x>`` (``hsr.exact.nearest_dot``: error-free products and sums,
    fractions for the rare pair out of their range), divided by ``fl(sqrt(d))``."""
    return nearest_dot(A, X) / math.sqrt(A.shape[1])


def settle(s: np.ndarray, b: float, tol: np.ndarray, Q: np.ndarray, K: np.ndarray,
           row: np.ndarray | None, col: np.ndarray) -> None:
    """In place: every score of the flat list s within tol of b becomes its decisive score
    sigma (``s[e]`` is row ``row[e]`` of Q, or its only row if row is None, against key
    ``col[e]`` of K; tol per entry, or one for all)."""
    if abs(b) > FAR_B:
        return
    (e,) = np.nonzero(np.abs(s - b) <= tol)
    if len(e) == 0:
        return
    at_q = np.zeros(len(e), dtype=np.int64) if row is None else row[e]
    if 4 * len(e) >= len(K):  # many ties: drop the rows whose scores are exact (O(n d) once)
        inexact = ~exactly_computed(Q, K)[at_q]
        e, at_q = e[inexact], at_q[inexact]
    for lo in range(0, len(e), SETTLE_PAIRS):
        part = slice(lo, lo + SETTLE_PAIRS)
        s[e[part]] = decisive_many(np.take(Q, at_q[part], axis=0),
                                   np.take(K, col[e[part]], axis=0))


def settle_block(S: np.ndarray, b: float, tol: np.ndarray, Q: np.ndarray, K: np.ndarray,
                 r0: int, shift: float = 0.0) -> None:
    """``settle`` for a block: S[i, j] is the score of row r0 + i of Q against key j, minus
    ``shift`` (the ReLU subtracts b first: then S is near b - shift = 0); tol a column."""
    if abs(b) > FAR_B:
        return
    b -= shift
    some = _rows_near(S, b, tol)  # look only into rows that hold a near entry (few or none)
    keys = K[:S.shape[1]]
    if len(some) * S.shape[1] >= keys.size:  # many: drop the rows whose scores are exact
        some = some[~exactly_computed(Q[r0 + some], keys)]
    if len(some) == 0:
        return
    i, j = np.nonzero(np.abs(S[some] - b) <= tol[some])
    for lo in range(0, len(i), SETTLE_PAIRS):
        rows, cols = some[i[lo:lo + SETTLE_PAIRS]], j[lo:lo + SETTLE_PAIRS]
        sigma = decisive_many(np.take(Q, r0 + rows, axis=0), np.take(keys, cols, axis=0))
        S[rows, cols] = sigma - shift


def _rows_near(S: np.ndarray, b: float, tol: np.ndarray) -> np.ndarray:
    """The rows of a block S with an entry within tol (a column) of b, checked a few rows at a
    time in one small buffer: a block-sized temporary would cost more than the check."""
    if S.size <= NEAR_CHECK:  # small enough for one temporary (a decoding step)
        gap = np.abs(S - b) if b else np.abs(S)
        if gap.min(initial=np.inf) > tol.max(initial=0.0):  # the usual case: none at all
            return np.empty(0, dtype=np.int64)
        return np.flatnonzero(gap.min(axis=1, initial=np.inf) <= tol[:, 0])
    step = max(1, NEAR_CHECK // max(S.shape[1], 1))
    buf = np.empty((min(step, len(S)), S.shape[1]))
    found = np.zeros(len(S), dtype=bool)
    for lo in range(0, len(S), step):
        gap = buf[: min(step, len(S) - lo)]
        np.abs(np.subtract(S[lo:lo + len(gap)], b, out=gap) if b else S[lo:lo + len(gap)],
               out=gap)
        found[lo:lo + len(gap)] = gap.min(axis=1, initial=np.inf) <= tol[lo:lo + len(gap), 0]
    return np.flatnonzero(found)


def max_abs(X: np.ndarray) -> float:
    """max |X_ij| (0 for an empty array)."""
    return float(np.abs(X).max(initial=0.0))


def value_scale(max_value: float, n: int) -> float:
    """A power of two c with ``n max|V| c`` far below overflow: sums of weighted values are
    taken on ``c V`` and divided by c at the end (c = 1 unless V is near the float limit)."""
    if max_value * max(n, 1) < 2.0**1000:
        return 1.0
    return 2.0 ** -(math.frexp(max_value)[1] + math.frexp(float(max(n, 1)))[1])
