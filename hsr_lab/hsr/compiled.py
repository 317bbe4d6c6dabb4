"""The compiled twin: ``NumpyKDTree``'s tree, walked by Numba-compiled loops.

Same tree (the NumPy build, the same arrays), same box test, same outcomes and counters as
``reference.py`` and ``kdtree.py``; what changes is only who runs the walk. A NumPy walk costs
about 200 NumPy calls per query, 2-3 us each once a scan has flushed the caches, and at
n = 2^22, d = 2 that overhead is most of a tree query (``benchmarks/results/profile_walk.md``).
Here one call walks the tree depth first with an explicit stack, in machine code:

- a node's two bounds are ``<[center, half, rad, 1], w0>`` and ``<..., w1>`` with the query's
  weight rows ``w0 = [a, |a|, slack, d TINY]``, ``w1 = [a, -|a|, -slack, -d TINY]``
  (``kdtree._weights``): ``mid + spread + margin`` (pruned if below t) and
  ``mid - spread - margin`` (reported whole if at least t); otherwise a leaf is scanned and an
  inner node opened;
- nodes reported whole become their rows' ids (``ids[start:stop]``), without inner products;
- a scanned leaf scores its points: float32 points in float32, ``s32 = fl32(<fl32(a), x>)``,
  decided outside the leaf's ``numerics.band32`` of t and rescored in float64 inside it, so
  the answer is ``fl64(<a, x>) >= t`` on the stored values; float64 points in float64.

Numba is optional (``pip install 'hsr_lab[fast]'``; ``make test`` and ``make bench`` install
it, ``make lab`` does not: llvmlite alone is about 170 MB). ``AVAILABLE`` says whether it
imported; without it ``backend="compiled"`` raises and ``auto`` races the NumPy tree instead.
The first query of each dtype compiles the loops (a few seconds, cached on disk afterwards).
"""

from __future__ import annotations

import numpy as np

from ._stats import BatchQueryStats, QueryStats
from .brute import compact_ids
from .kdtree import NumpyKDTree
from .numerics import ETA32, TINY32, abs_max, float32_safe, margin32

try:  # optional: the NumPy twin answers the same queries without it
    import numba
except ImportError:  # pragma: no cover - exercised where numba is not installed
    numba = None

AVAILABLE = numba is not None
_STACK = 256  # open nodes waiting on the stack: a path of depth <= 63 holds at most 64
_COUNTERS = 4  # visited, pruned, reported, products


def _jit(fn):
    """``numba.njit(cache=True)`` when Numba is installed; the plain function otherwise."""
    return numba.njit(cache=True, nogil=True)(fn) if AVAILABLE else fn


@_jit
def _walk(packed, left, start, stop, w0, w1, t, whole, leaves, counts):  # pragma: no cover
    """Depth-first walk: the nodes reported whole into ``whole``, the leaves to scan into
    ``leaves``; returns how many of each. ``counts`` gets visited, pruned, reported."""
    width = packed.shape[1]
    stack = np.empty(_STACK, dtype=np.int64)
    stack[0] = 0
    top = 1
    n_whole = 0
    n_leaves = 0
    visited = 0
    pruned = 0
    while top > 0:
        top -= 1
        node = stack[top]
        visited += 1
        hi = 0.0
        lo = 0.0
        for k in range(width):
            hi += packed[node, k] * w0[k]
            lo += packed[node, k] * w1[k]
        if hi < t:
            pruned += 1
        elif lo >= t:
            whole[n_whole] = node
            n_whole += 1
        elif left[node] < 0:
            leaves[n_leaves] = node
            n_leaves += 1
        else:
            stack[top] = left[node] + 1
            stack[top + 1] = left[node]
            top += 2
    counts[0] += visited
    counts[1] += pruned
    counts[2] += n_whole
    return n_whole, n_leaves


@_jit
def _below32(x):  # pragma: no cover
    """``numerics.below32`` for one float: a float32 at most x."""
    x = min(max(x, -2.0**127), 2.0**127)
    return np.float32(x - abs(x) * 2.0**-23 - ETA32)


@_jit
def _above32(x):  # pragma: no cover
    """``numerics.above32`` for one float: a float32 at least x."""
    x = min(max(x, -2.0**127), 2.0**127)
    return np.float32(x + abs(x) * 2.0**-23 + ETA32)


