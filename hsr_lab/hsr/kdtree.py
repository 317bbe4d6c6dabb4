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
so the build costs O(n) NumPy work per level, O(n log n) in all.
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


def _segment_extent(rows: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Per segment ``rows[s:s + z]``: max - min of every coordinate (``rows`` has a spare row)."""
    bounds = np.stack([starts, starts + sizes], axis=1).ravel()
    return (np.maximum.reduceat(rows, bounds, axis=0)[::2]
            - np.minimum.reduceat(rows, bounds, axis=0)[::2])


def _as_records(rows: np.ndarray) -> np.ndarray:
    """View an (m, d) array as m opaque records: NumPy moves whole rows much faster this way."""
    return rows.view(np.dtype((np.void, rows.itemsize * rows.shape[1]))).ravel()


class _LevelSplitter:
    """Holds the points in tree order and splits every segment of one level at once.

    ``rows`` and ``perm`` (tree order -> input row) carry one spare entry at the end, where the
    padding of short segments is parked; each level is one gather into a second buffer.
    """

    def __init__(self, points: np.ndarray) -> None:
        n, d = points.shape
        self.rows = np.zeros((n + 1, d))
        self.rows[:n] = points
        self._rows_next = np.empty_like(self.rows)
        self.perm = np.arange(n + 1, dtype=np.int64)
        self._perm_next = np.empty_like(self.perm)
        self._source = np.arange(n + 1, dtype=np.int64)  # identity outside the split segments
        self._cells = np.empty(n + n // 2 + 1, dtype=np.int64)  # a level holds n points + pads
        self._values = np.empty(len(self._cells))

    def split(self, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        """Put the lower half of each segment (by its widest coordinate) first; return its size.

        Segments at one level differ in size by at most one; the split is at ``size // 2``,
        on the widest coordinate (the lowest index on ties).
        """
        rows, spare = self.rows, len(self.rows) - 1
        dims = np.argmax(_segment_extent(rows, starts, sizes), axis=1)
        n_seg, width = len(starts), int(sizes.max())
        # A padded matrix with one row per segment: its row numbers, then the spare row.
        at = self._cells[: n_seg * width].reshape(n_seg, width)
        np.add(starts[:, None], np.arange(width)[None, :], out=at)
        short = sizes < width
        at[short, -1] = spare
        values = self._values[: n_seg * width].reshape(n_seg, width)
        np.take(rows.ravel(), at * rows.shape[1] + dims[:, None], out=values)
        values[short, -1] = np.inf  # padding sorts after every real value
        left = sizes // 2
        src = np.argpartition(values, np.unique(np.concatenate([left, sizes[short]])), axis=1)
        src += starts[:, None]  # position in the segment -> row number
        src[short, -1] = spare
        self._source[at.ravel()] = src.ravel()
        np.take(_as_records(rows), self._source, out=_as_records(self._rows_next))
        np.take(self.perm, self._source, out=self._perm_next)
        self._source[at.ravel()] = at.ravel()  # back to the identity
        self.rows, self._rows_next = self._rows_next, self.rows
        self.perm, self._perm_next = self._perm_next, self.perm
        return left


class NumpyKDTree:
    """Vectorised kd-tree answering ``<a, x> >= t``; the fast twin of ``ReferenceKDTree``."""

    name = "numpy"

    def __init__(self, points: np.ndarray, ids: np.ndarray, leaf_size: int) -> None:
        n, self.d = points.shape
        self.leaf_size = leaf_size
        splitter = _LevelSplitter(points)
        starts, sizes, childs = self._build(splitter)
        self.points = splitter.rows[:n]  # row j of the tree is row perm[j] of the input
        self._ids = ids[splitter.perm[:n]]
        self.start = starts.astype(np.int64)
        self.size = sizes.astype(np.int64)
        self.child = childs  # index of the left child (right = left + 1), or -1 at a leaf
        self._boxes()

    def _build(self, splitter: _LevelSplitter) -> tuple[np.ndarray, ...]:
        """Split level by level; return each node's start, size and left child in BFS order."""
        starts, sizes = np.zeros(1, np.int64), np.array([len(splitter.perm) - 1], np.int64)
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
            left = splitter.split(s, z)
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
