"""The dense scan ``K @ a >= t``: the oracle every structure is tested against, and the baseline."""

from __future__ import annotations

import numpy as np

from ._stats import BatchQueryStats, QueryStats
from .csr import indptr_of, sort_rows

_BLOCK = 1 << 21  # scores computed at once by query_many: 16 MiB of float64


class BruteForce:
    """Scores every point with one matrix-vector product: O(n d) per query, no pruning."""

    name = "brute"

    def __init__(self, points: np.ndarray, ids: np.ndarray, leaf_size: int) -> None:
        self.points = np.array(points, dtype=np.float64, order="C")
        self._ids = np.array(ids, dtype=np.int64)
        self._ascending = bool((np.diff(self._ids) > 0).all())

    def query(self, a: np.ndarray, t: float) -> tuple[np.ndarray, QueryStats]:
        """Ids of every point with ``<a, x> >= t``: the scan itself."""
        found = self._ids[np.flatnonzero(self.points @ a >= t)]
        n = len(self._ids)
        return found, QueryStats(inner_products=n, points_reported=len(found))

    def query_many(self, A: np.ndarray, t: np.ndarray | float, sort: bool = True
                   ) -> tuple[np.ndarray, np.ndarray, BatchQueryStats]:
        """``query(A[i], t[i])`` for the m rows of A: the scan ``A K^T >= t`` by blocks of rows.

        Returns ``(indptr, ids, stats)``: row i's ids (ascending if ``sort``) are
        ``ids[indptr[i]:indptr[i + 1]]``. The scores come from a matrix product (BLAS gemm)
        instead of ``query``'s matrix-vector product: the same sums, possibly rounded
        differently, so a score within a few units in the last place of t could be decided
        differently (never when the scores are exact, as with small integers).
        """
        m, n = len(A), len(self._ids)
        t = np.broadcast_to(np.asarray(t, dtype=np.float64), (m,))
        step = max(1, _BLOCK // n)
        counts, found = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
        for lo in range(0, m, step):
            rows, cols = np.nonzero(A[lo:lo + step] @ self.points.T >= t[lo:lo + step, None])
            counts.append(np.bincount(rows, minlength=len(A[lo:lo + step])))
            found.append(self._ids[cols])  # grouped by row, in storage order within a row
        indptr = indptr_of(np.concatenate(counts))
        ids = np.concatenate(found)
        if sort and not self._ascending:
            ids = sort_rows(indptr, ids)
        stats = BatchQueryStats.zeros(m)
        stats.inner_products[:], stats.points_reported[:] = n, np.diff(indptr)
        return indptr, ids, stats

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """All stored points and their ids."""
        return self.points, self._ids

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def depth(self) -> int:
        """A scan has no tree: depth 0."""
        return 0

    @property
    def nbytes(self) -> int:
        """Bytes of the stored points and ids."""
        return self.points.nbytes + self._ids.nbytes

    def __repr__(self) -> str:
        return f"BruteForce(n={len(self)}, d={self.points.shape[1]})"