@_jit
def _id(low, high, j):  # pragma: no cover
    """The id of row j: ``low[j] + 2^16 high[j]``, or ``low[j]`` when ``high`` is empty."""
    if len(high) == 0:
        return np.int64(low[j])
    return np.int64(low[j]) | (np.int64(high[j]) << 16)


@_jit
def _query(packed, left, start, stop, rows, low, high, a, t, slack32, use32, out, at, counts
           ):  # pragma: no cover
    """One query: writes its ids to ``out[at:]`` (grown if needed) and returns ``(out, end)``.

    Row j's id is ``low[j] + 2^16 high[j]`` (24-bit ids), or ``low[j]`` when ``high`` is
    empty. ``slack32`` is ``margin32(d) max|a|`` (the leaf's band is ``slack32 rad + ETA32 rad
    + 2 d TINY32 + 2^-52 |t|``); ``use32`` whether float32 points are scored in float32.
    """
    d = rows.shape[1]
    n_nodes = len(left)
    w0 = np.empty(2 * d + 2)
    w1 = np.empty(2 * d + 2)
    max_a = 0.0
    for k in range(d):
        max_a = max(max_a, abs(a[k]))
    for k in range(d):
        w0[k] = a[k]
        w1[k] = a[k]
        w0[d + k] = abs(a[k])
        w1[d + k] = -abs(a[k])
    slack = 8.0 * (d + 2) * 2.0**-53 * max_a
    w0[2 * d] = slack
    w1[2 * d] = -slack
    w0[2 * d + 1] = d * 2.0**-1022
    w1[2 * d + 1] = -d * 2.0**-1022
    whole = np.empty(n_nodes, dtype=np.int64)
    leaves = np.empty(n_nodes, dtype=np.int64)
    n_whole, n_leaves = _walk(packed, left, start, stop, w0, w1, t, whole, leaves, counts)
    need = 0
    for i in range(n_whole):
        need += stop[whole[i]] - start[whole[i]]
    products = 0
    for i in range(n_leaves):
        products += stop[leaves[i]] - start[leaves[i]]
    counts[3] += products
    if at + need + products > len(out):  # grow: at least double
        grown = np.empty(max(2 * len(out), at + need + products), dtype=out.dtype)
        grown[:at] = out[:at]
        out = grown
    end = at
    for i in range(n_whole):
        node = whole[i]
        for j in range(start[node], stop[node]):
            out[end] = _id(low, high, j)
            end += 1
    a32 = a.astype(np.float32)
    fixed = 2 * d * TINY32 + 2.0**-52 * abs(t)
    for i in range(n_leaves):
        node = leaves[i]
        if use32:
            rad = packed[node, 2 * d]
            band = slack32 * rad + ETA32 * rad + fixed
            floor32 = _below32(t - band)
            ceil32 = _above32(t + band)
            for j in range(start[node], stop[node]):
                s = np.float32(0.0)
                for k in range(d):
                    s += a32[k] * rows[j, k]
                if s < floor32:
                    continue
                if s < ceil32:  # in the band: decided in float64
                    s64 = 0.0
                    for k in range(d):
                        s64 += a[k] * np.float64(rows[j, k])
                    if s64 < t:
                        continue
                out[end] = _id(low, high, j)
                end += 1
        else:
            for j in range(start[node], stop[node]):
                s64 = 0.0
                for k in range(d):
                    s64 += a[k] * np.float64(rows[j, k])
                if s64 >= t:
                    out[end] = _id(low, high, j)
                    end += 1
    return out, end


@_jit
def _query_many(packed, left, start, stop, rows, low, high, A, t, margin, use32, sort
                ):  # pragma: no cover
    """Every row of A in turn (``_query``): the CSR ``(indptr, ids)`` and the counters (m, 4)."""
    m = A.shape[0]
    indptr = np.zeros(m + 1, dtype=np.int64)
    counts = np.zeros((m, 4), dtype=np.int64)
    out = np.empty(1024, dtype=np.int64)
    end = 0
    for i in range(m):
        max_a = 0.0
        for k in range(A.shape[1]):
            max_a = max(max_a, abs(A[i, k]))
        out, stop_at = _query(packed, left, start, stop, rows, low, high, A[i], t[i],
                              margin * max_a, use32[i], out, end, counts[i])
        if sort:
            out[end:stop_at].sort()
        end = stop_at
        indptr[i + 1] = end
    return indptr, out[:end], counts


