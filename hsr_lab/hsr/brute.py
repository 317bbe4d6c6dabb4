"""The dense scan ``K @ a >= t``: the oracle every structure is tested against, and the baseline.

float64 keys are scored in float64. float32 keys stay float32 and are scored in float32, a chunk
of rows at a time (no float64 copy of K); a row whose float32 score lies within the proven band
of t (``numerics.band32``) is rescored in float64, so the answer is ``fl64(<a, x>) >= t`` on the
stored values, exactly as for float64 keys.
"""

from __future__ import annotations

import numpy as np

from ._stats import BatchQueryStats, QueryStats
from .csr import indptr_of, sort_rows
from .numerics import above32, abs_max, band32, below32, float32_safe

_BLOCK32 = 1 << 18  # float32 scores of one batch chunk (1 MiB: the gathers stay in cache)
_CHUNK32 = 1 << 18  # rows of float32 keys scored at once by a lone query (1 MiB of scores)


def key_dtype(points: np.ndarray) -> type:
    """The dtype keys are stored in: float32 stays float32, everything else becomes float64."""
    return np.float32 if points.dtype == np.float32 else np.float64


def compact_ids(ids: np.ndarray) -> np.ndarray:
    """The ids as int32 when they fit (half the memory), else int64; read back as int64."""
    small = len(ids) == 0 or (ids.min() >= 0 and ids.max() < 2**31)
    return np.array(ids, dtype=np.int32 if small else np.int64)


