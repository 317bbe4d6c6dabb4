"""The HSR method over a batch of m query rows: half-space queries for every row, then the rows.

Row i of ReLU^alpha attention is non-zero exactly at ``{ j : <q_i, k_j> > sqrt(d) b }``.
``hsr_attention`` asks HSR structures over the keys for each row's candidates (every key with
``<q_i, k_j> >=`` the offset of ``scores.hsr_offset``), all rows at once, and computes each row
exactly over its candidates, plus the sinks and the window:

    s_ij = <q_i, k_j> / sqrt(d),   A_ij = ReLU(s_ij - b)^alpha   (softmax: exp(s_ij), kept
    where s_ij >= b),   Attn_i = sum_j A_ij v_j / sum_j A_ij,

with the sums taken over each row's keys only (``rows.exact_rows``, the row kernel).

Where the candidates come from:

- not causal: one ``HSR`` over the n keys, asked for every row at once (``HSR.query_many``,
  ids unsorted: the rows gather keys in any order): the NumPy kd-tree walks all the queries
  together, level by level, and the compiled one, which ``backend="auto"`` builds where Numba
  is installed (``hsr_lab.hsr.TREE``), walks them one after another in one compiled call; the
  leaves hold ``scores.BATCH_LEAF_SIZE`` points;
- causal (query i sees keys 0..i): the keys split by position (``positions.PrefixBlocks``),
  so that row i asks only structures over keys before it and scores its own tile directly.

With ``backend="auto"`` the dense kernel may compute the rows instead (``hsr.plan.prefill``:
high d, few rows, or a race the tree lost); ``AttentionStats.kernel`` names what ran and
``AttentionStats.plan`` why.
``Decoder`` (``decoder.py``) is the one-row-at-a-time twin, with the same row kernel and the
same query offset.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..hsr import HSR, plan
from ..hsr.csr import concat_rows, indptr_of, keep_rows, ranges, row_of
from ._stats import AttentionStats, kernel_of
from .dense import dense_relu, dense_softmax
from .positions import PrefixBlocks
from .rows import Rule, dropped_mass, exact_rows
from .scores import BATCH_LEAF_SIZE, QUERY_IDS, QUERY_ROWS, hsr_offset, max_abs, row_bounds


class Candidates(Protocol):
    """Where rows get their candidate keys: ``candidates(Q, offsets, r0, r1)`` returns the CSR
    ``(indptr, ids)`` of rows r0..r1-1 and their tree nodes visited and inner products."""

    kernel: str

    def candidates(self, Q: np.ndarray, offsets: np.ndarray, r0: int, r1: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]: ...


class WholeKeys:
    """Every row asks one structure over all n keys (rows without keys between their sinks
    and their window ask nothing)."""

    def __init__(self, hsr: HSR, asks: np.ndarray) -> None:
        self.hsr, self.asks, self.kernel = hsr, asks, kernel_of(hsr.blocks)

    def candidates(self, Q: np.ndarray, offsets: np.ndarray, r0: int, r1: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``HSR.query_many`` of the rows r0..r1-1 that ask."""
        ask = np.flatnonzero(self.asks[r0:r1])
        indptr, ids, cost = self.hsr.query_many(Q[r0 + ask], offsets[r0 + ask], stats=True,
                                                sort=False)
        counts, nodes, products = (np.zeros(r1 - r0, np.int64) for _ in range(3))
        counts[ask], nodes[ask], products[ask] = (np.diff(indptr), cost.nodes_visited,
                                                  cost.inner_products)
        return indptr_of(counts), ids, nodes, products


@dataclass(frozen=True)
class _Batch:
    """One ``hsr_attention`` call: the inputs, the candidates and each row's visible keys."""

    Q: np.ndarray
    K: np.ndarray
    V: np.ndarray
    rule: Rule
    measure_dropped: bool
    offsets: np.ndarray  # per row, the query offset: sqrt(d) b lowered by the rounding margin
    seen: np.ndarray  # per row, how many keys it sees (i + 1 when causal, else n)
    s0: np.ndarray  # per row, keys [0, s0) are its sinks ...
    w0: np.ndarray  # ... and [w0, seen) its window; candidates are kept in [s0, w0)


