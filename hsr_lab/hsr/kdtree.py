"""The vectorised twin: the kd-tree of ``reference.py``, built and queried with whole-array NumPy.

Readable twin: ``hsr_lab.hsr.reference.ReferenceKDTree`` (same splits, same tie rule, same
bounds ``upper`` and ``lower`` of a box, same three cases under the same banners, same
outcomes ``pruned`` / ``reported`` / ``scanned`` / ``opened``, same counters). The steps carry
the reference's names (the table in ``reference.py``): ``_weights`` (every query's weight
rows), ``NumpyKDTree._bounds`` (both bounds of many (query, node) pairs), ``NumpyKDTree._walk``
(the cases, decided a step at a time in ``NumpyKDTree._step``), ``NumpyKDTree._scan`` (the
points of scanned leaves) and ``NumpyKDTree._run`` (a whole batch: the walk, then
``NumpyKDTree._report``). What changes is only how the work is organised:

- the fields of ``Node`` (``_base.py``, shared with ``reference.py``) become one array per
  field, one row per node in breadth-first order: ``center``, ``half``, ``rad``, ``start``,
  ``stop``, ``left`` and ``right`` (children are adjacent, so ``right = left + 1``; both are
  -1 at a leaf); one level of the tree is one contiguous block of rows;
- the points and ids are stored permuted so that every subtree owns the rows ``start:stop``;
- a query walks the tree a step of one or more levels at a time. Down to the shallowest leaf
  every level is full, so its rows are in heap order (the children of row r are 2r + 1 and
  2r + 2) and the nodes ``span`` levels below a frontier are found by arithmetic: a step tests
  every node of those subtrees in one product (the box bound of a node does not depend on the
  path to it), then keeps the nodes the reference visits, those with no pruned or reported
  ancestor in the step. A step costs about 25 NumPy calls whatever its span, and a single
  query's walk is overhead-bound (a few thousand nodes), so a step tests up to
  ``_STEP_PAIRS`` nodes, which may be several times the nodes visited;
- nodes ``reported`` whole become id ranges without inner products, and only the points of
  ``scanned`` leaves are scored: each leaf is read as a window of contiguous rows (a view of
  the points from its first row, as wide as the widest leaf), one copy per leaf, one product;
- ``query_many`` walks a batch of queries together: the frontier is a set of (query, node)
  pairs, so one step costs the same few NumPy calls for the whole batch, and ``query`` is the
  batch of one. The box bounds use ``einsum`` in both, so the walk and its counters are the
  same bit for bit; a lone query scores its leaves with one BLAS product, a batch with a stack
  of matrix-vector products (one per leaf window). The two round differently, but a score
  decides only outside its proven band around t and the points inside are settled exactly
  (``numerics``, ``exact.at_least``), so the ids are the same, and the reference's.
  Found nodes are listed by (query, node), so the order of the ids does not depend on how
  the levels were grouped into steps.

Points keep their dtype. float32 points are stored as float32 (ids, and the node arrays
``start``, ``stop`` and ``left``, as int32 when they fit: the index is about 1.34x the float32
keys at d = 4 and 1.62x at d = 2, where points and ids alone take 1.5x) and the points of scanned
leaves are scored in float32, decided outside ``numerics.band32`` of t and settled exactly
inside it (float64 points: ``numerics.band64``), so the answer is the exact predicate of
``numerics`` on the stored values, as the reference computes it. The box bounds stay in
float64 for either dtype.

Building splits every node of a level at once: the values of each node's split coordinate are
laid out as the rows of a padded matrix and ``np.argpartition`` finds every median in one call,
so the build costs O(n) NumPy work per level, O(n log n) in all. The points move with the
permutation at every level (each node's rows stay contiguous, so reads are local), and a level
whose nodes all have one size (n a power of two) is the points reshaped, without padding. As
in the reference, a node is split on the widest side of its cell (its parent's cell, cut at the
median), points are ordered by (coordinate, input row) so that ties split the same way in both
twins, and the query uses the tight box of the node's points.
"""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ._base import Node
from ._stats import BatchQueryStats, QueryStats
from ._storage import compact_ids, key_dtype
from .csr import concat_rows, indptr_of, ranges, sort_rows
from .exact import at_least
from .numerics import (
    ETA,
    above32,
    abs_max,
    band32,
    band64,
    below32,
    box_floor,
    float32_safe,
    margin,
)

