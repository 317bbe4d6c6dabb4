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


def row_hits(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The True entries of a C-contiguous (m, w) mask: their flat indices (row-major, so
    grouped by row) and how many each row holds (a ``searchsorted`` of the row ends, rather
    than ``np.nonzero``'s multi-index walk or a division of every index)."""
    flat = np.flatnonzero(mask)
    m, w = mask.shape
    return flat, np.diff(np.searchsorted(flat, np.arange(m + 1) * w))


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
    band = band32(d, a_max, rad, t)
    a32, lo, hi = a.astype(np.float32), below32(t - band), above32(t + band)
    if len(points) <= _CHUNK32:  # one chunk (the usual block): no list, no concatenation
        return _rows32(points, a, a32, t, lo, hi)
    return np.concatenate([_rows32(points[s:s + _CHUNK32], a, a32, t, lo, hi) + s
                           for s in range(0, len(points), _CHUNK32)])


def _rows32(chunk: np.ndarray, a: np.ndarray, a32: np.ndarray, t: float, lo: np.float32,
            hi: np.float32) -> np.ndarray:
    """Rows of one chunk with ``fl64(<a, x>) >= t``: float32 scores ``>= lo``, those below
    ``hi`` (the band: a row or two, if any) decided in float64."""
    scores = chunk @ a32
    near = np.flatnonzero(scores >= lo)  # one pass over the scores, as the plain scan
    near_scores = scores.take(near)
    if len(near) == 0 or near_scores.min() >= hi:  # nothing in the band: the usual case
        return near
    at = np.flatnonzero(near_scores < hi)
    below = chunk.take(near.take(at), axis=0).astype(np.float64) @ a < t
    return np.delete(near, at[below]) if below.any() else near


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
    """``scan32`` for every row of A at once, as CSR ``(indptr, rows)``: the float32 scores
    ``A K_c^T`` of each column chunk K_c of the points (one gemm), the pairs ``>= lo`` of
    their row, then the band pairs (below ``hi``) decided in float64."""
    m, d = A.shape
    a_max = np.abs(A).max(axis=1, initial=0.0)
    safe = np.array([float32_safe(d, float(v), max_abs) for v in a_max], dtype=bool)
    if not safe.all():  # rare: huge queries; answer those rows one by one
        answers = [scan32(points, a, float(t_i), rad, max_abs) for a, t_i in zip(A, t, strict=True)]
        return indptr_of(np.array([len(r) for r in answers], dtype=np.int64)), (
            np.concatenate(answers) if answers else np.zeros(0, dtype=np.int64))
    band = band32(d, a_max, rad, t)
    lo, hi = below32(t - band)[:, None], above32(t + band)
    A32 = A.astype(np.float32)
    step = max(1, _BLOCK32 // max(m, 1))
    chunks = []
    for start in range(0, len(points), step):
        chunk = points[start:start + step]
        scores = A32 @ chunk.T
        flat, counts = row_hits(scores >= lo)
        unsure = scores.ravel().take(flat) < np.repeat(hi, counts)
        if unsure.any():  # the few pairs in the band: decided in float64
            flat, counts = _recheck(chunk, A, t, flat, counts, np.flatnonzero(unsure))
        cols = flat - np.repeat(np.arange(m) * len(chunk) - start, counts)
        chunks.append((cols, counts))
    return _by_row(chunks, m)


def _recheck(chunk: np.ndarray, A: np.ndarray, t: np.ndarray, flat: np.ndarray,
             counts: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop the pairs ``flat[at]`` (of the (m, w) scores of one chunk, row-major) whose
    float64 score ``fl64(<A_r, x_c>)`` is below ``t_r``; ``counts`` per row, updated."""
    rows, cols = np.divmod(flat.take(at), len(chunk))
    below = np.einsum("rk,rk->r", chunk.take(cols, axis=0).astype(np.float64), A[rows]) < t[rows]
    if not below.any():
        return flat, counts
    return np.delete(flat, at[below]), counts - np.bincount(rows[below], minlength=len(A))


def _by_row(chunks: list[tuple[np.ndarray, np.ndarray]], m: int) -> tuple[np.ndarray, np.ndarray]:
    """One CSR ``(indptr, cols)`` from the chunks' ``(cols, counts)``, each grouped by row:
    row r holds its columns of the first chunk, then of the second, ... (a scatter of each
    chunk's values to their places, no sort)."""
    if len(chunks) == 1:
        return indptr_of(chunks[0][1]), chunks[0][0]
    per_chunk = np.array([counts for _, counts in chunks]).reshape(len(chunks), m)
    indptr = indptr_of(per_chunk.sum(axis=0))
    out = np.empty(indptr[-1], dtype=np.int64)
    offset = indptr[:-1] + np.cumsum(per_chunk, axis=0) - per_chunk  # row r of chunk c starts
    for (cols, counts), at in zip(chunks, offset, strict=True):
        if len(cols):  # value j of the chunk goes to at[r] + (j - first of r in the chunk)
            out[np.arange(len(cols)) + np.repeat(at - (np.cumsum(counts) - counts), counts)] = cols
    return indptr, out


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
        chunks = []
        for start in range(0, len(self.points), step):
            chunk = self.points[start:start + step]
            flat, counts = row_hits(A @ chunk.T >= t[:, None])
            chunks.append((flat - np.repeat(np.arange(m) * len(chunk) - start, counts), counts))
        indptr, cols = _by_row(chunks, m)
        return indptr, self._id_of(cols)

    def __repr__(self) -> str:
        return f"BruteForce(n={len(self)}, d={self.points.shape[1]}, {self.points.dtype})"
