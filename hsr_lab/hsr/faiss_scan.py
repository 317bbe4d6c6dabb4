"""The float32 scan run by faiss (``IndexFlatIP.range_search``), made exact: a peer of ``brute``.

faiss scores float32 keys in float32 with its own SIMD loops (a BLAS product for batches), so
the band of ``numerics.band32`` bounds its error as it bounds ours (any summation order, FMA
included). The search asks for every score above ``below32(t - band)``; a score below
``above32(t + band)`` is settled exactly (``exact.at_least``). The answer is the exact
predicate of ``numerics``, ``<a, x> >= t`` on the stored values, as from every other backend.
faiss holds the only copy of the keys: ``points`` is a NumPy view of its storage. faiss is
optional (``pip install "hsr_lab[peers]"``).

``FaissScan`` implements ``StaticIndex`` but is not a backend of ``HSR``: the planner
(``plan.py``) races only the kd-tree and ``BruteForce``, since faiss's scan never won a cell
of ``benchmarks/results/hsr_float32.md``. It stays as a second, independently written float32
scan that the same band makes exact: ``tests/test_exact.py`` and ``tests/test_adversarial.py``
hold it to the exact oracle, as they hold every backend. (``peers.FaissFlat``, which
``benchmarks/bench_peers.py`` times, is the user-level peer over faiss.)
"""

from __future__ import annotations

import numpy as np

from ..optional import available
from ._stats import BatchQueryStats, QueryStats
from ._storage import compact_ids
from .brute import FlatStore, edge_t, scan, scan_many
from .csr import indptr_of, sort_rows
from .exact import at_least
from .numerics import above32, abs_max, band32, below32, float32_safe


def usable(points: np.ndarray) -> bool:
    """Whether a block of these points can be a ``FaissScan``: float32 keys, faiss installed."""
    return points.dtype == np.float32 and available("faiss")


class FaissScan(FlatStore):  # points: a view of faiss's storage
    """Scores every float32 point with faiss's flat inner-product scan: O(n d) per query."""

    name = "faiss"

    def __init__(self, points: np.ndarray, ids: np.ndarray, leaf_size: int) -> None:
        import faiss

        n, d = points.shape
        self.index = faiss.IndexFlatIP(d)
        self.index.add(np.ascontiguousarray(points, dtype=np.float32))
        self._hold(faiss.rev_swig_ptr(self.index.get_xb(), n * d).reshape(n, d), compact_ids(ids))

    def query(self, a: np.ndarray, t: float) -> tuple[np.ndarray, QueryStats]:
        """Ids of every point with ``<a, x> >= t`` (ascending) and the cost: one
        ``range_search`` above ``lo``, the scores below ``hi`` (a few, if any) settled."""
        d, a_max = len(a), abs_max(a)
        if not float32_safe(d, a_max, self._max_abs):
            _, ids, stats = self._float64_many(a[None, :], np.array([t]), sort=False)
            return ids, stats[0]
        edge = edge_t(float(t))  # t +- band cannot overflow
        band = band32(d, a_max, self._rad, edge)
        lo, hi = below32(edge - band), above32(edge + band)
        radius = float(np.nextafter(lo, np.float32(-np.inf)))  # faiss keeps scores > radius
        _, scores, rows = self.index.range_search(a[None, :].astype(np.float32), radius)
        if len(rows) and scores.min() < hi:  # a score in the band: settled exactly
            at = np.flatnonzero(scores < hi)
            below = ~at_least(self.points.take(rows.take(at), axis=0), a, t)
            rows = np.delete(rows, at[below])
        ids = self._id_of(rows)
        if len(ids) > 1 and not (ids[1:] > ids[:-1]).all():  # faiss lists rows in order
            ids.sort()
        return ids, QueryStats(inner_products=len(self._ids), points_reported=len(ids))

    def query_many(self, A: np.ndarray, t: np.ndarray | float, sort: bool = True
                   ) -> tuple[np.ndarray, np.ndarray, BatchQueryStats]:
        """``query(A[i], t[i])`` for the m rows of A (rows ascending if ``sort``): the NumPy
        batch scan ``brute.scan_many`` over faiss's storage, which measured faster than
        faiss's own batched ``range_search`` on one thread."""
        m = len(A)
        t = np.broadcast_to(np.asarray(t, dtype=np.float64), (m,))
        indptr, rows = scan_many(self.points, A, t, self._rad, self._max_abs)
        ids = self._id_of(rows)
        if sort and not self._ids_ascending:  # rows ascend in each row of the answer
            ids = sort_rows(indptr, ids)
        return indptr, ids, self._stats(indptr)

    def _search(self, A: np.ndarray, t: np.ndarray, sort: bool = True
                ) -> tuple[np.ndarray, np.ndarray, BatchQueryStats]:
        """``query(A[i], t[i])`` by one faiss ``range_search`` at the lowest of the rows'
        thresholds, then each row's own band (faiss's batched search, kept to be compared
        with ``query_many``)."""
        m, d = A.shape
        a_max = np.array([abs_max(a) for a in A])
        if not all(float32_safe(d, float(v), self._max_abs) for v in a_max):
            return self._float64_many(A, t, sort)
        edge = edge_t(t)  # t +- band cannot overflow
        band = band32(d, a_max, self._rad, edge)
        lo, hi = below32(edge - band), above32(edge + band)
        radius = np.nextafter(lo.min(), np.float32(-np.inf))  # faiss keeps scores > radius
        lims, scores, rows = self.index.range_search(A.astype(np.float32), float(radius))
        query = np.repeat(np.arange(m), np.diff(lims.astype(np.int64)))
        keep = scores >= lo[query]
        unsure = np.flatnonzero(keep & (scores < hi[query]))
        if len(unsure):  # the few points in the band: settled exactly
            keep[unsure] = at_least(self.points[rows[unsure]], A[query[unsure]],
                                    t[query[unsure]])
        indptr = indptr_of(np.bincount(query[keep], minlength=m))
        ids = self._ids[rows[keep]].astype(np.int64)
        if sort:
            ids = sort_rows(indptr, ids)
        return indptr, ids, self._stats(indptr)

    def _float64_many(self, A: np.ndarray, t: np.ndarray, sort: bool
                      ) -> tuple[np.ndarray, np.ndarray, BatchQueryStats]:
        """Queries too large for float32 scores: ``brute.scan``, which scores them in float64
        a chunk of rows at a time."""
        found = [scan(self.points, a, float(t_i), self._rad, self._max_abs)
                 for a, t_i in zip(A, t, strict=True)]
        indptr = indptr_of(np.array([len(f) for f in found], dtype=np.int64))
        ids = self._ids[np.concatenate(found)].astype(np.int64)
        return indptr, (sort_rows(indptr, ids) if sort else ids), self._stats(indptr)

    def _stats(self, indptr: np.ndarray) -> BatchQueryStats:
        stats = BatchQueryStats.zeros(len(indptr) - 1)
        stats.inner_products[:], stats.points_reported[:] = len(self._ids), np.diff(indptr)
        return stats

    def __repr__(self) -> str:
        return f"FaissScan(n={len(self)}, d={self.points.shape[1]}, float32)"