class CompiledKDTree(NumpyKDTree):
    """``NumpyKDTree`` walked by compiled loops (``backend="compiled"``): the same tree, ids
    and counters; a lone query is one call instead of about 200 NumPy calls.

    Ids take 3 bytes when they are below 2^24 (``low`` uint16 plus ``high`` uint8), else
    int32 or int64: with float32 keys the index is then at most about 1.5x the keys at d = 2
    (points 1x, ids 0.375x, nodes about 0.12x with 128-point leaves).
    """

    name = "compiled"

    def __init__(self, points: np.ndarray, ids: np.ndarray, leaf_size: int) -> None:
        if not AVAILABLE:
            raise ImportError("backend 'compiled' needs Numba: pip install 'hsr_lab[fast]'")
        super().__init__(points, ids, leaf_size)

    def _store_ids(self, tree_ids: np.ndarray, n: int) -> None:
        """Ids in tree order as ``low + 2^16 high`` (uint16, uint8) when they fit in 24 bits."""
        self._n = n
        if len(tree_ids) and 0 <= tree_ids.min() and tree_ids.max() < 2**24:
            self._low = (tree_ids & 0xFFFF).astype(np.uint16)
            self._high = (tree_ids >> 16).astype(np.uint8)
        else:
            self._low, self._high = compact_ids(tree_ids), np.zeros(0, dtype=np.uint8)
        self._id_arrays = (self._low, self._high)

    @property
    def ids(self) -> np.ndarray:
        """The ids in tree order (a fresh array, int32 when they fit: read back as int64)."""
        if not len(self._high):
            return self._low[:self._n]
        return compact_ids(self._low[:self._n] | (self._high[:self._n].astype(np.int32) << 16))

    def query(self, a: np.ndarray, t: float) -> tuple[np.ndarray, QueryStats]:
        """Ids of every point with ``<a, x> >= t`` (in no particular order) and the cost."""
        a = np.ascontiguousarray(a, dtype=np.float64)
        counts = np.zeros(_COUNTERS, dtype=np.int64)
        out, end = _query(self._packed, self.left, self.start, self.stop, self._rows,
                          self._low, self._high, a, float(t), margin32(self.d) * abs_max(a),
                          self._float32_for(a[None, :]), _NO_IDS, 0, counts)
        return out[:end], QueryStats(*counts.tolist(), end)

    def query_many(self, A: np.ndarray, t: np.ndarray | float, sort: bool = True
                   ) -> tuple[np.ndarray, np.ndarray, BatchQueryStats]:
        """``query(A[i], t[i])`` for the m rows of A in one compiled loop: ``(indptr, ids,
        stats)``, row i's ids ascending if ``sort``, else in ``query``'s order."""
        A = np.ascontiguousarray(A, dtype=np.float64)
        m = len(A)
        t = np.ascontiguousarray(np.broadcast_to(np.asarray(t, dtype=np.float64), (m,)))
        use32 = self._float32_rows(A)
        indptr, found, counts = _query_many(self._packed, self.left, self.start, self.stop,
                                            self._rows, self._low, self._high, A, t,
                                            margin32(self.d), use32, sort)
        stats = BatchQueryStats(*(counts[:, k].copy() for k in range(_COUNTERS)),
                                np.diff(indptr))
        return indptr, found, stats

    def _float32_rows(self, A: np.ndarray) -> np.ndarray:
        """Per row of A, whether it scores float32 points in float32 (``float32_safe``)."""
        if self.points.dtype != np.float32:
            return np.zeros(len(A), dtype=np.bool_)
        largest = np.abs(A).max(axis=1, initial=0.0)
        return np.array([float32_safe(self.d, x, self._max_abs) for x in largest.tolist()],
                        dtype=np.bool_)


_NO_IDS = np.zeros(0, dtype=np.int64)  # a lone query's output starts empty and grows once

# The fastest kd-tree installed, the one "auto" races and attention's "auto" builds: the
# compiled walk where Numba is installed, else the NumPy one (same ids and counters).
TREE: type[NumpyKDTree] = CompiledKDTree if AVAILABLE else NumpyKDTree
