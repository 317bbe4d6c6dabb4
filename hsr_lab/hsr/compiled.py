"""The compiled twin: ``NumpyKDTree``'s tree, walked by Numba-compiled loops.

Same tree (the NumPy build, the same arrays), same bounds ``upper`` and ``lower``, same three
cases under the same banners, same outcomes and counters as ``reference.py`` and
``kdtree.py``; what changes is only who runs the walk. The steps carry the reference's names
(the table in ``reference.py``): ``_weights``, ``_bounds``, ``_walk``, ``_scan`` and ``_run``
(``_run_many`` for a batch). (A box bound is a sum of 2d + 2 products, summed left to right
here, by ``einsum`` in NumPy and as ``mid + spread + guard`` in the reference: if t lies
within a rounding of a box bound, one twin may decide a node that another opens, so the
counters may differ there, never the ids, since every box decision is widened by the guard;
likewise at a box of one point out of ``exact.at_least_jit``'s range, which this walk leaves
to Case 3 where the twins decide it by its exact score.
Points are scored left to right, as in the reference, and a score within its band of t is
settled exactly, so the ids are the exact predicate of ``numerics``, as in every twin.) A
NumPy walk costs about 200 NumPy calls per query, 2-3 us each once a scan has flushed the
caches, and at n = 2^22, d = 2 that overhead is most of a tree query
(``benchmarks/results/profile_walk.md``). Here one call walks the tree depth first with an
explicit stack, in machine code:

- ``_bounds``: a node's two bounds are ``<[center, half, rad, 1], w0>`` and ``<..., w1>`` with
  the query's weight rows ``w0 = [a, |a|, relative, absolute]``, ``w1 = [a, -|a|, -relative,
  -absolute]`` (``_weights``): ``upper`` (Case 1, pruned, if below t) and ``lower`` (Case 2,
  reported whole, if at least t); otherwise (Case 3) a leaf is scanned and an inner node
  opened (``_walk``);
- nodes reported whole become their rows' ids (``ids[start:stop]``), without inner products;
- ``_scan``: a scanned leaf scores its points: float32 points in float32,
  ``s32 = fl32(<fl32(a), x>)`` summed in whatever order the compiler vectorises (the band
  holds for any order, FMA too), decided outside the leaf's ``numerics.band32`` of t and
  rescored in float64 inside it; float64 points in float64. A float64 score within the leaf's
  ``numerics.band64`` of t is settled exactly (``exact.at_least_jit``), so the answer is the
  exact predicate of ``numerics``. A query with a pair out of that function's range (rare:
  coordinates more than 2^480 apart) is answered again by the exact scan over the tree's
  arrays, in Python (``CompiledKDTree._brute``).

Numba is optional (``pip install 'hsr_lab[fast]'``; ``make test`` and ``make bench`` install
it, ``make lab`` does not: llvmlite alone is about 170 MB). ``AVAILABLE`` says whether it
imported; without it ``backend="compiled"`` raises and ``auto`` races the NumPy tree instead.
The first query for each combination of point and id dtypes compiles the loops (a few seconds),
cached on disk afterwards in a folder named after the source of this file and of every module
it imports (``_kernel_cache``: an edit of ``numerics`` gives fresh machine code).
"""

from __future__ import annotations

from functools import cache

import numpy as np

from ..optional import require
from ._kernel_cache import cached_njit
from ._stats import BatchQueryStats, QueryStats
from ._storage import compact_ids
from .brute import BruteForce
from .csr import indptr_of
from .exact import at_least_jit
from .kdtree import NumpyKDTree
from .numerics import (
    TINY,
    above32_one,
    band32,
    band64,
    below32_one,
    box_floor,
    float32_safe,
    margin,
)

try:  # optional: the NumPy twin answers the same queries without it
    import numba
except ImportError:  # pragma: no cover - exercised where numba is not installed
    numba = None

AVAILABLE = numba is not None
# Open nodes waiting on the walk's stack: at most depth + 1, and leaves halve, so a tree of n
# points has depth < log2(n) < 64; 256 allows any depth below 255 (checked in __init__).
_STACK = 256
# A query's counters, in QueryStats' order (tests/test_twins.py checks it): counts[_VISITED]...
_COUNTER_NAMES = ("nodes_visited", "nodes_pruned", "nodes_reported", "inner_products")
_VISITED, _PRUNED, _REPORTED, _PRODUCTS = range(len(_COUNTER_NAMES))
_NO_IDS = np.zeros(0, dtype=np.int64)  # a lone query's output starts empty and grows once


