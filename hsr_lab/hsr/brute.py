"""The dense scan ``K @ a >= t``: the oracle every structure is tested against, and the baseline.

The answer is the exact predicate of ``numerics``: ``<a, x> >= t`` in real arithmetic on the
stored values. float64 keys are scored in float64; float32 keys stay float32 and are scored in
float32, a chunk of rows at a time (no float64 copy of K). Either way a row is decided by its
score unless that score lies within the proven band of t (``numerics.band64``, ``band32``);
those few rows are settled exactly (``exact.at_least``).

A batch ``A K^T >= t`` (``query_many``) is scored by column chunks of K, one gemm each into a
reused cache-sized buffer, and compared with one scalar where the rows share t
(``pairs_by_row``); only the kept scores below the band's upper edge are settled. Every chunk's
pairs come out grouped by row, and one scatter merges them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._stats import BatchQueryStats, QueryStats
from ._storage import compact_ids, key_dtype
from .csr import indptr_of, sort_rows
from .exact import at_least
from .numerics import above32, abs_max, band32, band64, below32, float32_safe

_BLOCK32 = 1 << 18  # scores of one batch chunk (1 MiB of float32: the gemm output stays in L2)
_CHUNK32 = 1 << 18  # rows of float32 keys scored at once by a lone query (1 MiB of scores)
_FAR = 2.0**1020  # thresholds are clamped here for the band's edges (``edge_t``)
_ROW_GROUP = 256  # batch rows scored together: chunks keep >= _BLOCK32 / 256 = 1024 columns,
# so the per-chunk bookkeeping (chunks x rows) stays about n / 4 entries whatever the batch


def l1_reach(points: np.ndarray) -> float:
    """An upper bound on ``sum_i |x_i|`` over the rows x, summed in float64 a chunk at a time
    (rounded up by a relative 2^-40, far more than that sum's rounding)."""
    reach = 0.0
    for start in range(0, len(points), _CHUNK32):
        chunk = np.abs(points[start:start + _CHUNK32], dtype=np.float64)
        reach = max(reach, float(chunk.sum(axis=1).max()))
    return reach * (1 + 2.0**-40)


def edge_t(t: np.ndarray | float) -> np.ndarray | float:
    """t clamped to ``[-2^1020, 2^1020]``, for the edges ``t -+ band`` of the band only: every
    score lies within ``MAX_PRODUCT = 1e300`` of 0 (``HSR`` checks the query against the
    keys), so a clamped t puts every score on the side t puts it, and ``t + band`` cannot
    overflow at ``t = +-max float64``. The exact settle compares with t itself."""
    if isinstance(t, float):
        return min(max(t, -_FAR), _FAR)
    return np.clip(t, -_FAR, _FAR)


def scan(points: np.ndarray, a: np.ndarray, t: float, rad: float, max_abs: float
         ) -> np.ndarray:
    """Rows of ``points`` with ``<a, x> >= t`` exactly: scored in the points' dtype (float32
    where ``float32_safe``, else float64), the rows within the band of t settled exactly, a
    chunk of rows at a time for float32 points. ``rad`` bounds ``sum_i |x_i|`` and ``max_abs``
    the largest |x_i| of every row."""
    d, a_max, edge = points.shape[1], abs_max(a), edge_t(float(t))
    if points.dtype == np.float32 and float32_safe(d, a_max, max_abs):
        band = band32(d, a_max, rad, edge)
        a_s, lo, hi = a.astype(np.float32), below32(edge - band), above32(edge + band)
    else:  # float64 keys, or float32 scores that could overflow: scored in float64
        band = band64(d, a_max, rad, edge)
        a_s, lo, hi = a, edge - band, edge + band
    if len(points) <= _CHUNK32 or points.dtype == np.float64:  # one product: no concatenation
        return _rows(points, a, a_s, t, lo, hi)
    return np.concatenate([_rows(points[s:s + _CHUNK32], a, a_s, t, lo, hi) + s
                           for s in range(0, len(points), _CHUNK32)])


def _rows(chunk: np.ndarray, a: np.ndarray, a_s: np.ndarray, t: float, lo: float,
          hi: float) -> np.ndarray:
    """Rows of one chunk with ``<a, x> >= t``: scores ``<a_s, x>`` at least ``lo``, those below
    ``hi`` (the band: a row or two, if any) settled exactly."""
    scores = chunk @ a_s
    near = np.flatnonzero(scores >= lo)  # one pass over the scores, as the plain scan
    near_scores = scores.take(near)
    if len(near) == 0 or near_scores.min() >= hi:  # nothing in the band: the usual case
        return near
    at = np.flatnonzero(near_scores < hi)
    inside = at_least(chunk.take(near.take(at), axis=0), a, t)
    return near if inside.all() else np.delete(near, at[~inside])


def scan_many(points: np.ndarray, A: np.ndarray, t: np.ndarray, rad: float, max_abs: float
              ) -> tuple[np.ndarray, np.ndarray]:
    """``scan`` for every row of A at once, as CSR ``(indptr, rows)``, rows ascending: the
    scores ``A K_c^T`` of each column chunk K_c of the points (one gemm, in the points'
    dtype), the pairs ``>= lo`` kept, those below ``hi`` (the band of their row) settled.

    Every row's band ``[lo_r, hi_r)`` comes from ``numerics.band32`` (float32 points) or
    ``band64``. Where the rows' lower edges lie within one band of each other (one t for the
    batch, the usual case) the scores are compared with the lowest, ``min_r lo_r``, a scalar
    (NumPy compares with a scalar several times faster than with a column), and every kept
    score below ``max_r hi_r`` is asked: the pairs the wider band adds are settled as the
    band's own are.
    """
    m, d = A.shape
    a_max, edge = np.abs(A).max(axis=1, initial=0.0), edge_t(t)
    if points.dtype == np.float32:
        safe = np.array([float32_safe(d, float(v), max_abs) for v in a_max], dtype=bool)
        if not safe.all():  # rare: huge queries; answer those rows one by one
            answers = [scan(points, a, float(t_i), rad, max_abs) for a, t_i in zip(A, t,
                                                                                strict=True)]
            return indptr_of(np.array([len(r) for r in answers], dtype=np.int64)), (
                np.concatenate(answers) if answers else np.zeros(0, dtype=np.int64))
        band = band32(d, a_max, rad, edge)
        lo, hi, Q = below32(edge - band), above32(edge + band), A.astype(np.float32)
    else:
        band = band64(d, a_max, rad, edge)
        lo, hi, Q = edge - band, edge + band, A
    if m == 0:
        return pairs_by_row(points, A, 0.0)
    edge = lo.min() if lo.max() - lo.min() <= (hi - lo).max() else lo[:, None]
    top = hi.max()

    def decide(chunk: np.ndarray, flat: np.ndarray, scores: np.ndarray, first: int
               ) -> np.ndarray:
        """The pairs ``flat`` of one chunk (row-major in its (rows, w) scores, rows
        ``first, first + 1, ...`` of A) without those whose exact score is below their row's
        t (only scores below ``hi`` are asked)."""
        near = scores.take(flat)
        if len(flat) == 0 or near.min() >= top:  # nothing in the band: the usual case
            return flat
        at = np.flatnonzero(near < top)
        rows = flat.take(at) // len(chunk)
        inside = near.take(at) < hi[first + rows]  # below this row's own upper edge
        at, rows = at[inside], rows[inside]
        cols = flat.take(at) - rows * len(chunk)
        below = ~at_least(chunk.take(cols, axis=0), A[first + rows], t[first + rows])
        return np.delete(flat, at[below]) if below.any() else flat

    return pairs_by_row(points, Q, edge, decide)


def pairs_by_row(points: np.ndarray, Q: np.ndarray, edge: np.ndarray | float,
                 decide: Callable[[np.ndarray, np.ndarray, np.ndarray, int], np.ndarray] | None
                 = None, first: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """CSR ``(indptr, cols)`` of the pairs (r, c) with ``(Q K^T)_{rc} >= edge`` (a scalar, or
    an (m, 1) column of per-row edges), each row's columns ascending.

    K is scored by column chunks K_c of ``_BLOCK32 / m`` points, ``Q K_c^T`` into one reused
    buffer (the gemm's output stays in cache, no page faults); ``flatnonzero`` of the
    comparison lists a chunk's pairs grouped by row, as ``Q K_c^T`` is row-major, and
    ``decide(K_c, flat, scores, first)`` may drop some of them (``first``: the batch row of
    Q's row 0). ``_merge_rows`` then puts every row's pairs of all chunks together. Batches
    of more than ``_ROW_GROUP`` rows go ``_ROW_GROUP`` rows at a time.
    """
    m, n = len(Q), len(points)
    if m == 0 or n == 0:
        return np.zeros(m + 1, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if m > _ROW_GROUP:
        parts = [pairs_by_row(points, Q[r:r + _ROW_GROUP],
                              edge if np.ndim(edge) == 0 else edge[r:r + _ROW_GROUP],
                              decide, first + r) for r in range(0, m, _ROW_GROUP)]
        return (indptr_of(np.concatenate([np.diff(indptr) for indptr, _ in parts])),
                np.concatenate([cols for _, cols in parts]))
    step = max(1, _BLOCK32 // m)
    buf = np.empty((m, min(step, n)), dtype=points.dtype)
    mask = np.empty(buf.shape, dtype=bool)
    edges = np.arange(m + 1) * buf.shape[1]
    flats, bounds = [], []
    for start in range(0, n, step):
        chunk = points[start:start + step]
        if len(chunk) < buf.shape[1]:  # the last, narrower chunk
            scores = Q @ chunk.T
            flat = np.flatnonzero(scores >= edge)
        else:
            scores = np.matmul(Q, chunk.T, out=buf)
            flat = np.flatnonzero(np.greater_equal(scores, edge, out=mask))
        if decide is not None:
            flat = decide(chunk, flat, scores.ravel(), first)
        flats.append(flat)
        bounds.append(np.searchsorted(flat, edges if len(chunk) == buf.shape[1]
                                      else np.arange(m + 1) * len(chunk)))
    return _merge_rows(flats, np.diff(np.array(bounds), axis=1), step, n)


def _merge_rows(flats: list[np.ndarray], counts: np.ndarray, step: int, n: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """One CSR ``(indptr, cols)`` from the chunks' flat indices (chunk c: the points
    ``c step ...``, its (m, w_c) pairs row-major) and their per-row ``counts`` (C, m): row r
    holds its columns of chunk 0, then of chunk 1, ... One scatter of all the pairs, no sort.

    Pair j of segment (c, r) (the ``counts[c, r]`` pairs of row r in chunk c) holds column
    ``flat_j - r w_c + c step`` and goes to ``indptr[r] + sum_{c' < c} counts[c', r]`` plus
    its place in the segment.
    """
    C, m = counts.shape
    starts = np.arange(C) * step
    widths = np.minimum(step, n - starts)
    indptr = indptr_of(counts.sum(axis=0))
    if C == 1:
        return indptr, flats[0] - np.repeat(np.arange(m) * widths[0], counts[0])
    sizes = counts.ravel()  # the segments in the order the chunks list them
    shift = (starts[:, None] - np.arange(m) * widths[:, None]).ravel()
    place = (indptr[:-1] + np.cumsum(counts, axis=0) - counts).ravel() - (np.cumsum(sizes) - sizes)
    flat = np.concatenate(flats)
    out = np.empty(len(flat), dtype=np.int64)
    out[np.arange(len(flat)) + np.repeat(place, sizes)] = flat + np.repeat(shift, sizes)
    return indptr, out


class FlatStore:
    """What a scan holds: ``points`` (n, d) and their ``ids``, with no tree (depth 0).

    Shared by ``BruteForce`` and ``faiss_scan.FaissScan``, which differ only in how they score.
    """

    points: np.ndarray
    _ids: np.ndarray

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """All stored points and their ids."""
        return self.points, self._ids.astype(np.int64)

    @property
    def ascending(self) -> bool:
        """Whether answers come as sorted ids unasked: a scan lists the rows in order, so iff
        the ids ascend."""
        return self._ids_ascending

    @property
    def ids(self) -> np.ndarray:
        """The ids of ``points``, row for row (int32 when they fit: read back as int64)."""
        return self._ids

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

    def _hold(self, points: np.ndarray, ids: np.ndarray) -> None:
        """Keep the points and ids, and what a scan needs to know about them: whether the ids
        ascend (an answer in row order is then sorted) and run ``first, first + 1, ...`` (no
        id lookup), and the bounds ``rad`` and ``max_abs`` of ``numerics.band32``."""
        self.points, self._ids = points, ids
        self._ids_ascending = bool((np.diff(ids) > 0).all())
        self._first = int(ids[0])
        self._consecutive = self._ids_ascending and int(ids[-1]) - self._first == len(ids) - 1
        self._rad = l1_reach(points)
        self._max_abs = float(max(points.max(), -points.min()))

    def _id_of(self, rows: np.ndarray) -> np.ndarray:
        """The int64 ids of the given rows (no lookup in the usual block, where row i holds
        id ``first + i``)."""
        if self._consecutive:
            return rows + self._first if self._first else rows
        return self._ids.take(rows).astype(np.int64)


class BruteForce(FlatStore):
    """Scores every point with one matrix-vector product: O(n d) per query, no pruning."""

    name = "brute"

    def __init__(self, points: np.ndarray, ids: np.ndarray, leaf_size: int) -> None:
        self._hold(np.array(points, dtype=key_dtype(points), order="C"), compact_ids(ids))

    @classmethod
    def over(cls, points: np.ndarray, ids: np.ndarray) -> BruteForce:
        """A scan over arrays another structure already holds (shared, not copied): the
        points in their stored dtype and the ids, both read-only here."""
        scan = cls.__new__(cls)
        scan._hold(points, ids)
        return scan

    def query(self, a: np.ndarray, t: float) -> tuple[np.ndarray, QueryStats]:
        """Ids of every point with ``<a, x> >= t`` (exactly: ``numerics``): the scan itself."""
        found = self._id_of(scan(self.points, a, t, self._rad, self._max_abs))
        return found, QueryStats(inner_products=len(self._ids), points_reported=len(found))

    def query_many(self, A: np.ndarray, t: np.ndarray | float, sort: bool = True
                   ) -> tuple[np.ndarray, np.ndarray, BatchQueryStats]:
        """``query(A[i], t[i])`` for the m rows of A: the scan ``A K^T >= t`` by blocks.

        Returns ``(indptr, ids, stats)``: row i's ids (ascending if ``sort``) are
        ``ids[indptr[i]:indptr[i + 1]]``. The scores come from a matrix product (BLAS gemm)
        instead of ``query``'s matrix-vector product, summed in another order; the band of
        each row is settled exactly in both, so the ids are the same.
        """
        m, n = len(A), len(self._ids)
        t = np.broadcast_to(np.asarray(t, dtype=np.float64), (m,))
        indptr, rows = scan_many(self.points, A, t, self._rad, self._max_abs)
        ids = self._id_of(rows)
        if sort and not self.ascending:
            ids = sort_rows(indptr, ids)
        stats = BatchQueryStats.zeros(m)
        stats.inner_products[:], stats.points_reported[:] = n, np.diff(indptr)
        return indptr, ids, stats

    def __repr__(self) -> str:
        return f"BruteForce(n={len(self)}, d={self.points.shape[1]}, {self.points.dtype})"
