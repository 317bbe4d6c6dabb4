"""The HSR method over a batch of m query rows: one batched half-space query, then every row.

Row i of ReLU^alpha attention is non-zero exactly at ``{ j : <q_i, k_j> > sqrt(d) b }``.
``hsr_attention`` builds one static ``HSR`` over the n keys (ids are the rows of K), asks it
for every row at once (``HSR.query_many``: the NumPy kd-tree walks all the queries together,
level by level, with the offsets lowered by the decoder's rounding margin), and computes each
row exactly over the keys it reported, plus the sinks and the window:

    s_ij = <q_i, k_j> / sqrt(d),   A_ij = ReLU(s_ij - b)^alpha   (softmax: exp(s_ij), kept
    where s_ij >= b),   Attn_i = sum_j A_ij v_j / sum_j A_ij,

with the sums taken over each row's keys only, as segment sums over the flat CSR list of
(row, key) pairs (``np.add.reduceat``), never as a Python loop over rows.

Causal attention (m == n, query i sees keys 0..i) uses the same static structure over all n
keys and drops the reported keys j > i before computing row i. This is the price of one
batched query: the tree's work for row i (``nodes_visited`` and the query's share of
``inner_products`` in ``AttentionStats``) includes the keys j > i it reports and the row then
drops, about half of what it reports on average; the exact row only scores the visible keys.
``Decoder`` (``decoder.py``) is the one-row-at-a-time twin: decoding from an empty cache with
``Decoder.step`` gives the same rows while paying only for keys 0..i, at the cost of one
``HSR.add`` and one Python-level query per row (how causal ``hsr_attention`` used to run:
about 1.6 ms of overhead per row, slower than dense at every n up to 2^16).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ..hsr import HSR, auto
from ..hsr.csr import concat_rows, indptr_of, keep_rows, ranges, row_of
from . import _checks as check
from ._stats import AttentionStats
from .decoder import hsr_offset
from .dense import dropped_mass

# Chunks of rows small enough to stay in cache run faster than huge ones (measured: 1024 rows
# beat 4096 by a quarter at n = 2^16), and they bound the memory.
_IDS = 1 << 22  # reported ids a chunk of rows may hold (32 MiB of int64)
_MAX_ROWS = 1024  # rows asked at once at most
_BLOCK = 1 << 18  # floats in one temporary of the exact rows (2 MiB)


@dataclass(frozen=True)
class _Batch:
    """One ``hsr_attention`` call: the inputs, the structure and each row's visible keys."""

    Q: np.ndarray
    K: np.ndarray
    V: np.ndarray
    kind: str
    alpha: int
    b: float
    measure_dropped: bool
    hsr: HSR
    offsets: np.ndarray  # per row, the query offset: sqrt(d) b lowered by the rounding margin
    seen: np.ndarray  # per row, how many keys it sees (i + 1 when causal, else n)
    s0: np.ndarray  # per row, keys [0, s0) are its sinks ...
    w0: np.ndarray  # ... and [w0, seen) its window; the structure is asked for [s0, w0)