def _jit(fn):
    """``numba.njit(cache=True)`` (``_kernel_cache``: cached per version of the sources) when
    Numba is installed; the plain function otherwise."""
    return cached_njit(fn, nogil=True) if AVAILABLE else fn


def _jit_reassociated(fn):
    """``_jit`` allowing the compiler to reorder and fuse a float32 sum (vector lanes, FMA):
    ``numerics.band32`` holds for any order of the float32 sum, FMA included."""
    if not AVAILABLE:
        return fn
    return cached_njit(fn, nogil=True, fastmath={"reassoc", "contract"})


@_jit
def _weights(a):  # pragma: no cover
    """The query's two weight rows, ``[a, |a|, relative, absolute]`` and ``[a, -|a|,
    -relative, -absolute]`` with ``relative = margin(d) max_i |a_i|`` and ``absolute =
    box_floor(d, max_i |a_i|)``: ``kdtree._weights`` of one query; and ``max_i |a_i|``."""
    d = len(a)
    w = np.empty((2, 2 * d + 2))
    max_a = 0.0
    for k in range(d):
        w[0, k] = w[1, k] = a[k]
        w[0, d + k] = abs(a[k])
        w[1, d + k] = -abs(a[k])
        max_a = max(max_a, abs(a[k]))
    w[0, 2 * d] = margin(d) * max_a
    w[1, 2 * d] = -w[0, 2 * d]
    w[0, 2 * d + 1] = box_floor(d, max_a)
    w[1, 2 * d + 1] = -w[0, 2 * d + 1]
    return w, max_a


@_jit
def _bounds(packed, node, w):  # pragma: no cover
    """The node's ``upper`` and ``lower`` bound, ``mid + spread + guard`` and
    ``mid - spread - guard``: its packed row ``[center, half, rad, 1]`` times the weight rows
    ``w`` (``NumpyKDTree._bounds``), summed left to right."""
    upper = 0.0
    lower = 0.0
    for k in range(packed.shape[1]):
        upper += packed[node, k] * w[0, k]
        lower += packed[node, k] * w[1, k]
    return upper, lower


@_jit
def _one_point(packed, node, d):  # pragma: no cover
    """Whether the node's box is one point: every half-width 0 (``reference._one_point``)."""
    for k in range(d, 2 * d):
        if packed[node, k] != 0:
            return False
    return True


@_jit
def _walk(packed, left, w, t, whole, leaves, counts):  # pragma: no cover
    """Depth-first walk from the root, deciding each node by its bounds: the nodes reported
    whole into ``whole``, the leaves to scan into ``leaves``; returns how many of each and
    adds the nodes visited, pruned and reported to ``counts``. A box of one point within its
    guard of t is decided by the exact score of its centre (``exact.at_least_jit``; one out
    of that function's range, rare, is left to Case 3, where only the counters can differ
    from the twins')."""
    d = (packed.shape[1] - 2) // 2
    a = w[0, :d]  # the query: the first d weights
    terms = np.empty(2 * d + 1)  # the exact settle's scratch
    stack = np.empty(_STACK, dtype=np.int64)
    stack[0] = 0
    top, n_whole, n_leaves, visited, pruned = 1, 0, 0, 0, 0
    while top > 0:
        top -= 1
        node = stack[top]
        visited += 1
        upper, lower = _bounds(packed, node, w)
        inside = -1  # a box of one point within its guard of t: its exact score decides
        if lower < t <= upper and _one_point(packed, node, d):
            inside = at_least_jit(packed, node, a, t, terms)
        # Case 1: upper < t, every point of the box is below t: pruned
        if upper < t or inside == 0:
            pruned += 1
        # Case 2: lower >= t, every point of the box is at least t: reported whole
        elif lower >= t or inside == 1:
            whole[n_whole] = node
            n_whole += 1
        # Case 3: neither: a leaf is scanned point by point, an inner node opened
        elif left[node] < 0:
            leaves[n_leaves] = node
            n_leaves += 1
        else:  # opened: the left child is visited first
            stack[top] = left[node] + 1
            stack[top + 1] = left[node]
            top += 2
    counts[_VISITED] += visited
    counts[_PRUNED] += pruned
    counts[_REPORTED] += n_whole
    return n_whole, n_leaves


