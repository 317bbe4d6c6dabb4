"""The fast path: the kd-tree of ``reference.py``, built and queried with whole-array NumPy.

Readable twin: ``hsr_lab.hsr.reference.ReferenceKDTree`` (same splits, same three-way box test,
same rounding margin). What changes is only how the work is organised:

- the nodes live in flat arrays in breadth-first order (``center``, ``half``, ``rad``,
  ``start``, ``size``, ``child``), so one level of the tree is one contiguous block;
- the points are stored permuted so that every subtree owns a contiguous range of rows;
- a query walks the tree one level at a time: the box test of the whole frontier is two
  matrix-vector products, nodes found inside are reported as id ranges without inner products,
  and only the points of "open" leaves are scored, in one gather and one product.

Building splits every node of a level at once: the values of each node's split coordinate are
laid out as the rows of a padded matrix and ``np.argpartition`` finds every median in one call,
so the build costs O(n) NumPy work per level, O(n log n) in all. As in the reference, a node is
split on the widest side of its cell (its parent's cell, cut at the median), and the query uses
the tight box of the node's points.
"""

from __future__ import annotations

import numpy as np

from ._stats import QueryStats
from .reference import _TINY, _margin


def _ranges(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Concatenate ``arange(s, s + z)`` for every (s, z) with z >= 1, vectorised."""
    if len(sizes) == 0:
        return np.empty(0, dtype=np.int64)
    steps = np.ones(int(sizes.sum()), dtype=np.int64)
    steps[0] = starts[0]
    # At the first slot of each range, jump from the previous range's last value to its start.
    steps[(np.cumsum(sizes) - sizes)[1:]] = starts[1:] - (starts[:-1] + sizes[:-1] - 1)
    return np.cumsum(steps)


class _LevelSplitter:
    """Splits every node of one level at once; holds ``perm`` (tree order -> input row).

    ``perm`` carries one spare entry at the end, where the padding of short nodes is parked.
    Only ``perm`` moves while building; the points are gathered in tree order once, at the end.
    """

    def __init__(self, points: np.ndarray) -> None:
        n = len(points)
        self.points = np.ascontiguousarray(points)
        self.perm = np.arange(n + 1, dtype=np.int64)
        self.perm[n] = 0  # the spare entry points at some real row
        self._next = np.empty_like(self.perm)
        self._source = np.arange(n + 1, dtype=np.int64)  # identity outside the split nodes
        self._at = np.empty(n + n // 2 + 1, dtype=np.int64)  # a level holds n points + pads
        self._values = np.empty(len(self._at))

    def split(self, starts: np.ndarray, sizes: np.ndarray, lo: np.ndarray, hi: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Put the lower half of each node first, on the widest coordinate of its cell.

        Nodes at one level differ in size by at most one; node i covers ``perm[s:s + z]`` and
        its cell is ``[lo[i], hi[i]]``. Returns the left sizes ``z // 2`` and the children's
        cells (the cell cut at the median), interleaved: left, right, left, right, ...
        """
        spare, d = len(self.perm) - 1, self.points.shape[1]
        dims = np.argmax(hi - lo, axis=1)  # the lowest index on ties
        n_seg, width = len(starts), int(sizes.max())
        # A padded matrix with one row per node: its positions in perm, then the spare entry.
        at = self._at[: n_seg * width].reshape(n_seg, width)
        np.add(starts[:, None], np.arange(width)[None, :], out=at)
        short = sizes < width
        at[short, -1] = spare
        values = self._values[: n_seg * width].reshape(n_seg, width)
        np.take(self.points.ravel(), self.perm[at] * d + dims[:, None], out=values)
        values[short, -1] = np.inf  # padding sorts after every real value
        left = sizes // 2
        order = np.argpartition(values, np.unique(np.concatenate([left, sizes[short]])), axis=1)
        seg = np.arange(n_seg)
        cut = values[seg, order[seg, left]]  # the median: the smallest value of the right half
        order += starts[:, None]  # position in the node -> position in perm
        order[short, -1] = spare
        self._source[at.ravel()] = order.ravel()
        np.take(self.perm, self._source, out=self._next)
        self._source[at.ravel()] = at.ravel()  # back to the identity
        self.perm, self._next = self._next, self.perm
        child_lo, child_hi = np.repeat(lo, 2, axis=0), np.repeat(hi, 2, axis=0)
        child_hi[2 * seg, dims] = cut
        child_lo[2 * seg + 1, dims] = cut
        return left, child_lo, child_hi


class NumpyKDTree:
    """Vectorised kd-tree answering ``<a, x> >= t``; the fast twin of ``ReferenceKDTree``."""

    name = "numpy"

    def __init__(self, points: np.ndarray, ids: np.ndarray, leaf_size: int) -> None:
        n, self.d = points.shape
        self.leaf_size = leaf_size
        splitter = _LevelSplitter(points)
        starts, sizes, childs = self._build(splitter)
        perm = splitter.perm[:n]
        self.points = np.take(points, perm, axis=0)  # row j of the tree is row perm[j] of the input
        self._ids = ids[perm]
        self.start = starts.astype(np.int64)
        self.size = sizes.astype(np.int64)
        self.child = childs  # index of the left child (right = left + 1), or -1 at a leaf
        self._boxes()

    def _build(self, splitter: _LevelSplitter) -> tuple[np.ndarray, ...]:
        """Split level by level; return each node's start, size and left child in BFS order."""
        starts, sizes = np.zeros(1, np.int64), np.array([len(splitter.perm) - 1], np.int64)
        lo, hi = splitter.points.min(axis=0)[None, :], splitter.points.max(axis=0)[None, :]
        levels: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        n_nodes = 1  # nodes numbered so far, through the current level
        while len(starts):
            split = sizes > self.leaf_size
            child = np.full(len(starts), -1, dtype=np.int64)
            child[split] = n_nodes + 2 * np.arange(split.sum())
            levels.append((starts, sizes, child))
            n_nodes += 2 * int(split.sum())
            if not split.any():
                break
            s, z = starts[split], sizes[split]
            left, lo, hi = splitter.split(s, z, lo[split], hi[split])
            starts = np.stack([s, s + left], axis=1).ravel()
            sizes = np.stack([left, z - left], axis=1).ravel()
        self.level_offsets = np.cumsum([0] + [len(lv[0]) for lv in levels])
        return tuple(np.concatenate(parts) for parts in zip(*levels, strict=True))

    def _boxes(self) -> None:
        """Tight boxes: leaves by ``reduceat`` over their rows, parents from their children."""
        n_nodes = len(self.start)
        lo = np.empty((n_nodes, self.d))
        hi = np.empty((n_nodes, self.d))
        leaves = np.flatnonzero(self.child < 0)
        leaves = leaves[np.argsort(self.start[leaves], kind="stable")]  # they tile the rows
        lo[leaves] = np.minimum.reduceat(self.points, self.start[leaves], axis=0)
        hi[leaves] = np.maximum.reduceat(self.points, self.start[leaves], axis=0)
        bounds = self.level_offsets
        for first, stop in zip(bounds[-2::-1], bounds[:0:-1], strict=True):  # deepest first
            level = np.arange(first, stop)
            level = level[self.child[level] >= 0]
            c = self.child[level]
            lo[level] = np.minimum(lo[c], lo[c + 1])
            hi[level] = np.maximum(hi[c], hi[c + 1])
        rad = np.sqrt((np.maximum(np.abs(lo), np.abs(hi)) ** 2).sum(axis=1))
        self.box = np.column_stack([(lo + hi) / 2, (hi - lo) / 2, rad, np.ones(n_nodes)])

    def query(self, a: np.ndarray, t: float) -> tuple[np.ndarray, QueryStats]:
        """Ids of every point with ``<a, x> >= t``, walking the tree level by level.

        Each node's row of ``self.box`` is ``[c, h, rad, 1]``; one product with ``weights``
        gives, for the whole frontier, the two bounds of ``ReferenceKDTree._visit``:
        ``<c, a> + <h, |a|> + margin`` and ``<c, a> - <h, |a|> - margin``.
        """
        stats = QueryStats()
        slack = _margin(self.d) * float(np.sqrt(a @ a))
        weights = np.column_stack([np.concatenate([a, np.abs(a), [slack, self.d * _TINY]]),
                                   np.concatenate([a, -np.abs(a), [-slack, -self.d * _TINY]])])
        frontier = np.zeros(1, dtype=np.int64)
        whole, open_leaves = [], []
        while len(frontier):
            stats.nodes_visited += len(frontier)
            upper, lower = (np.take(self.box, frontier, axis=0) @ weights).T
            outside, inside = upper < t, lower >= t
            stats.nodes_pruned += int(np.count_nonzero(outside))
            stats.nodes_reported += int(np.count_nonzero(inside))
            whole.append(frontier[inside])
            opened = frontier[~(inside | outside)]
            first = self.child[opened]
            open_leaves.append(opened[first < 0])
            first = first[first >= 0]
            frontier = (first[:, None] + np.array([0, 1])).ravel()
        whole_nodes, leaves = np.concatenate(whole), np.concatenate(open_leaves)
        rows = _ranges(self.start[leaves], self.size[leaves])
        stats.inner_products = len(rows)
        hits = rows[np.take(self.points, rows, axis=0) @ a >= t]
        found = np.concatenate([self._ids[_ranges(self.start[whole_nodes], self.size[whole_nodes])],
                                self._ids[hits]])
        stats.points_reported = len(found)
        return found, stats

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """All stored points and their ids, in tree order."""
        return self.points, self._ids

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def depth(self) -> int:
        """Number of levels below the root."""
        return len(self.level_offsets) - 2

    @property
    def nbytes(self) -> int:
        """Bytes of every array the tree holds (its copy of the points included)."""
        arrays = (self.points, self._ids, self.start, self.size, self.child, self.box)
        return sum(arr.nbytes for arr in arrays)

    def __repr__(self) -> str:
        return (f"NumpyKDTree(n={len(self)}, d={self.d}, leaf_size={self.leaf_size}, "
                f"nodes={len(self.start)}, depth={self.depth})")
