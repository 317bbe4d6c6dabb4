"""The HSR method over a batch of m query rows: one batched half-space query, then every row.

Row i of ReLU^alpha attention is non-zero exactly at ``{ j : <q_i, k_j> > sqrt(d) b }``.
``hsr_attention`` builds one static ``HSR`` over the n keys (ids are the rows of K), asks it
for every row at once (``HSR.query_many``: the NumPy kd-tree walks all the queries together,
level by level, with the offsets of ``scores.hsr_offset``), and computes each row exactly over
the keys it reported, plus the sinks and the window:

    s_ij = <q_i, k_j> / sqrt(d),   A_ij = ReLU(s_ij - b)^alpha   (softmax: exp(s_ij), kept
    where s_ij >= b),   Attn_i = sum_j A_ij v_j / sum_j A_ij,

with the sums taken over each row's keys only (``rows.exact_rows``, the row kernel).

Causal attention (m == n, query i sees keys 0..i) uses the same static structure over all n
keys and drops the reported keys j > i before computing row i. This is the price of one
batched query: the tree's work for row i (``nodes_visited`` and the query's share of
``inner_products`` in ``AttentionStats``) includes the keys j > i it reports and the row then
drops, about half of what it reports on average; the exact row only scores the visible keys.
``Decoder`` (``decoder.py``) is the one-row-at-a-time twin: decoding from an empty cache with
``Decoder.step`` gives the same rows while paying only for keys 0..i, at the cost of one
``HSR.add`` and one Python-level query per row. Both compute the rows with the same kernel
(``rows.exact_rows``) and the same query offset (``scores.hsr_offset``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..hsr import HSR, auto
from ..hsr.csr import concat_rows, indptr_of, keep_rows, ranges, row_of
from ._stats import AttentionStats
from .rows import Rule, dropped_mass, exact_rows
from .scores import QUERY_IDS, QUERY_ROWS, hsr_offset, max_abs, row_bounds


@dataclass(frozen=True)
class _Batch:
    """One ``hsr_attention`` call: the inputs, the structure and each row's visible keys."""

    Q: np.ndarray
    K: np.ndarray
    V: np.ndarray
    rule: Rule
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

    The rows go in chunks whose reported ids fit in about ``QUERY_IDS``: the first chunk
    assumes a row may report all n keys, later ones are sized from the widest row seen so far.
    """
    m, n = len(Q), len(K)
    seen = np.arange(1, m + 1) if causal else np.full(m, n)
    s0, w0 = row_bounds(seen, sinks, window)
    rule = Rule(kind, alpha, b, max_abs(K), max_abs(V))
    offsets = hsr_offset(Q, b, rule.max_key)
    batch = _Batch(Q, K, V, rule, measure_dropped, _structure(Q, K, offsets, backend),
                   offsets, seen, s0, w0)
    out = np.zeros((m, V.shape[1]))
    parts, r0, rows = [], 0, max(1, min(QUERY_ROWS, QUERY_IDS // n))
    while r0 < m:
        r1 = min(m, r0 + rows)
        out[r0:r1], stats, widest = _chunk(batch, r0, r1)
        parts.append(stats)
        r0, rows = r1, max(1, min(QUERY_ROWS, QUERY_IDS // (2 * widest)))
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
    kind = batch.rule.kind
    forced = None  # softmax keeps the sinks and the window whatever their score
    if kind == "softmax":
        row = row_of(indptr)
        forced = (idx < s0[row]) | (idx >= w0[row])
    out, kept = exact_rows(batch.Q[r0:r1], batch.K, batch.V, indptr, idx, forced, batch.rule)
    products, nodes = np.diff(indptr), np.zeros(r1 - r0, dtype=np.int64)
    products[ask] += cost.inner_products  # the query's own products, keys j > i included
    nodes[ask] = cost.nodes_visited
    kept_ptr, kept_idx = keep_rows(indptr, idx, kept)
    activated = np.diff(kept_ptr)
    eps = None
    if kind == "softmax" and batch.measure_dropped:
        eps = dropped_mass(batch.Q[r0:r1], batch.K, kept_ptr, kept_idx, seen)
    return out, AttentionStats("hsr", kind, activated, products, nodes, activated == 0,
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