@_jit
def _id(id_lo, id_hi, j):  # pragma: no cover
    """The id of row j: ``id_lo[j] + 2^16 id_hi[j]``, or ``id_lo[j]`` when ``id_hi`` is empty."""
    if len(id_hi) == 0:
        return np.int64(id_lo[j])
    return np.int64(id_lo[j]) | (np.int64(id_hi[j]) << 16)


@_jit
def _score64(rows, j, a):  # pragma: no cover
    """``fl64(<a, x_j>)``, summed left to right as ``numerics.score`` does."""
    s = 0.0
    for k in range(rows.shape[1]):
        s += a[k] * np.float64(rows[j, k])
    return s


@_jit_reassociated
def _score32(rows, j, a32):  # pragma: no cover
    """``fl32(<a32, x_j>)`` in any order the compiler likes (see ``_jit_reassociated``)."""
    s = np.float32(0.0)
    for k in range(rows.shape[1]):
        s += a32[k] * rows[j, k]
    return s


@_jit
def _settle32(rows, j, a, t, low, high, terms):  # pragma: no cover
    """Whether ``<a, x_j> >= t`` for a point whose float32 score lies in its band: its float64
    score decides outside ``[low, high)`` (the band of ``numerics.band64``), 1 or 0; inside,
    ``exact.at_least_jit`` (-1: left to Python)."""
    s = _score64(rows, j, a)
    if s >= high:
        return 1
    if s < low:
        return 0
    return at_least_jit(rows, j, a, t, terms)


@_jit
def _scan(packed, start, stop, rows, id_lo, id_hi, leaves, n_leaves, a, t, max_a, use32, out,
          end):  # pragma: no cover
    """The ids of the scanned leaves' points with ``<a, x> >= t``, written to ``out[end:]``;
    returns the new end and how many points could not be settled here (``open_``).

    Float32 points (``use32``) are scored in float32 and decided against the leaf's float32
    band ``[below32(t - band), above32(t + band))``, ``band = band32(d, max|a|, rad, t)``:
    below it out, above it in, inside settled from float64 (``_settle32``). Float64 scores are
    decided outside the leaf's ``band64`` of t and settled exactly inside it
    (``exact.at_least_jit``), which returns -1 for a pair out of its range."""
    d = rows.shape[1]
    open_ = 0  # a count, not a list: an array grown inside this loop slows every point
    terms = np.empty(2 * d + 1)  # the exact settle's scratch, allocated once per query
    a32 = a.astype(np.float32)
    for i in range(n_leaves):
        node = leaves[i]
        band = band64(d, max_a, packed[node, 2 * d], t)
        low, high = t - band, t + band
        if use32:
            band = band32(d, max_a, packed[node, 2 * d], t)
            low32, high32 = below32_one(t - band), above32_one(t + band)
        for j in range(start[node], stop[node]):
            # the common cases inline; a call (which may allocate) only for the rare band point
            if use32:
                s32 = _score32(rows, j, a32)
                if s32 >= high32:
                    inside = 1
                elif s32 < low32:
                    inside = 0
                else:
                    inside = _settle32(rows, j, a, t, low, high, terms)
            else:
                s = _score64(rows, j, a)
                if s >= high:
                    inside = 1
                elif s < low:
                    inside = 0
                else:
                    inside = at_least_jit(rows, j, a, t, terms)
            if inside == 1:
                out[end] = _id(id_lo, id_hi, j)
                end += 1
            elif inside == -1:
                open_ += 1
    return end, open_


@_jit
def _run(packed, left, start, stop, rows, id_lo, id_hi, a, t, points32, max_abs, out, at,
         counts):  # pragma: no cover
    """One whole query: the walk, then the ids of the nodes reported whole and of the
    scanned leaves' points that pass (``_scan``), written to ``out[at:]`` (a new, larger
    ``out`` if needed). Returns ``(out, end, open_)`` and adds the query's counters to
    ``counts``; ``open_`` counts the pairs that cannot be settled here (the caller answers
    such a query again, in Python). Float32 points (``points32``) are scored in float32 where
    ``float32_safe(d, max|a|, max_abs)``."""
    w, max_a = _weights(a)
    whole = np.empty(len(left), dtype=np.int64)
    leaves = np.empty(len(left), dtype=np.int64)
    n_whole, n_leaves = _walk(packed, left, w, t, whole, leaves, counts)
    need = 0
    for i in range(n_whole):
        need += stop[whole[i]] - start[whole[i]]
    products = 0
    for i in range(n_leaves):
        products += stop[leaves[i]] - start[leaves[i]]
    counts[_PRODUCTS] += products
    if at + need + products > len(out):  # grow: at least double
        grown = np.empty(max(2 * len(out), at + need + products), dtype=out.dtype)
        grown[:at] = out[:at]
        out = grown
    end = at
    for i in range(n_whole):  # Case 2's nodes: their ids, without an inner product
        for j in range(start[whole[i]], stop[whole[i]]):
            out[end] = _id(id_lo, id_hi, j)
            end += 1
    use32 = points32 and float32_safe(rows.shape[1], max_a, max_abs)
    end, open_ = _scan(packed, start, stop, rows, id_lo, id_hi, leaves, n_leaves, a, t, max_a,
                       use32, out, end)
    return out, end, open_