_BLOCK = 1 << 17  # floats in one temporary of a walk (1 MiB): products are taken in slices
_PAIRS = 1 << 22  # (query, node) pairs a batch may hold: bounds how many queries walk together
_MAX_BATCH = 4096  # queries walked together at most
_SCAN_BLOCK = 1 << 19  # floats of leaf rows a lone query scores at once (2 MiB)
_STEP_PAIRS = 4096  # (query, node) pairs one step of the walk tests, unless one level holds more
_MAX_SPAN = 6  # levels below the frontier that one step takes at most
_BOTH = np.array([0, 1])  # a node's children: left + 0 and right = left + 1
_FEW_RANGES = 256  # up to this many ranges, slices beat building an index array


def _dots(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Inner products along the last axis, ``<X_r, Y_r>`` (Y broadcast against X): the box
    bounds, where each row has its own query vector (``np.einsum``, the same bits alone and in
    a batch)."""
    return np.einsum("...k,...k->...", X, Y)


def _scores(X: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``<x, a>`` over the rows x of X (..., d): one BLAS product for one vector a (d,), and for
    one vector per leading index (a (f, d) against X (f, ..., d)) a stack of f matrix-vector
    products (``np.matmul``: about 3x faster than ``einsum`` over leaf windows at d <= 4)."""
    if a.ndim == 1:
        return X @ a
    rows = X.reshape(len(a), -1, X.shape[-1])  # (f, rows of one window, d)
    return np.matmul(rows, a[:, :, None]).reshape(X.shape[:-1])


def _weights(A: np.ndarray) -> np.ndarray:
    """Each query's two weight rows (c, 2, 2d + 2): ``[a, |a|, relative, absolute]`` and
    ``[a, -|a|, -relative, -absolute]``, with ``relative = margin(d) max_i |a_i|`` and
    ``absolute = numerics.box_floor(d, max_i |a_i|)``, the two parts of the guard
    (``reference._weights``; see ``NumpyKDTree._bounds``)."""
    c, d = A.shape
    out = np.empty((c, 2, 2 * d + 2))
    out[:, :, :d] = A[:, None, :]
    np.abs(A, out=out[:, 0, d:2 * d])
    np.negative(out[:, 0, d:2 * d], out=out[:, 1, d:2 * d])
    max_a = out[:, 0, d:2 * d].max(axis=1)
    relative = margin(d) * max_a  # no squares: valid at every scale
    out[:, 0, 2 * d], out[:, 1, 2 * d] = relative, -relative
    absolute = box_floor(d, max_a)
    out[:, 0, -1], out[:, 1, -1] = absolute, -absolute
    return out


@cache
def _subtree(span: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A complete subtree of ``span`` levels below its root, in heap order: column
    ``p = 2^j - 1 + k`` is the k-th node j levels down. Returns ``scale = 2^j`` and
    ``shift = k - 1``, so that the node in column p below row r is row ``(r + 1) 2^j - 1 + k``
    (in a level-order tree whose levels are all full), and ``above`` (p, p) in float32, 1 where
    the row is a proper ancestor of the column."""
    level = np.repeat(np.arange(span + 1), 1 << np.arange(span + 1))
    column = np.arange(len(level))
    scale = 1 << level
    above = np.zeros((len(level), len(level)), dtype=np.float32)
    for p in column[1:]:  # top-down: a node's ancestors are its parent's and the parent
        parent = (p - 1) // 2
        above[:, p] = above[:, parent]
        above[parent, p] = 1
    return scale, column - scale, above


def _count(queries: np.ndarray, mask: np.ndarray | None, c: int) -> np.ndarray:
    """Per query (0..c-1), how many of the pairs ``mask`` selects (all of them if None).

    A batch of one counts without ``queries`` (which then holds the nodes).
    """
    if c == 1:
        return np.array([len(queries) if mask is None else np.count_nonzero(mask)])
    return np.bincount(queries if mask is None else queries[mask], minlength=c)


def _slices(values: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """``values[starts[i]:stops[i]]`` for every i, concatenated: a slice per range when there
    are few (a lone query's nodes), one gather of ``ranges`` otherwise."""
    if len(starts) > _FEW_RANGES:
        return np.take(values, ranges(starts, stops - starts), axis=0)
    parts = [values[s:e] for s, e in zip(starts.tolist(), stops.tolist(), strict=True)]
    return np.concatenate(parts) if parts else values[:0]


def _per_query(values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """``values[queries]``; for a batch of one, ``values[0]`` (broadcast: no gather)."""
    return values[0] if len(values) == 1 else np.take(values, queries, axis=0)


class _NodeCounts(NamedTuple):
    """Per query of a batch, the nodes the walk visited, pruned and reported whole."""

    nodes_visited: np.ndarray
    nodes_pruned: np.ndarray
    nodes_reported: np.ndarray


class _LevelSplitter:
    """Splits every node of one level at once; holds ``perm`` (tree order -> input row) and
    ``tree`` (the points in tree order: row j is input row ``perm[j]``).

    Both carry one spare entry at the end, where the padding of short nodes is parked; ``tree``
    carries ``pad`` >= 1 spare rows (copies of a real row), so that a window of ``pad`` rows
    may start at any point (``NumpyKDTree._windows``). The points move with ``perm`` at every
    level: each node's rows stay contiguous, so reading a split coordinate is a local read
    rather than a random gather over the whole input.
    """

    def __init__(self, points: np.ndarray, pad: int) -> None:
        n = len(points)
        self.tree = np.concatenate([points, np.repeat(points[:1], pad, axis=0)])
        self._tree_next = np.empty_like(self.tree)
        self.perm = np.arange(n + 1, dtype=np.int32 if n < 2**31 else np.int64)
        self.perm[n] = 0  # the spare entry points at some real row
        self._next = np.empty_like(self.perm)
        self._source = np.arange(n + 1, dtype=np.int64)  # identity outside the split nodes
        self._at = np.empty(n + n // 2 + 1, dtype=np.int64)  # a level holds n points + pads
        self._values = np.empty(len(self._at), dtype=points.dtype)

    def split(self, starts: np.ndarray, sizes: np.ndarray, lo: np.ndarray, hi: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Put the lower half of each node first, on the widest coordinate of its cell.

        Nodes at one level differ in size by at most one; node i covers ``perm[s:s + z]`` and
        its cell is ``[lo[i], hi[i]]``. Returns the left sizes ``z // 2`` and the children's
        cells (the cell cut at the median), interleaved: left, right, left, right, ...
        """
        spare = len(self.perm) - 1
        # the widest side, in float64 as the reference measures it (float32 sides near 3.4e38
        # would overflow), the lowest index on ties
        dims = np.argmax(np.subtract(hi, lo, dtype=np.float64), axis=1)
        n_seg, width = len(starts), int(sizes.max())
        short = sizes < width
        # Every node split and all of one size (n a power of two): they tile the rows, so the
        # padded matrix below is the points themselves, reshaped.
        full = n_seg * width == spare
        at, values = (None, self._full_values(n_seg, width, dims)) if full else (
            self._padded_values(starts, short, width, dims))
        left = sizes // 2
        order = np.argpartition(values, np.unique(np.concatenate([left, sizes[short]])), axis=1)
        seg = np.arange(n_seg)
        cut = values[seg, order[seg, left]]  # the median: the smallest value of the right half
        self._break_ties(order, values, starts, short, cut)
        order += starts[:, None]  # position in the node -> position in perm
        if full:
            self._move(order.ravel())
        else:
            order[short, -1] = spare
            self._source[at.ravel()] = order.ravel()
            self._move(self._source)
            self._source[at.ravel()] = at.ravel()  # back to the identity
        child_lo, child_hi = np.repeat(lo, 2, axis=0), np.repeat(hi, 2, axis=0)
        child_hi[2 * seg, dims] = cut
        child_lo[2 * seg + 1, dims] = cut
        return left, child_lo, child_hi

    def _full_values(self, n_seg: int, width: int, dims: np.ndarray) -> np.ndarray:
        """The split coordinate of every point, one row per node, when the nodes tile the rows."""
        block = self.tree[:len(self.perm) - 1].reshape(n_seg, width, -1)
        return np.take_along_axis(block, dims[:, None, None], axis=2)[:, :, 0]

    def _padded_values(self, starts: np.ndarray, short: np.ndarray, width: int, dims: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
        """A padded matrix with one row per node: its positions in perm (then the spare entry
        for a short node), and the split coordinate there (inf at the padding)."""
        spare, d = len(self.perm) - 1, self.tree.shape[1]
        at = self._at[: len(starts) * width].reshape(len(starts), width)
        np.add(starts[:, None], np.arange(width)[None, :], out=at)
        at[short, -1] = spare
        values = self._values[: len(starts) * width].reshape(len(starts), width)
        np.take(self.tree.ravel(), at * d + dims[:, None], out=values)
        values[short, -1] = np.inf  # padding sorts after every real value
        return at, values

    def _move(self, source: np.ndarray) -> None:
        """Row j of perm and of the points becomes row ``source[j]`` (the spare row stays)."""
        m = len(source)
        np.take(self.perm, source, out=self._next[:m])
        np.take(self.tree, source, axis=0, out=self._tree_next[:m])
        self._next[m:], self._tree_next[m:] = self.perm[m:], self.tree[m:]
        self.perm, self._next = self._next, self.perm
        self.tree, self._tree_next = self._tree_next, self.tree

    def _break_ties(self, order: np.ndarray, values: np.ndarray, starts: np.ndarray,
                    short: np.ndarray, cut: np.ndarray) -> None:
        """Where a node holds the median value more than once, order it by (value, input row).

        That is the reference's rule (it sorts by that key), so that tied points go to the same
        child in both twins. ``argpartition`` alone leaves ties in any order; the nodes without
        a tie at the median (all of them on continuous data) keep its O(size) partition.
        """
        equal = values == cut[:, None]  # every node holds its median at least once
        if np.count_nonzero(equal) == len(cut):  # no node holds it twice: no tie to break
            return
        tied = np.flatnonzero(np.count_nonzero(equal, axis=1) > 1)
        if len(tied):
            at = starts[tied, None] + np.arange(values.shape[1])
            at[short[tied], -1] = len(self.perm) - 1  # the spare entry
            rows = self.perm[at]  # input row of every entry (padding sorts last: inf)
            order[tied] = np.lexsort((rows, values[tied]), axis=-1)


class NumpyKDTree:
    """Vectorised kd-tree answering ``<a, x> >= t``; the fast twin of ``ReferenceKDTree``.

    Public names are the reference's, plus the fields of ``Node`` as per-node arrays
    (breadth-first order): ``center`` (nodes, d), ``half`` (nodes, d), ``rad``, ``start``,
    ``stop``, ``left`` and ``right`` (nodes,). ``root`` and ``trace`` return ``Node`` objects
    built from those arrays, so a walk can be read as the reference's.
    """

    name = "numpy"
    ascending = False  # ids come in tree order

    def __init__(self, points: np.ndarray, ids: np.ndarray, leaf_size: int) -> None:
        n, self.d = points.shape
        points = np.asarray(points, dtype=key_dtype(points))
        self.leaf_size = leaf_size
        splitter = _LevelSplitter(points, pad=max(1, min(n, leaf_size)))
        self.start, self.stop, self.left = self._build(splitter)
        self._rows = splitter.tree  # the points in tree order, then at least a leaf of spare rows
        self.points = self._rows[:n]  # row j of the tree is row perm[j] of the input
        perm = np.pad(splitter.perm[:n], (0, len(self._rows) - n))  # spare rows: input row 0
        self._max_abs = float(max(self.points.max(), -self.points.min()))
        leaf_sizes = (self.stop - self.start)[self.left < 0]
        self._leaf_width = w = int(leaf_sizes.max())
        self._uniform = bool(leaf_sizes.min() == w)  # no window reads past its leaf
        # Row j's window: the w points and ids from row j (views), so a leaf is one window.
        row, col = self._rows.strides
        self._windows = as_strided(self._rows, (n, w, self.d), (row, row, col), writeable=False)
        self._store_ids(ids[perm], n)
        first_leaf = int(np.argmax(self.left < 0))
        self._full_depth = int(np.searchsorted(self._level_offsets, first_leaf, side="right")) - 1
        self._packed = self._boxes()
        # Views into the packed rows [center, half, rad, 1] (see _bounds): no copies.
        self.center = self._packed[:, :self.d]
        self.half = self._packed[:, self.d:2 * self.d]
        self.rad = self._packed[:, 2 * self.d]
        # boxes of one point (every half 0: duplicates), decided by their exact score
        self._one_point = ~self.half.any(axis=1)
        self._any_one_point = bool(self._one_point.any())

    def _store_ids(self, tree_ids: np.ndarray, n: int) -> None:
        """Keep the ids in tree order (``tree_ids``: n rows, then the spare rows): int32 when
        they fit, read back as int64, with a window view of ``_leaf_width`` ids from each row
        (as ``_windows`` of the points). ``_id_arrays`` lists what ``nbytes`` counts."""
        self._id_rows = compact_ids(tree_ids)
        self.ids = self._id_rows[:n]
        step = self._id_rows.strides[0]
        self._id_windows = as_strided(self._id_rows, (n, self._leaf_width), (step, step),
                                      writeable=False)
        self._id_arrays: tuple[np.ndarray, ...] = (self._id_rows,)

    @property
    def right(self) -> np.ndarray:
        """Index of each node's right child, ``left + 1`` (children are adjacent), -1 at a leaf."""
        return np.where(self.left >= 0, self.left + 1, -1)

    def _build(self, splitter: _LevelSplitter) -> tuple[np.ndarray, ...]:
        """Split level by level; return each node's start, stop and left child in BFS order."""
        starts, sizes = np.zeros(1, np.int64), np.array([len(splitter.perm) - 1], np.int64)
        points = splitter.tree[:len(splitter.perm) - 1]  # reduceat: faster than min(axis=0)
        lo, hi = np.minimum.reduceat(points, [0], axis=0), np.maximum.reduceat(points, [0], axis=0)
        levels: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        n_nodes = 1  # nodes numbered so far, through the current level
        while len(starts):
            split = sizes > self.leaf_size
            left = np.full(len(starts), -1, dtype=np.int64)
            left[split] = n_nodes + 2 * np.arange(split.sum())
            levels.append((starts, starts + sizes, left))
            n_nodes += 2 * int(split.sum())
            if not split.any():
                break
            s, z = starts[split], sizes[split]
            half, lo, hi = splitter.split(s, z, lo[split], hi[split])
            starts = np.stack([s, s + half], axis=1).ravel()
            sizes = np.stack([half, z - half], axis=1).ravel()
        self._level_offsets = np.cumsum([0] + [len(lv[0]) for lv in levels])
        index = np.int32 if n_nodes < 2**31 else np.int64
        return tuple(np.concatenate(parts).astype(index) for parts in zip(*levels, strict=True))

    def _boxes(self) -> np.ndarray:
        """Tight boxes as packed rows ``[center, half, rad, 1]``: leaves by ``reduceat`` over
        their rows, parents from their children; ``rad = sum_i max(|lo_i|, |hi_i|)``; a half
        0 only where ``lo_i = hi_i`` (``reference._box``)."""
        n_nodes = len(self.start)
        lo = np.empty((n_nodes, self.d))
        hi = np.empty((n_nodes, self.d))
        leaves = np.flatnonzero(self.left < 0)
        leaves = leaves[np.argsort(self.start[leaves], kind="stable")]  # they tile the rows
        lo[leaves] = np.minimum.reduceat(self.points, self.start[leaves], axis=0)
        hi[leaves] = np.maximum.reduceat(self.points, self.start[leaves], axis=0)
        bounds = self._level_offsets
        for first, stop in zip(bounds[-2::-1], bounds[:0:-1], strict=True):  # deepest first
            level = np.arange(first, stop)
            level = level[self.left[level] >= 0]
            left = self.left[level]
            lo[level] = np.minimum(lo[left], lo[left + 1])
            hi[level] = np.maximum(hi[left], hi[left + 1])
        reach = np.maximum(np.abs(lo), np.abs(hi))
        rad = reach[:, 0].copy()
        for i in range(1, self.d):  # summed left to right, as the reference sums it
            rad += reach[:, i]
        half = (hi - lo) / 2
        half[(half == 0) & (hi != lo)] = ETA  # as the reference: h = 0 only for one point
        return np.column_stack([(lo + hi) / 2, half, rad, np.ones(n_nodes)])

    def query(self, a: np.ndarray, t: float) -> tuple[np.ndarray, QueryStats]:
        """Ids of every point with ``<a, x> >= t`` (in no particular order) and the cost."""
        _, found, stats = self._run(a[None, :], np.array([t], dtype=np.float64))
        return found, stats[0]

    def query_many(self, A: np.ndarray, t: np.ndarray | float, sort: bool = True
                   ) -> tuple[np.ndarray, np.ndarray, BatchQueryStats]:
        """``query(A[i], t[i])`` for the m rows of A at once: the ids with ``<A[i], x> >= t[i]``.

        Returns ``(indptr, ids, stats)``: query i found ``ids[indptr[i]:indptr[i + 1]]``,
        ascending (with ``sort=False``: in the order ``query`` returns them); ``stats[i]`` is
        the ``QueryStats`` of ``query(A[i], t[i])``, counter for counter. The queries walk in
        chunks small enough that a level holds at most about ``_PAIRS`` (query, node) pairs.
        """
        m = len(A)
        t = np.broadcast_to(np.asarray(t, dtype=np.float64), (m,))
        step = max(1, min(_MAX_BATCH, _PAIRS // len(self.start)))
        indptrs, ids, stats = [np.zeros(1, dtype=np.int64)], [], [BatchQueryStats.zeros(0)]
        for lo in range(0, m, step):
            indptr, found, cost = self._run(A[lo:lo + step], t[lo:lo + step])
            ids.append(sort_rows(indptr, found) if sort else found)
            indptrs.append(indptr[1:] + indptrs[-1][-1])
            stats.append(cost)
        found = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
        return np.concatenate(indptrs), found, BatchQueryStats.concat(stats)

    def trace(self, a: np.ndarray, t: float) -> list[tuple[Node, str]]:
        """Every node a query visits, with what happened to it: "pruned", "reported" (whole),
        "scanned" (a leaf whose points were tested) or "opened" (recursed into). Step by step
        (the reference lists the same nodes depth-first)."""
        pairs, pruned, reported, scanned = self._walk(np.asarray(a, dtype=np.float64)[None, :],
                                                      np.array([t], dtype=np.float64))
        outcomes = np.select([pruned, reported, scanned], ["pruned", "reported", "scanned"],
                             default="opened")
        nodes = self._nodes()
        return [(nodes[i], str(outcome)) for i, outcome in zip(pairs.tolist(), outcomes,
                                                                 strict=True)]

    @property
    def root(self) -> Node:
        """The tree as linked ``Node`` objects, built from the arrays (to read)."""
        return self._nodes()[0]

    def _nodes(self) -> list[Node]:
        """One ``Node`` per row of the arrays, children linked."""
        nodes = [Node(c, h, r, s, e) for c, h, r, s, e in zip(
            self.center.tolist(), self.half.tolist(), self.rad.tolist(), self.start.tolist(),
            self.stop.tolist(), strict=True)]
        for node, left in zip(nodes, self.left.tolist(), strict=True):
            if left >= 0:
                node.left, node.right = nodes[left], nodes[left + 1]
        return nodes

    def _run(self, A: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, BatchQueryStats]:
        """The c queries (A[i], t[i]) together, whole: the walk, then the CSR ``(indptr, ids)``
        of what each query found (ids grouped by query) and the counters."""
        c = len(A)
        pairs, pruned, reported, scanned = self._walk(A, t)
        queries = pairs // len(self.start) if c > 1 else pairs
        visits = _NodeCounts(nodes_visited=_count(queries, None, c),
                             nodes_pruned=_count(queries, pruned, c),
                             nodes_reported=_count(queries, reported, c))
        found = reported | scanned
        return self._report(A, t, pairs[found], scanned[found], visits)

    def _walk(self, A: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, ...]:
        """Every (query, node) pair the walk visits and its outcome: ``ReferenceKDTree._walk``
        for many pairs at a time, a step of one or more levels at a time (``_step``).

        Returns ``(pairs, pruned, reported, scanned)`` (the other pairs were opened). A pair is
        coded ``query * nodes + node`` in one array (just ``node`` for a batch of one).
        """
        c, n_nodes = len(A), len(self.start)
        weights = _weights(A)
        pairs, depth = np.arange(c) * n_nodes, 0  # every query at the root
        steps = []
        while len(pairs):  # ends as soon as no pair was opened
            span = self._span(depth, len(pairs))
            tested, pairs = self._step(pairs, span, weights, t)
            steps.append(tested)
            depth += span + 1
        codes, visited, *outcomes = map(np.concatenate, zip(*steps, strict=True))
        at = np.flatnonzero(visited)
        return codes[at], *(outcome[at] for outcome in outcomes)

    def _span(self, depth: int, frontier: int) -> int:
        """How many levels below the frontier (``frontier`` pairs at ``depth``) one step takes:
        as many as keep it within ``_STEP_PAIRS`` pairs and ``_MAX_SPAN`` levels, and within
        the full top levels (``0 .. _full_depth``), where descendants are found by arithmetic."""
        fit = (_STEP_PAIRS // frontier + 1).bit_length() - 2  # subtrees of 2^(span+1) - 1 nodes
        return max(0, min(fit, _MAX_SPAN, self._full_depth - depth))

    def _step(self, pairs: np.ndarray, span: int, weights: np.ndarray, t: np.ndarray
              ) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        """Test every node of the subtrees ``span`` levels deep below the frontier ``pairs`` in
        one product; return every pair tested with its flags ``(pairs, visited, pruned,
        reported, scanned)`` and the next frontier, the children of the pairs opened on the
        step's last level.

        The reference visits a node iff it opened every ancestor, and above the step's last
        level every node has children, so a node is visited iff no ancestor in the step was
        decided (pruned or reported). The box test of a node does not depend on the path to
        it, so the outcomes, and the counters, are the level-by-level walk's.
        """
        c, n_nodes = len(weights), len(self.start)
        scale, shift, above = _subtree(span)
        nodes = pairs % n_nodes if c > 1 else pairs
        below = np.multiply.outer(nodes + 1, scale)
        below += shift  # (frontier, subtree) rows: the full levels are in heap order
        queries = np.repeat(pairs // n_nodes, len(scale)) if c > 1 else below.ravel()
        bounds = self._bounds(queries, below.ravel(), weights).reshape(*below.shape, 2)
        upper, lower = bounds[..., 0], bounds[..., 1]
        limit = t[0] if c == 1 else t[pairs // n_nodes, None]
        # Case 1: upper < t, every point of the box is below t: pruned
        pruned = upper < limit
        # Case 2: lower >= t, every point of the box is at least t: reported whole
        reported = lower >= limit
        decided = pruned | reported
        visited = (decided.astype(np.float32) @ above) == 0  # no decided ancestor
        undecided = visited > decided
        if self._any_one_point:  # a box of one point within its guard of t: its exact score
            # decides, pruned or reported whole (``reference.ReferenceKDTree._walk``)
            one = np.flatnonzero(undecided.ravel() & np.take(self._one_point, below.ravel()))
            if len(one):
                inside = self._exact_one_points(one, below, pairs, weights, t)
                pruned.flat[one], reported.flat[one] = ~inside, inside
                decided = pruned | reported
                visited = (decided.astype(np.float32) @ above) == 0
                undecided = visited > decided
        # Case 3: neither: a leaf is scanned point by point, an inner node opened
        leaf = np.take(self.left, below) < 0
        scanned = undecided & leaf
        codes = below if c == 1 else below + (pairs - nodes)[:, None]
        tested = tuple(x.ravel() for x in (codes, visited, pruned, reported, scanned))
        last = slice(len(scale) - (1 << span), None)  # the step's last level
        opened = (undecided > leaf)[:, last]
        rows = below[:, last][opened]
        left = np.take(self.left, rows)
        down = left if c == 1 else codes[:, last][opened] + (left - rows)  # (query, left child)
        return tested, np.add.outer(down, _BOTH).ravel()  # the left and the right child

    def _exact_one_points(self, flat: np.ndarray, below: np.ndarray, pairs: np.ndarray,
                          weights: np.ndarray, t: np.ndarray) -> np.ndarray:
        """``<a, c> >= t`` exactly for the boxes of one point at the flat positions ``flat`` of
        a step's (frontier, subtree) grid ``below``: c the box's centre (its every point), a
        and t its query's (``exact.at_least``)."""
        nodes = below.ravel()[flat]
        if len(weights) == 1:
            return at_least(self.center[nodes], weights[0, 0, :self.d], t[0])
        queries = pairs[flat // below.shape[1]] // len(self.start)
        return at_least(self.center[nodes], weights[queries, 0, :self.d], t[queries])

    def _bounds(self, queries: np.ndarray, nodes: np.ndarray, weights: np.ndarray
                ) -> np.ndarray:
        """The bounds ``upper`` and ``lower`` (f, 2) of each (query, node), as
        ``reference._bounds``: ``mid + spread + guard`` and ``mid - spread - guard``, where
        ``mid = <center, a>``, ``spread = <half, |a|>`` and ``guard = relative rad + absolute``.

        Packed: the node's row ``[center, half, rad, 1]`` times the query's weight rows
        ``[a, |a|, relative, absolute]`` and ``[a, -|a|, -relative, -absolute]`` (``_weights``)
        is ``upper`` and ``lower``: both bounds in one einsum.
        """
        step = max(1, _BLOCK // weights[0].size)
        if len(nodes) <= step:  # the usual case: one product
            # einsum for one query too: the bounds, and so the counters, come out bit for bit
            # the same alone and in a batch (a BLAS product may sum in another order).
            return _dots(np.take(self._packed, nodes, axis=0)[:, None, :],
                         _per_query(weights, queries))
        return np.concatenate([self._bounds(queries[lo:lo + step], nodes[lo:lo + step], weights)
                               for lo in range(0, len(nodes), step)])

    def _report(self, A: np.ndarray, t: np.ndarray, pairs: np.ndarray, scanned: np.ndarray,
                visits: _NodeCounts) -> tuple[np.ndarray, np.ndarray, BatchQueryStats]:
        """Ids of the nodes reported whole, then of the points of scanned leaves that pass.

        ``pairs`` are the (query, node) codes found; ``visits`` the per-query nodes visited,
        pruned and reported. The pairs are sorted first (by query, then node: a sort of the
        pairs, not of the ids), so that both kinds of ids come out grouped by query, in an
        order that does not depend on how the walk grouped its levels into steps.
        """
        c = len(A)
        order = np.argsort(pairs)
        pairs, scanned = pairs[order], scanned[order]
        queries, nodes = np.divmod(pairs, len(self.start)) if c > 1 else (pairs, pairs)
        whole, leaves = nodes[~scanned], nodes[scanned]
        leaf_sizes = self.stop[leaves] - self.start[leaves]
        hit_ids, hits = self._scan(A, t, queries[scanned], leaves)
        if c == 1:  # a single query: nothing to group
            whole_ids = _slices(self.ids, self.start[whole], self.stop[whole])
            found = np.concatenate([whole_ids, hit_ids], dtype=np.int64)
            indptr = np.array([0, len(found)])
            products = np.array([leaf_sizes.sum()])
        else:
            whole_sizes = self.stop[whole] - self.start[whole]
            whole_ids = _slices(self.ids, self.start[whole], self.stop[whole])
            whole_counts = np.bincount(queries[~scanned], weights=whole_sizes, minlength=c)
            hit_counts = np.bincount(queries[scanned], weights=hits, minlength=c)
            indptr, found = concat_rows([(indptr_of(whole_counts.astype(np.int64)), whole_ids),
                                         (indptr_of(hit_counts.astype(np.int64)), hit_ids)])
            products = np.bincount(queries[scanned], weights=leaf_sizes, minlength=c)
        return indptr, found, BatchQueryStats(**visits._asdict(),
                                              inner_products=products.astype(np.int64),
                                              points_reported=np.diff(indptr))

    def _scan(self, A: np.ndarray, t: np.ndarray, queries: np.ndarray, leaves: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
        """Score the points of each scanned (query, leaf) pair: the ids of those that pass, and
        (for a batch) how many per pair. A leaf's points and ids are gathered as its windows
        (``_windows``: as many rows as the widest leaf holds, those past the leaf dropped),
        copies of contiguous rows, and each query's vector is gathered once per leaf, not once
        per point. Scores decide outside their band around t, the points inside it are settled
        exactly (``_hits``). The counters count a leaf's own points, as the reference does;
        the rows of a window past a narrower leaf are scored too and dropped, so the products
        computed exceed ``inner_products`` by up to ``widest leaf - leaf size`` per leaf."""
        c, w, float32 = len(A), self._leaf_width, self._float32_for(A)
        step = max(1, (_BLOCK if c > 1 else _SCAN_BLOCK) // (w * self.d))
        found, hits = [self.ids[:0]], [np.zeros(0, dtype=np.int64)]
        for lo in range(0, len(leaves), step):
            chunk, who = leaves[lo:lo + step], queries[lo:lo + step]
            starts = self.start[chunk]
            points = self._windows[starts]  # (leaves, w, d)
            a, limit = (A[0], t[0]) if c == 1 else (A[who], t[who, None])
            at = self._hits(points, a, limit, chunk, float32)  # positions in the grid
            if not self._uniform:  # drop the rows past each leaf
                inside = np.arange(w) < (self.stop[chunk] - starts)[:, None]
                at = at[inside.ravel()[at]]
            found.append(self._id_windows[starts].ravel()[at])
            if c > 1:
                hits.append(np.bincount(at // w, minlength=len(chunk)))
        return np.concatenate(found), np.concatenate(hits)

    def _float32_for(self, A: np.ndarray) -> bool:
        """Whether these queries score float32 points in float32 (``numerics.float32_safe``)."""
        return self.points.dtype == np.float32 and float32_safe(
            self.d, abs_max(A.ravel()), self._max_abs)

    def _hits(self, points: np.ndarray, a: np.ndarray, t: np.ndarray | float,
              leaves: np.ndarray, float32: bool) -> np.ndarray:
        """Flat positions in the grid of leaf windows (f, w, d) where ``<a, x> >= t``: scores
        (float32 if ``float32``, else float64) decide outside their band of t
        (``numerics.band32`` or ``band64``), the few points inside it are settled exactly
        (``exact.at_least``). For one query (a (d,), t a float) one band, from the largest
        ``rad`` of the leaves; for one query per window (a (f, d), t (f, 1)) one band per pair."""
        one, bound = a.ndim == 1, band32 if float32 else band64
        if one:  # scalars: no arrays to build
            band = bound(self.d, abs_max(a), float(self.rad[leaves].max()), t)
        else:
            band = bound(self.d, np.abs(a).max(axis=1, keepdims=True), self.rad[leaves, None], t)
        if float32:
            scores = _scores(points, a.astype(np.float32))
            low, high = below32(t - band), above32(t + band)
        else:
            scores, low, high = _scores(points, a), t - band, t + band
        near = np.flatnonzero(scores >= low)  # at or above the band's floor
        if not float32 and np.count_nonzero(scores >= high) == len(near):
            return near  # no float64 score in the band (the band is a few ulps): the usual case
        w = points.shape[1]
        sure = scores.ravel()[near] >= (high if one else high[near // w, 0])
        unsure = np.flatnonzero(~sure)
        if len(unsure):  # the few points in the band: settled exactly
            leaf, offset = np.divmod(near[unsure], w)
            sure[unsure] = at_least(points[leaf, offset], a if one else a[leaf],
                                    t if one else t[leaf, 0])
        return near[sure]

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """All stored points and their ids, in tree order."""
        return self.points, self.ids.astype(np.int64)

    def __len__(self) -> int:
        return len(self.points)

    @property
    def depth(self) -> int:
        """Length of the longest root-to-leaf path (levels below the root)."""
        return len(self._level_offsets) - 2

    @property
    def nbytes(self) -> int:
        """Bytes of every array the tree holds (its copy of the points included)."""
        arrays = (self._rows, *self._id_arrays, self.start, self.stop, self.left, self._packed)
        return sum(arr.nbytes for arr in arrays)

    def __repr__(self) -> str:
        return (f"NumpyKDTree(n={len(self)}, d={self.d}, leaf_size={self.leaf_size}, "
                f"nodes={len(self.start)}, depth={self.depth})")