def hsr_attention(Q: np.ndarray, K: np.ndarray, V: np.ndarray, kind: str, alpha: int,
                  b: float, causal: bool, backend: str, sinks: int, window: int,
                  measure_dropped: bool) -> tuple[np.ndarray, AttentionStats]:
    """The HSR method over a batch of validated queries: candidates per row, exact rows.

    The rows go in chunks whose candidate ids fit in about ``QUERY_IDS``: the first chunk
    assumes a row may report all n keys, later ones are sized from the widest row seen so far
    (causal chunks: whole position tiles).

    Examples
    --------
    What ``relu_attention(..., method="hsr")`` runs once its arguments are checked:

    >>> Q = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> K = np.array([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    >>> V = np.array([[1.0], [2.0], [3.0]])
    >>> out, stats = hsr_attention(Q, K, V, "relu", 1, 0.5, causal=False, backend="numpy",
    ...                            sinks=0, window=0, measure_dropped=False)
    >>> out.round(6).tolist(), stats.kernel
    ([[1.369398], [2.184699]], 'numpy')
    """
    m, n = len(Q), len(K)
    seen = np.arange(1, m + 1) if causal else np.full(m, n)
    s0, w0 = row_bounds(seen, sinks, window)
    rule = Rule(kind, alpha, b, max_abs(K), max_abs(V))
    batch = _Batch(Q, K, V, rule, measure_dropped, hsr_offset(Q, b, rule.max_key), seen, s0, w0)
    built: dict[str, HSR] = {}  # the race's tree over all n keys, reused if it wins
    work = n * (n + 1) // 2 if causal else m * n  # the dense kernel's products
    decision = plan.prefill(backend, m, n, Q.shape[1], work,
                            lambda rows: _race(batch, rows, sinks, window, built))
    if decision.kernel == "dense":
        out, stats = _dense(batch, causal, sinks, window)
        return out, dataclasses.replace(stats, plan=decision)
    structures = plan.structures(backend)
    source: Candidates
    if causal:
        source = PrefixBlocks(K, structures)
    else:
        whole = built["tree"] if "tree" in built else HSR(K, backend=structures,
                                                          leaf_size=BATCH_LEAF_SIZE)
        source = WholeKeys(whole, s0 < w0)
    tile = source.block if isinstance(source, PrefixBlocks) else 1
    out = np.zeros((m, V.shape[1]))
    parts, r0, rows = [], 0, max(1, min(QUERY_ROWS, QUERY_IDS // n))
    while r0 < m:
        r1 = min(m, r0 + max(tile, rows // tile * tile))
        out[r0:r1], stats, widest = _chunk(batch, source, r0, r1)
        parts.append(stats)
        r0, rows = r1, max(1, min(QUERY_ROWS, QUERY_IDS // (2 * widest)))
    return out, dataclasses.replace(AttentionStats.concat(parts), kernel=source.kernel,
                                    plan=decision)


def _race(batch: _Batch, count: int, sinks: int, window: int, built: dict[str, HSR]
          ) -> dict[str, Callable[[], object]]:
    """The two kernels of the prefill race, each computing the same ``count`` rows
    (``plan.sample_rows``): the tree (``hsr.TREE`` over all n keys, kept in ``built``) and
    dense. Causal rows are raced as if they saw all n keys: both kernels' costs halve alike."""
    m, n = len(batch.Q), len(batch.K)
    built["tree"] = HSR(batch.K, backend=plan.structures("auto"), leaf_size=BATCH_LEAF_SIZE)
    rows = plan.sample_rows(m, count)
    s0, w0 = row_bounds(np.full(len(rows), n), sinks, window)
    sample = dataclasses.replace(batch, Q=batch.Q[rows], offsets=batch.offsets[rows],
                                 seen=np.full(len(rows), n), s0=s0, w0=w0)
    whole = WholeKeys(built["tree"], s0 < w0)
    return {"tree": lambda: _chunk(sample, whole, 0, len(rows)),
            "dense": lambda: _dense(sample, False, sinks, window)}


def _dense(batch: _Batch, causal: bool, sinks: int, window: int
           ) -> tuple[np.ndarray, AttentionStats]:
    """The rows by the dense kernel (``dense.py``), reported as method="hsr", kernel="dense"."""
    rule = batch.rule
    bounds = (rule.max_key, rule.max_value)
    if rule.kind == "relu":
        out, stats = dense_relu(batch.Q, batch.K, batch.V, rule.alpha, rule.b, causal, bounds)
    else:
        out, stats = dense_softmax(batch.Q, batch.K, batch.V, rule.b, causal, sinks, window,
                                   batch.measure_dropped, bounds)
    return out, dataclasses.replace(stats, method="hsr", kernel="dense")


def _chunk(batch: _Batch, source: Candidates, r0: int, r1: int
           ) -> tuple[np.ndarray, AttentionStats, int]:
    """Rows r0..r1-1: their candidates, kept in [s0, w0), plus the sinks and window, then the
    exact rows. Also returns the most candidates one row had."""
    s0, w0, seen = batch.s0[r0:r1], batch.w0[r0:r1], batch.seen[r0:r1]
    indptr, ids, nodes, products = source.candidates(batch.Q, batch.offsets, r0, r1)
    widest = int(np.diff(indptr).max(initial=1))
    indptr, idx = _row_keys(indptr, ids, s0, w0, seen)
    kind = batch.rule.kind
    forced = None  # softmax keeps the sinks and the window whatever their score
    if kind == "softmax":
        row = row_of(indptr)
        forced = (idx < s0[row]) | (idx >= w0[row])
    out, kept = exact_rows(batch.Q[r0:r1], batch.K, batch.V, indptr, idx, forced, batch.rule)
    products = products + np.diff(indptr)  # the query's own products, and the exact rows'
    kept_ptr, kept_idx = keep_rows(indptr, idx, kept)
    activated = np.diff(kept_ptr)
    eps = None
    if kind == "softmax" and batch.measure_dropped:
        eps = dropped_mass(batch.Q[r0:r1], batch.K, kept_ptr, kept_idx, seen)
    return out, AttentionStats("hsr", kind, activated, products, nodes, activated == 0,
                               dropped_mass=eps), widest


def _row_keys(indptr: np.ndarray, ids: np.ndarray, s0: np.ndarray, w0: np.ndarray,
              seen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's keys as CSR: its sinks [0, s0), its candidates cut to [s0, w0) and its
    window [w0, seen), in this order. Candidates lie in [0, seen) (a row's structures hold no
    key it does not see), so without sinks and window they are the row's keys as they come."""
    if not s0.any() and (w0 == seen).all():  # no sinks, no window
        return indptr, ids
    row = row_of(indptr)
    indptr, ids = keep_rows(indptr, ids, (ids >= s0[row]) & (ids < w0[row]))
    tail = seen - w0
    sink_keys = ranges(np.zeros(np.count_nonzero(s0), dtype=np.int64), s0[s0 > 0])
    window_keys = ranges(w0[tail > 0], tail[tail > 0])
    return concat_rows([(indptr_of(s0), sink_keys), (indptr, ids),
                        (indptr_of(tail), window_keys)])