@_jit
def _run_many(packed, left, start, stop, rows, id_lo, id_hi, A, t, points32, max_abs, sort
              ):  # pragma: no cover
    """Every row of A in turn (``_run``): the CSR ``(indptr, ids)``, each row ascending if
    ``sort``, the counters (m, 4) in ``_COUNTER_NAMES``' order and each row's count of pairs
    left open."""
    m = A.shape[0]
    indptr = np.zeros(m + 1, dtype=np.int64)
    counts = np.zeros((m, len(_COUNTER_NAMES)), dtype=np.int64)
    open_ = np.zeros(m, dtype=np.int64)
    out = np.empty(1024, dtype=np.int64)
    end = 0
    for i in range(m):
        out, stop_at, open_[i] = _run(packed, left, start, stop, rows, id_lo, id_hi, A[i], t[i],
                                      points32, max_abs, out, end, counts[i])
        if sort:
            out[end:stop_at].sort()
        end = stop_at
        indptr[i + 1] = end
    return indptr, out[:end], counts, open_


@_jit
def _rules(d, max_a, rad, t):  # pragma: no cover
    """The ``numerics`` rules as this module's machine code computes them (see ``_fresh``)."""
    band = band32(d, max_a, rad, t)
    return (margin(d), TINY, band, below32_one(t - band), above32_one(t + band),
            float32_safe(d, max_a, rad))


# every kernel, callees first
_KERNELS = (_rules, _weights, _bounds, _one_point, _walk, _id, _score64, _score32, _settle32, _scan,
            _run, _run_many)


@cache  # once per process
def _fresh() -> None:
    """Make sure the machine code in use follows today's ``numerics`` rules.

    Edits of the sources are covered by the cache folder's name (``_kernel_cache``). This
    check covers the rest: machine code compiled while a rule was patched at run time. The first
    tree of a process compares ``_rules`` (cached like the kernels) with the Python rules on a
    sample, and recompiles every kernel if they differ.
    """
    samples = ((5, 0.75, 3.5, 1.25), (5, 1e30, 1e30, 1e39))  # the second: clamps, float64 path
    if any(_rules(*sample) != _rules.py_func(*sample) for sample in samples):
        for kernel in _KERNELS:  # drops their cache files; each compiles afresh when called
            kernel.recompile()


