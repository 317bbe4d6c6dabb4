"""Exact attention rows over CSR lists of keys: the one row kernel of the HSR paths.

Row i of a batch owns the keys ``idx[indptr[i]:indptr[i + 1]]`` (``hsr.csr``): the keys its
half-space query reported, plus its sinks and window. Over those keys only, for each pair:

    s_ij = <q_i, k_j> / sqrt(d)                       (settled: ``scores.settle``)
    ReLU^alpha:  W_ij = (ReLU(s_ij - b) / max_j ReLU(s_ij - b))^alpha      kept: s_ij > b
    softmax:     W_ij = exp(s_ij - max_kept s_ij)    kept: s_ij >= b or j forced, else 0
    D_ii = sum_j W_ij,   Attn_i = sum_j W_ij v_j / D_ii      (a zero row when D_ii = 0)

The row's common factor (its max) cancels in ``D^{-1} W V``: this is ``dense.py``'s formula on
the keys that carry weight, so the kept sets are identical to the dense ones (the score
decision is ``scores.settle`` on both paths) and the rows agree with them to rounding. The
sums over a row's keys are segment reductions over the flat list (``np.add.reduceat``), never a
Python loop over rows.
``Decoder.attend`` calls it with one row, ``hsr_attention`` with a batch of rows.

``dropped_mass`` measures the softmax mass outside each row's kept keys, eps_i (a dense pass:
the work the HSR method avoids, for measurement only).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ..hsr.csr import row_of
from .dense import dropped_mass as dense_dropped_mass
from .dense import relu_gap
from .scores import ROW_BLOCK, SCORE_BLOCK, settle, tolerance, value_scale


@dataclass(frozen=True)
class Rule:
    """The weights of a row: ``kind`` "relu" (``ReLU(s - b)^alpha``) or "softmax" (``exp(s)``
    where ``s >= b`` or forced); ``max_key`` and ``max_value`` bound |K| and |V|."""

    kind: str
    alpha: int
    b: float
    max_key: float
    max_value: float


def exact_rows(Q: np.ndarray, K: np.ndarray, V: np.ndarray, indptr: np.ndarray,
               idx: np.ndarray, forced: np.ndarray | None, rule: Rule, step: bool = False
               ) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``D^{-1} A V`` of the queries Q, row i over its keys ``idx[indptr[i]:indptr[i+1]]``.

    Returns the rows and the mask over idx of the kept entries (ReLU: ``s > b``; softmax:
    ``s >= b`` or ``forced``). Rows go in blocks whose gathered keys fit in ``ROW_BLOCK``;
    ``step=True`` (one decoding step, Q of one row) reduces whole arrays instead, which is
    faster for one row. A batch's rows never depend on its blocks: every block sums in the
    same order.
    """
    if step:
        return _block_rows(Q, K, V, indptr, idx, forced, rule, one=True)
    out = np.zeros((len(Q), V.shape[1]))
    kept = np.zeros(len(idx), dtype=bool)
    for lo, hi in _blocks(indptr, ROW_BLOCK // max(Q.shape[1], V.shape[1])):
        span = slice(indptr[lo], indptr[hi])
        out[lo:hi], kept[span] = _block_rows(Q[lo:hi], K, V, indptr[lo:hi + 1] - indptr[lo],
                                             idx[span], None if forced is None else forced[span],
                                             rule, one=False)
    return out, kept


def _block_rows(Q: np.ndarray, K: np.ndarray, V: np.ndarray, indptr: np.ndarray,
                idx: np.ndarray, forced: np.ndarray | None, rule: Rule, one: bool
                ) -> tuple[np.ndarray, np.ndarray]:
    """``exact_rows`` for one block: the scores of every (row, key) pair, then the weights,
    ``D`` and ``W V`` as segment reductions over the rows (``one``: a single row, reduced as
    whole arrays; ``row`` is then None and a row's value broadcasts to its entries)."""
    row = None if one else row_of(indptr)
    tol = tolerance(Q, rule.max_key)
    s = _pair_scores(Q, K, row, idx)
    settle(s, rule.b, _spread(tol, row), Q, K, row, idx)
    if rule.kind == "relu":
        W = relu_gap(s, rule.b)  # ReLU(s_j - b), in place
        kept = W > 0
        top = _segment(np.maximum, W, indptr, 0.0, one)
        W /= _spread(np.where(top > 0, top, 1.0), row)
        if rule.alpha > 1:
            np.power(W, rule.alpha, out=W)
    else:
        kept = (s >= rule.b) | forced  # type: ignore[operator]
        top = _segment(np.maximum, np.where(kept, s, -np.inf), indptr, -np.inf, one)
        W = np.exp(s - _spread(top, row), where=kept, out=np.zeros_like(s))
    return _weighted_sum(W, V, idx, indptr, rule.max_value, one), kept


def _spread(per_row: np.ndarray, row: np.ndarray | None) -> np.ndarray:
    """A value per row, given to each of the row's entries (one row: it broadcasts as is)."""
    return per_row if row is None else per_row[row]


def _pair_scores(Q: np.ndarray, K: np.ndarray, row: np.ndarray | None, idx: np.ndarray
                 ) -> np.ndarray:
    """s_e = <q_row[e], k_idx[e]> / sqrt(d) for every pair e (np.take: several times faster
    than fancy indexing for gathering rows)."""
    keys = np.take(K, idx, axis=0)
    s = keys @ Q[0] if row is None else np.einsum("ij,ij->i", keys, np.take(Q, row, axis=0))
    s /= np.sqrt(Q.shape[1])
    return s


def _weighted_sum(W: np.ndarray, V: np.ndarray, idx: np.ndarray, indptr: np.ndarray,
                  max_value: float, one: bool) -> np.ndarray:
    """``sum_j W_ij v_j / D_ii`` per row (zero where D_ii = 0), on ``c V`` when V is near the
    float limit (``scores.value_scale``), clipped to max |V| as the exact result is."""
    D = _segment(np.add, W, indptr, 0.0, one)
    c = value_scale(max_value, len(W))
    values = np.take(V, idx, axis=0)
    if c != 1.0:
        values *= c
    if one:  # a matrix-vector product
        out = (W @ values)[None]
    else:
        out = _segment(np.add, W[:, None] * values, indptr, 0.0, one)
    out /= np.where(D > 0, D, 1.0)[:, None]
    if c != 1.0:  # clipped first, so that no rounding overflows when 1/c scales it back
        np.clip(out, -max_value * c, max_value * c, out=out)
        out /= c
    return out


def _segment(ufunc: np.ufunc, values: np.ndarray, indptr: np.ndarray, empty: float,
             one: bool) -> np.ndarray:
    """``ufunc.reduce`` of each row's values (rows given by ``indptr``); ``empty`` for a row
    without values (``reduceat`` alone would return a neighbour's value there)."""
    if one:
        return ufunc.reduce(values, axis=0, initial=empty)[None]
    counts = np.diff(indptr)
    out = np.full((len(counts), *values.shape[1:]), empty)
    some = counts > 0
    if some.any():
        out[some] = ufunc.reduceat(values, indptr[:-1][some], axis=0)
    return out


def _blocks(indptr: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Consecutive row ranges holding at most ``budget`` entries each (or a single row)."""
    cuts = [0]
    while cuts[-1] < len(indptr) - 1:
        lo = cuts[-1]
        hi = int(np.searchsorted(indptr, indptr[lo] + budget, side="right")) - 1
        cuts.append(max(hi, lo + 1))
    return list(itertools.pairwise(cuts))


def dropped_mass(Q: np.ndarray, K: np.ndarray, indptr: np.ndarray, kept_idx: np.ndarray,
                 seen: np.ndarray) -> np.ndarray:
    """eps_i, the softmax mass outside row i's kept keys ``kept_idx[indptr[i]:indptr[i+1]]``
    over the ``seen[i]`` keys it sees: ``dense.dropped_mass`` on dense blocks of scores (a
    measurement: the work the HSR method avoids, not counted)."""
    eps = np.empty(len(Q))
    row = row_of(indptr)
    step = max(1, SCORE_BLOCK // max(len(K), 1))
    for lo in range(0, len(Q), step):
        hi = min(len(Q), lo + step)
        width = int(seen[lo:hi].max())
        S = Q[lo:hi] @ K[:width].T
        S /= np.sqrt(Q.shape[1])
        span = slice(indptr[lo], indptr[hi])
        mask = np.zeros(S.shape, dtype=bool)
        mask[row[span] - lo, kept_idx[span]] = True
        eps[lo:hi] = dense_dropped_mass(S, np.arange(width) < seen[lo:hi, None], mask)
    return eps