def nonzero2(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero`` of a C-contiguous 2-D mask, as (rows, cols): one ``flatnonzero`` and a
    divmod, many times faster than ``np.nonzero``'s multi-index walk."""
    return np.divmod(np.flatnonzero(mask), mask.shape[1])


def l1_reach(points: np.ndarray) -> float:
    """An upper bound on ``sum_i |x_i|`` over the rows x, summed in float64 a chunk at a time
    (rounded up by a relative 2^-40, far more than that sum's rounding)."""
    reach = 0.0
    for start in range(0, len(points), _CHUNK32):
        chunk = np.abs(points[start:start + _CHUNK32], dtype=np.float64)
        reach = max(reach, float(chunk.sum(axis=1).max()))
    return reach * (1 + 2.0**-40)


def scan32(points: np.ndarray, a: np.ndarray, t: float, rad: float, max_abs: float
           ) -> np.ndarray:
    """Rows of the float32 ``points`` with ``fl64(<a, x>) >= t``: scored in float32, the rows
    within ``band32`` of t rescored in float64, a chunk of rows at a time. ``rad`` bounds
    ``sum_i |x_i|`` and ``max_abs`` the largest |x_i| of every row."""
    d, a_max = points.shape[1], abs_max(a)
    if not float32_safe(d, a_max, max_abs):  # float32 could overflow: score in float64
        return np.concatenate([np.flatnonzero(points[s:s + _CHUNK32].astype(np.float64) @ a >= t)
                               + s for s in range(0, len(points), _CHUNK32)])
    a32, band = a.astype(np.float32), band32(d, a_max, rad, t)
    lo, hi = below32(t - band), above32(t + band)
    found = []
    for start in range(0, len(points), _CHUNK32):
        chunk = points[start:start + _CHUNK32]
        scores = chunk @ a32
        near = np.flatnonzero(scores >= lo)  # one pass over the scores, as the plain scan
        unsure = scores[near] < hi
        if np.count_nonzero(unsure):  # the few rows in the band: decided in float64
            rows = near[unsure]
            keep = ~unsure
            keep[unsure] = chunk[rows].astype(np.float64) @ a >= t
            near = near[keep]
        found.append(near + start if start else near)
    return found[0] if len(found) == 1 else np.concatenate(found)


def decide32(points: np.ndarray, a: np.ndarray, t: float, rad: float) -> np.ndarray:
    """The mask ``fl64(<a, x>) >= t`` over the float32 rows x: float32 scores decide outside
    ``band32`` of t, float64 ones inside (the caller has checked ``float32_safe``)."""
    band = band32(points.shape[1], abs_max(a), rad, t)
    scores = points @ a.astype(np.float32)
    keep = scores >= above32(t + band)
    near = np.flatnonzero(scores >= below32(t - band))
    near = near[~keep[near]]
    if len(near):  # the few rows in the band: decided in float64
        keep[near] = points[near].astype(np.float64) @ a >= t
    return keep


def scan32_many(points: np.ndarray, A: np.ndarray, t: np.ndarray, rad: float, max_abs: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """``scan32`` for every row of A at once, as CSR ``(indptr, rows)``: float32 products of
    A with column chunks of the points (one gemm each), then the band rows in float64."""
    m, d = A.shape
    a_max = np.abs(A).max(axis=1, initial=0.0)
    safe = np.array([float32_safe(d, float(v), max_abs) for v in a_max], dtype=bool)
    if not safe.all():  # rare: huge queries; answer those rows one by one
        answers = [scan32(points, a, float(t_i), rad, max_abs) for a, t_i in zip(A, t, strict=True)]
        return indptr_of(np.array([len(r) for r in answers], dtype=np.int64)), (
            np.concatenate(answers) if answers else np.zeros(0, dtype=np.int64))
    band = np.array([band32(d, float(v), rad, float(t_i)) for v, t_i in zip(a_max, t, strict=True)])
    lo, hi = below32(t - band)[:, None], above32(t + band)
    A32 = A.astype(np.float32)
    step = max(1, _BLOCK32 // max(m, 1))
    found_rows, found_cols = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for start in range(0, len(points), step):
        chunk = points[start:start + step]
        scores = A32 @ chunk.T
        near = np.flatnonzero(scores >= lo)
        rows, cols = np.divmod(near, scores.shape[1])
        unsure = scores.ravel()[near] < hi[rows]
        if np.count_nonzero(unsure):  # the few pairs in the band: decided in float64
            at = np.flatnonzero(unsure)
            keep = ~unsure
            keep[at] = np.einsum("rk,rk->r", chunk[cols[at]].astype(np.float64),
                                 A[rows[at]]) >= t[rows[at]]
            rows, cols = rows[keep], cols[keep]
        found_rows.append(rows)
        found_cols.append(cols + start if start else cols)
    rows, cols = np.concatenate(found_rows), np.concatenate(found_cols)
    # Group by query row, each row's points in storage order: a stable sort of small
    # integers (NumPy sorts 16-bit keys by radix, in linear time).
    order = np.argsort(rows.astype(np.uint16) if m < 2**16 else rows, kind="stable")
    return indptr_of(np.bincount(rows, minlength=m)), cols[order]


class FlatStore:
    """What a scan holds: ``points`` (n, d) and their ``_ids``, with no tree (depth 0).

    Shared by ``BruteForce`` and ``faiss_scan.FaissScan``, which differ only in how they score.
    """

    points: np.ndarray
    _ids: np.ndarray

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """All stored points and their ids."""
        return self.points, self._ids.astype(np.int64)

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


class BruteForce(FlatStore):
    """Scores every point with one matrix-vector product: O(n d) per query, no pruning."""

    name = "brute"

    def __init__(self, points: np.ndarray, ids: np.ndarray, leaf_size: int) -> None:
        self.points = np.array(points, dtype=key_dtype(points), order="C")
        self._ids = compact_ids(ids)
        self.ascending = bool((np.diff(self._ids) > 0).all())  # query returns sorted ids
        self._first = int(self._ids[0])  # ids first .. first + n - 1 in order: no id lookup
        self._consecutive = self.ascending and int(self._ids[-1]) - self._first == len(ids) - 1
        self._rad = l1_reach(self.points)
        self._max_abs = float(max(self.points.max(), -self.points.min()))

    @classmethod
    def over(cls, points: np.ndarray, ids: np.ndarray) -> BruteForce:
        """A scan over arrays another structure already holds (shared, not copied): the
        points in their stored dtype and the ids, both read-only here."""
        scan = cls.__new__(cls)
        scan.points, scan._ids = points, ids
        scan.ascending = bool((np.diff(ids) > 0).all())
        scan._first = int(ids[0])
        scan._consecutive = scan.ascending and int(ids[-1]) - scan._first == len(ids) - 1
        scan._rad = l1_reach(points)
        scan._max_abs = float(max(points.max(), -points.min()))
        return scan

    def query(self, a: np.ndarray, t: float) -> tuple[np.ndarray, QueryStats]:
        """Ids of every point with ``<a, x> >= t``: the scan itself."""
        if self.points.dtype == np.float32:
            rows = scan32(self.points, a, t, self._rad, self._max_abs)
        else:
            rows = np.flatnonzero(self.points @ a >= t)
        found = self._id_of(rows)
        n = len(self._ids)
        return found, QueryStats(inner_products=n, points_reported=len(found))

    def query_many(self, A: np.ndarray, t: np.ndarray | float, sort: bool = True
                   ) -> tuple[np.ndarray, np.ndarray, BatchQueryStats]:
        """``query(A[i], t[i])`` for the m rows of A: the scan ``A K^T >= t`` by blocks.

        Returns ``(indptr, ids, stats)``: row i's ids (ascending if ``sort``) are
        ``ids[indptr[i]:indptr[i + 1]]``. The scores come from a matrix product (BLAS gemm)
        instead of ``query``'s matrix-vector product: the same sums, possibly rounded
        differently, so for float64 keys a score within a few units in the last place of t
        could be decided differently (never when the scores are exact, as with small
        integers). float32 keys rescore the band in float64, as ``query`` does.
        """
        m, n = len(A), len(self._ids)
        t = np.broadcast_to(np.asarray(t, dtype=np.float64), (m,))
        if self.points.dtype == np.float32:
            indptr, rows = scan32_many(self.points, A, t, self._rad, self._max_abs)
            ids = self._id_of(rows)
        else:
            indptr, ids = self._scan64_many(A, t)
        if sort and not self.ascending:
            ids = sort_rows(indptr, ids)
        stats = BatchQueryStats.zeros(m)
        stats.inner_products[:], stats.points_reported[:] = n, np.diff(indptr)
        return indptr, ids, stats

    def _id_of(self, rows: np.ndarray) -> np.ndarray:
        """The int64 ids of the given rows (no lookup in the usual block, where row i holds
        id ``first + i``)."""
        if self._consecutive:
            return rows + self._first if self._first else rows
        return self._ids[rows].astype(np.int64)

    def _scan64_many(self, A: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float64 keys: ``A K^T >= t`` by cache-sized column chunks of K^T (one gemm each, K
        read once per batch), grouped by row as ``scan32_many`` groups them."""
        m = len(A)
        step = max(1, _BLOCK32 // max(m, 1))
        found_rows, found_cols = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
        for start in range(0, len(self.points), step):
            scores = A @ self.points[start:start + step].T
            rows, cols = nonzero2(scores >= t[:, None])
            found_rows.append(rows)
            found_cols.append(cols + start if start else cols)
        rows, cols = np.concatenate(found_rows), np.concatenate(found_cols)
        order = np.argsort(rows.astype(np.uint16) if m < 2**16 else rows, kind="stable")
        return indptr_of(np.bincount(rows, minlength=m)), self._id_of(cols[order])

    def __repr__(self) -> str:
        return f"BruteForce(n={len(self)}, d={self.points.shape[1]}, {self.points.dtype})"