class CompiledKDTree(NumpyKDTree):
    """``NumpyKDTree`` walked by compiled loops (``backend="compiled"``): the same tree, ids
    and counters (up to a rounding at t or at a box bound: module docstring); a lone query is
    one call instead of about 200 NumPy calls. ``trace`` is inherited: it lists the NumPy
    walk's visits, the same nodes.

    Ids take 3 bytes when they are below 2^24 (``low`` uint16 plus ``high`` uint8), else
    int32 or int64: with float32 keys at d = 2 the index is then about 1.5x the keys (points
    1x, ids 0.375x, nodes about 0.12x with full 128-point leaves: 1.49x at n = 2^22; up to
    about 1.6x when the leaves are about half full).
    """

    name = "compiled"

    def __init__(self, points: np.ndarray, ids: np.ndarray, leaf_size: int) -> None:
        require("numba", "fast", "backend 'compiled' (the kd-tree walked by compiled loops)")
        _fresh()
        super().__init__(points, ids, leaf_size)
        self._points32 = self.points.dtype == np.float32
        if self.depth >= _STACK - 1:  # cannot happen: leaves halve, depth <= log2(n) < 64
            raise ValueError(f"a tree of depth {self.depth} overflows the walk's stack")

    def __repr__(self) -> str:
        fields = super().__repr__().partition("(")[2]  # NumpyKDTree's fields, under our name
        return f"{type(self).__name__}({fields}"

    def _store_ids(self, tree_ids: np.ndarray, n: int) -> None:
        """Ids in tree order as ``id_lo + 2^16 id_hi`` (uint16, uint8) when they fit in 24 bits;
        otherwise ``_id_lo`` holds the whole ids (int32 or int64) and ``_id_hi`` is empty."""
        self._n = n
        if len(tree_ids) and 0 <= tree_ids.min() and tree_ids.max() < 2**24:
            self._id_lo = (tree_ids & 0xFFFF).astype(np.uint16)
            self._id_hi = (tree_ids >> 16).astype(np.uint8)
        else:
            self._id_lo, self._id_hi = compact_ids(tree_ids), np.zeros(0, dtype=np.uint8)
        self._id_arrays = (self._id_lo, self._id_hi)

    @property
    def ids(self) -> np.ndarray:
        """The ids in tree order (a fresh array, int32 when they fit: read back as int64)."""
        if not len(self._id_hi):
            return self._id_lo[:self._n].copy()
        return self._id_lo[:self._n] | (self._id_hi[:self._n].astype(np.int32) << 16)

    def __len__(self) -> int:
        return self._n

    def query(self, a: np.ndarray, t: float) -> tuple[np.ndarray, QueryStats]:
        """Ids of every point with ``<a, x> >= t`` (in no particular order) and the cost."""
        if np.shape(a) != (self.d,):
            raise ValueError(f"a must have shape ({self.d},); got {np.shape(a)}")
        a = np.ascontiguousarray(a, dtype=np.float64)
        counts = np.zeros(len(_COUNTER_NAMES), dtype=np.int64)
        out, end, open_ = _run(self._packed, self.left, self.start, self.stop, self._rows,
                                 self._id_lo, self._id_hi, a, float(t), self._points32,
                                 self._max_abs, _NO_IDS, 0, counts)
        found = self._brute().query(a, float(t))[0] if open_ else out[:end]
        return found, QueryStats(*counts.tolist(), len(found))  # in _COUNTER_NAMES' order

    def query_many(self, A: np.ndarray, t: np.ndarray | float, sort: bool = True
                   ) -> tuple[np.ndarray, np.ndarray, BatchQueryStats]:
        """``query(A[i], t[i])`` for the m rows of A in one compiled loop: ``(indptr, ids,
        stats)``, row i's ids ascending if ``sort``, else in ``query``'s order."""
        A = np.ascontiguousarray(A, dtype=np.float64)
        if A.ndim != 2 or A.shape[1] != self.d:
            raise ValueError(f"A must have shape (m, {self.d}); got {A.shape}")
        t_vec = np.ascontiguousarray(np.broadcast_to(np.asarray(t, dtype=np.float64), len(A)))
        indptr, found, counts, open_ = _run_many(
            self._packed, self.left, self.start, self.stop, self._rows, self._id_lo, self._id_hi,
            A, t_vec, self._points32, self._max_abs, bool(sort))
        if open_.any():  # rare: those rows answered again by the exact scan
            indptr, found = self._answer_again(indptr, found, np.flatnonzero(open_), A, t_vec,
                                               sort)
        stats = BatchQueryStats(**{name: counts[:, k].copy()
                                   for k, name in enumerate(_COUNTER_NAMES)},
                                points_reported=np.diff(indptr))
        return indptr, found, stats

    def _brute(self) -> BruteForce:
        """The exact scan over the tree's own arrays (points in tree order, their ids)."""
        return BruteForce.over(self._rows[:self._n], compact_ids(self.ids))

    def _answer_again(self, indptr: np.ndarray, found: np.ndarray, rows: np.ndarray,
                      A: np.ndarray, t: np.ndarray, sort: bool) -> tuple[np.ndarray, np.ndarray]:
        """The CSR answer with the given rows replaced by the exact scan's answers."""
        scan = self._brute()
        answers = [found[indptr[i]:indptr[i + 1]] for i in range(len(A))]
        for i in rows.tolist():
            ids = scan.query(A[i], float(t[i]))[0]
            answers[i] = np.sort(ids) if sort else ids
        counts = np.array([len(ids) for ids in answers], dtype=np.int64)
        return indptr_of(counts), np.concatenate(answers)


# The kd-tree "auto" races and attention's "auto" builds: the compiled walk where Numba is
# installed (the faster one at d <= 4; the two trade places above), else the NumPy one.
TREE: type[NumpyKDTree] = CompiledKDTree if AVAILABLE else NumpyKDTree