def hsr_attention(Q: np.ndarray, K: np.ndarray, V: np.ndarray, kind: str, alpha: int,
                  b: float, causal: bool, backend: str, sinks: int, window: int,
                  measure_dropped: bool) -> tuple[np.ndarray, AttentionStats]:
    """The HSR method over a batch of validated queries: one ``query_many``, exact rows.

    The rows go in chunks whose reported ids fit in about ``_IDS``: the first chunk assumes a
    row may report all n keys, later ones are sized from the widest row seen so far.
    """
    m, n = len(Q), len(K)
    seen = np.arange(1, m + 1) if causal else np.full(m, n)
    s0 = np.minimum(sinks, seen)
    offsets = hsr_offset(Q, b, check.max_abs(K))
    batch = _Batch(Q, K, V, kind, alpha, b, measure_dropped, _structure(Q, K, offsets, backend),
                   offsets, seen, s0, np.maximum(seen - window, s0))
    out = np.zeros((m, V.shape[1]))
    parts, r0, rows = [], 0, max(1, min(_MAX_ROWS, _IDS // n))
    while r0 < m:
        r1 = min(m, r0 + rows)
        out[r0:r1], stats, widest = _chunk(batch, r0, r1)
        parts.append(stats)
        r0, rows = r1, max(1, min(_MAX_ROWS, _IDS // (2 * widest)))
    return out, AttentionStats.concat(parts)


def _structure(Q: np.ndarray, K: np.ndarray, offsets: np.ndarray, backend: str) -> HSR:
    """The structure the batch asks: ``HSR(K, backend)``; for "auto" and a large batch, the
    kd-tree or the scan, whichever answers a sample of this batch's rows faster.

    ``HSR``'s own "auto" times lone queries; a batch shares the tree's per-level overhead
    among its rows, so the tree wins batches it would lose one query at a time (measured: at
    n = 2^16, d = 2 the batched tree is ~5x faster than the scan, alone it is slower). Which
    structure is used depends on the timing; the rows never do.
    """
    if backend != "auto" or not auto.races_batch(*Q.shape):
        return HSR(K, backend=backend)
    return auto.plan_batch(HSR(K, backend="numpy"), HSR(K, backend="brute"), Q, offsets)


def _chunk(batch: _Batch, r0: int, r1: int) -> tuple[np.ndarray, AttentionStats, int]:
    """Rows r0..r1-1: ask the structure for all of them, keep each row's keys in [s0, w0)
    (this drops the keys j > i of a causal row), add the sinks and window, compute the rows.
    Also returns the most ids the structure reported for one row."""
    s0, w0, seen = batch.s0[r0:r1], batch.w0[r0:r1], batch.seen[r0:r1]
    ask = np.flatnonzero(s0 < w0)  # rows with keys between their sinks and their window
    indptr, ids, cost = batch.hsr.query_many(batch.Q[r0 + ask], batch.offsets[r0 + ask],
                                             stats=True, sort=False)
    widest = int(np.diff(indptr).max(initial=1))
    row = ask[row_of(indptr)]
    indptr, ids = keep_rows(indptr, ids, (ids >= s0[row]) & (ids < w0[row]))
    indptr, idx = _row_keys(indptr, ids, ask, s0, w0, seen)
    forced = None  # softmax keeps the sinks and the window whatever their score
    if batch.kind == "softmax":
        row = row_of(indptr)
        forced = (idx < s0[row]) | (idx >= w0[row])
    out, kept = _exact_rows(batch.Q[r0:r1], batch.K, batch.V, indptr, idx, forced,
                            batch.kind, batch.alpha, batch.b)
    products, nodes = np.diff(indptr), np.zeros(r1 - r0, dtype=np.int64)
    products[ask] += cost.inner_products  # the query's own products, keys j > i included
    nodes[ask] = cost.nodes_visited
    activated = _per_row(kept, indptr)
    eps = None
    if batch.kind == "softmax" and batch.measure_dropped:
        eps = _dropped(batch.Q[r0:r1], batch.K, indptr, idx, kept, seen)
    return out, AttentionStats("hsr", batch.kind, activated, products, nodes, activated == 0,
                               dropped_mass=eps), widest


def _row_keys(indptr: np.ndarray, ids: np.ndarray, asked: np.ndarray, s0: np.ndarray,
              w0: np.ndarray, seen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's keys as CSR: its sinks [0, s0), the keys reported for it (rows ``asked``
    only, ids in [s0, w0)) and its window [w0, seen), in this order."""
    reported = np.zeros(len(seen), dtype=np.int64)
    reported[asked] = np.diff(indptr)
    if not s0.any() and (w0 == seen).all():  # no sinks, no window
        return indptr_of(reported), ids
    tail = seen - w0
    sink_keys = ranges(np.zeros(np.count_nonzero(s0), dtype=np.int64), s0[s0 > 0])
    window_keys = ranges(w0[tail > 0], tail[tail > 0])
    return concat_rows([(indptr_of(s0), sink_keys), (indptr_of(reported), ids),
                        (indptr_of(tail), window_keys)])


def _exact_rows(Q: np.ndarray, K: np.ndarray, V: np.ndarray, indptr: np.ndarray,
                idx: np.ndarray, forced: np.ndarray | None, kind: str, alpha: int, b: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``D^{-1} A V`` of the queries Q, row i over its keys ``idx[indptr[i]:indptr[i+1]]``.

    Returns the rows and the mask of the entries that carry weight (ReLU: ``s > b``; softmax:
    ``s >= b`` or ``forced``). Rows go in blocks whose gathered keys fit in ``_BLOCK`` floats.
    """
    out = np.zeros((len(Q), V.shape[1]))
    kept = np.zeros(len(idx), dtype=bool)
    for lo, hi in _blocks(indptr, _BLOCK // max(Q.shape[1], V.shape[1])):
        span = slice(indptr[lo], indptr[hi])
        out[lo:hi], kept[span] = _block_rows(Q[lo:hi], K, V, indptr[lo:hi + 1] - indptr[lo],
                                             idx[span], None if forced is None else forced[span],
                                             kind, alpha, b)
    return out, kept


def _block_rows(Q: np.ndarray, K: np.ndarray, V: np.ndarray, indptr: np.ndarray,
                idx: np.ndarray, forced: np.ndarray | None, kind: str, alpha: int, b: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """``_exact_rows`` for one block: s_j = <q, k_j>/sqrt(d) for every (row, key) pair, then
    the weights, ``D`` and ``A V`` as segment reductions over the rows (``dense.py`` has the
    same steps on full rows: ReLU divides by the row max before the power, softmax subtracts
    it before ``exp``)."""
    row = row_of(indptr)
    s = np.einsum("ij,ij->i", np.take(K, idx, axis=0), np.take(Q, row, axis=0))
    s /= np.sqrt(Q.shape[1])
    if kind == "relu":
        W = np.maximum(s - b, 0.0)  # ReLU(s_j - b)
        kept = W > 0
        top = _segment(np.maximum, W, indptr, 0.0)
        W /= np.where(top > 0, top, 1.0)[row]
        if alpha > 1:
            np.power(W, alpha, out=W)
    else:
        kept = (s >= b) | forced  # type: ignore[operator]
        top = _segment(np.maximum, np.where(kept, s, -np.inf), indptr, -np.inf)
        W = np.exp(s - top[row], where=kept, out=np.zeros_like(s))
    D = _segment(np.add, W, indptr, 0.0)
    AV = _segment(np.add, W[:, None] * np.take(V, idx, axis=0), indptr, 0.0)
    return AV / np.where(D > 0, D, 1.0)[:, None], kept


def _segment(ufunc: np.ufunc, values: np.ndarray, indptr: np.ndarray, empty: float
             ) -> np.ndarray:
    """``ufunc.reduce`` of each row's values (rows given by ``indptr``); ``empty`` for a row
    without values (``reduceat`` alone would return a neighbour's value there)."""
    counts = np.diff(indptr)
    out = np.full((len(counts), *values.shape[1:]), empty)
    some = counts > 0
    if some.any():
        out[some] = ufunc.reduceat(values, indptr[:-1][some], axis=0)
    return out


def _per_row(mask: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """How many entries of each row the mask selects."""
    total = np.zeros(len(mask) + 1, dtype=np.int64)
    np.cumsum(mask, out=total[1:])
    return np.diff(total[indptr])


def _blocks(indptr: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Consecutive row ranges holding at most ``budget`` entries each (or a single row)."""
    cuts = [0]
    while cuts[-1] < len(indptr) - 1:
        lo = cuts[-1]
        hi = int(np.searchsorted(indptr, indptr[lo] + budget, side="right")) - 1
        cuts.append(max(hi, lo + 1))
    return list(itertools.pairwise(cuts))


def _dropped(Q: np.ndarray, K: np.ndarray, indptr: np.ndarray, idx: np.ndarray,
             kept: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """eps_i, the softmax mass outside row i's kept keys over all the keys it sees: a dense
    pass, for measurement only (the work the HSR method avoids, not counted)."""
    eps = np.empty(len(Q))
    row = row_of(indptr)
    step = max(1, _BLOCK // len(K))
    for lo in range(0, len(Q), step):
        hi = min(len(Q), lo + step)
        width = int(seen[lo:hi].max())
        S = Q[lo:hi] @ K[:width].T
        S /= np.sqrt(Q.shape[1])
        span = slice(indptr[lo], indptr[hi])
        mask = np.zeros(S.shape, dtype=bool)
        mask[row[span][kept[span]] - lo, idx[span][kept[span]]] = True
        eps[lo:hi] = dropped_mass(S, np.arange(width) < seen[lo:hi, None], mask)
    return eps
