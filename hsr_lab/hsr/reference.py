"""The readable twin: a kd-tree for half-space reporting in pure Python (no NumPy inside).

Every node of the tree holds a box ``[lo, hi]`` that contains all of its points. Over a box the
score ``<a, x>`` ranges over ``mid +- spread``, with ``mid = <c, a>``, ``spread = <h, |a|>``,
``c = (lo + hi) / 2`` the box's centre and ``h = (hi - lo) / 2`` its half-widths. Widened by
the rounding ``guard`` below, the box's two bounds are

    upper = mid + spread + guard,    lower = mid - spread - guard,

and a query for the closed half-space ``<a, x> >= t`` needs only three cases at each node:

- **Case 1, pruned**: ``upper < t``: the whole box lies outside, skip it;
- **Case 2, reported whole**: ``lower >= t``: the whole box lies inside, report its points
  without computing a single inner product (they sit next to each other: one slice);
- **Case 3, scanned or opened**: otherwise a leaf's points are scored one by one, and an inner
  node is opened: both children are visited.

A box of one point (``h = 0``: every point of the node is the same, ``x = c``, e.g. duplicate
keys) has ``upper - lower = 2 guard`` however small, so if t lies within its guard (duplicates
exactly on t) the bounds decide nothing. Such a box is decided by the exact score of its one
point instead (``exact.at_least_one``, the corner both bounds would reach without rounding):
reported whole (Case 2) if ``<a, c> >= t``, else pruned (Case 1), without scanning it.

The answer is the exact predicate of ``numerics``: ``<a, x> >= t`` in real arithmetic. The
guard makes a decision about a whole box agree with it:

    guard = relative rad + absolute,   relative = numerics.margin(d) max_i |a_i|,
    absolute = numerics.box_floor(d, max_i |a_i|),   rad = sum_i max(|lo_i|, |hi_i|),

which covers the rounding of c, h and of the bounds' sums (``numerics``) for every x in the
box, without a square, so it holds at every finite scale. A scanned leaf's point is decided by
its float64 score ``score(a, x)`` unless that lies within ``band64`` of t, where it is settled
in rational arithmetic (``exact.at_least_one``).

A node is split at the median of the widest side of its cell, the points ordered by
(coordinate, input row): ties go to the same side in every twin.

**The three twins.** ``kdtree.NumpyKDTree`` builds the same tree with whole-array NumPy and
``compiled.CompiledKDTree`` walks that tree in Numba-compiled loops. The same steps carry the
same names in the three modules, under the same case banners (``tests/test_twins.py`` checks
both):

================  ==========================  ==============================  =================
step              here                        ``kdtree``                      ``compiled``
================  ==========================  ==============================  =================
query's weights   ``_weights``                ``_weights`` (a batch)          ``_weights``
a node's bounds   ``_bounds``                 ``NumpyKDTree._bounds``         ``_bounds``
the cases         ``ReferenceKDTree._walk``   ``NumpyKDTree._walk`` (a step:  ``_walk``
                  (recursive)                 ``NumpyKDTree._step``)
a leaf's points   ``ReferenceKDTree._scan``   ``NumpyKDTree._scan``           ``_scan``
a whole query     ``ReferenceKDTree._run``    ``NumpyKDTree._run``            ``_run``
================  ==========================  ==============================  =================
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._base import Node, query_many_by_loop
from ._stats import BatchQueryStats, QueryStats
from .exact import at_least_one
from .numerics import ETA, band64, box_floor, margin, score

Row = tuple[list[float], int, int]  # a point, its id, its row in the input


class Weights(NamedTuple):
    """One query's terms of the box bounds: ``upper = <c, a> + <h, |a|> + guard`` with
    ``guard = relative rad + absolute`` (module docstring)."""

    a: list[float]
    abs_a: list[float]
    relative: float  # numerics.margin(d) max_i |a_i|
    absolute: float  # numerics.box_floor(d, max_i |a_i|)
    max_a: float  # max_i |a_i|, for the band of a leaf's scores


def _weights(a: np.ndarray) -> Weights:
    """The query's terms of every node's bounds, computed once per query."""
    a_list = [float(v) for v in a]
    max_a = max(abs(v) for v in a_list)
    d = len(a_list)
    return Weights(a_list, [abs(v) for v in a_list], margin(d) * max_a, box_floor(d, max_a),
                   max_a)


def _bounds(node: Node, w: Weights) -> tuple[float, float]:
    """The node's ``upper`` and ``lower`` bound on ``<a, x>`` over its box:
    ``mid + spread + guard`` and ``mid - spread - guard``."""
    mid, spread = score(w.a, node.center), score(w.abs_a, node.half)
    guard = w.relative * node.rad + w.absolute
    return mid + spread + guard, mid - spread - guard


def _one_point(node: Node) -> bool:
    """Whether the box is one point: every half-width 0, so every point of the node is
    ``center`` (``_box``)."""
    return not any(node.half)


def _corners(rows: list[Row]) -> tuple[list[float], list[float]]:
    """The corners lo and hi of the tightest box around the given points."""
    d = len(rows[0][0])
    return ([min(x[i] for x, _, _ in rows) for i in range(d)],
            [max(x[i] for x, _, _ in rows) for i in range(d)])


def _box(rows: list[Row]) -> tuple[list[float], list[float], float]:
    """Centre, half-widths and ``rad = sum_i max(|lo_i|, |hi_i|)`` of the tightest box; a
    half-width is 0 only where ``lo_i = hi_i`` (then ``c_i = lo_i`` exactly)."""
    lo, hi = _corners(rows)
    center = [(low + high) / 2 for low, high in zip(lo, hi, strict=True)]
    # the halving of the width 2^-1074 gives 0: rounded up instead, so that h = 0 means one point
    half = [(high - low) / 2 or (ETA if high != low else 0.0)
            for low, high in zip(lo, hi, strict=True)]
    rad = 0.0
    for low, high in zip(lo, hi, strict=True):  # L1-style: no square to underflow
        rad += max(abs(low), abs(high))
    return center, half, rad


class ReferenceKDTree:
    """Pure-Python kd-tree answering ``<a, x> >= t``; the twin of ``NumpyKDTree``."""

    name = "reference"
    ascending = False  # ids come in tree order

    def __init__(self, points: np.ndarray, ids: np.ndarray, leaf_size: int) -> None:
        rows = list(zip(points.tolist(), ids.tolist(), range(len(ids)), strict=True))
        self.d = len(rows[0][0])
        self.leaf_size = leaf_size
        self.points: list[list[float]] = []  # in tree order: a subtree is a slice
        self.ids: list[int] = []
        self._depth = 0
        self.root = self._build(rows, *_corners(rows), 0)

    def _build(self, rows: list[Row], lo: list[float], hi: list[float], depth: int) -> Node:
        """Split the cell ``[lo, hi]`` at the median of its widest side until a node holds at
        most leaf_size points. Queries use the node's tight box, not its cell."""
        center, half, rad = _box(rows)
        node = Node(center, half, rad, start=len(self.points), stop=len(self.points))
        self._depth = max(self._depth, depth)
        if len(rows) <= self.leaf_size:
            for x, i, _ in rows:
                self.points.append(x)
                self.ids.append(i)
        else:
            dim = max(range(self.d), key=lambda j: (hi[j] - lo[j], -j))  # lowest j on ties
            rows = sorted(rows, key=lambda row: (row[0][dim], row[2]))  # ties: by input row
            mid = len(rows) // 2
            left_hi, right_lo = list(hi), list(lo)
            left_hi[dim] = right_lo[dim] = rows[mid][0][dim]  # cut the cell at the median
            node.left = self._build(rows[:mid], lo, left_hi, depth + 1)
            node.right = self._build(rows[mid:], right_lo, hi, depth + 1)
        node.stop = len(self.points)
        return node

    def query(self, a: np.ndarray, t: float) -> tuple[np.ndarray, QueryStats]:
        """Ids of every point with ``<a, x> >= t`` and the cost of finding them."""
        found, stats = self._run(a, t)
        return np.array(found, dtype=np.int64), stats

    def query_many(self, A: np.ndarray, t: np.ndarray | float, sort: bool = True
                   ) -> tuple[np.ndarray, np.ndarray, BatchQueryStats]:
        """``query(A[i], t[i])`` for every row of A, one after the other: the readable twin of
        ``NumpyKDTree.query_many`` (which walks them together). Returns ``(indptr, ids,
        stats)``: row i's ids, ascending if ``sort``, are ``ids[indptr[i]:indptr[i + 1]]``."""
        return query_many_by_loop(self, A, t, sort)

    def trace(self, a: np.ndarray, t: float) -> list[tuple[Node, str]]:
        """Every node a query visits, with what happened to it: "pruned", "reported" (whole),
        "scanned" (a leaf whose points were tested) or "opened" (recursed into)."""
        visited: list[tuple[Node, str]] = []
        self._run(a, t, visited)
        return visited

    def _run(self, a: np.ndarray, t: float, trace: list | None = None
             ) -> tuple[list[int], QueryStats]:
        """One whole query: the walk from the root, then the ids found and the counters."""
        found: list[int] = []
        stats = QueryStats()
        self._walk(self.root, _weights(a), t, found, stats, trace)
        stats.points_reported = len(found)
        return found, stats

    def _walk(self, node: Node, w: Weights, t: float, found: list[int], stats: QueryStats,
              trace: list | None) -> None:
        """Decide one node by its bounds (the three cases of the module docstring), then its
        children if it was opened."""
        stats.nodes_visited += 1
        upper, lower = _bounds(node, w)
        # a box of one point within its guard of t: its exact score decides (module docstring)
        one = lower < t <= upper and _one_point(node)
        inside = one and at_least_one(w.a, node.center, t)
        # Case 1: upper < t, every point of the box is below t: pruned
        if upper < t or (one and not inside):
            stats.nodes_pruned += 1
            outcome = "pruned"
        # Case 2: lower >= t, every point of the box is at least t: reported whole
        elif lower >= t or inside:
            stats.nodes_reported += 1
            found.extend(self.ids[node.start:node.stop])
            outcome = "reported"
        # Case 3: neither: a leaf is scanned point by point, an inner node opened
        elif node.is_leaf:
            self._scan(node, w, t, found, stats)
            outcome = "scanned"
        else:
            outcome = "opened"
        if trace is not None:
            trace.append((node, outcome))
        if outcome == "opened":
            self._walk(node.left, w, t, found, stats, trace)
            self._walk(node.right, w, t, found, stats, trace)

    def _scan(self, node: Node, w: Weights, t: float, found: list[int], stats: QueryStats
              ) -> None:
        """The ids of a leaf's points with ``<a, x> >= t``: each float64 score decides outside
        its band ``[low, high)`` around t, a score inside it is settled exactly."""
        band = band64(self.d, w.max_a, node.rad, t)
        low, high = t - band, t + band
        for j in range(node.start, node.stop):
            stats.inner_products += 1
            s = score(w.a, self.points[j])
            if s >= high or (s >= low and at_least_one(w.a, self.points[j], t)):
                found.append(self.ids[j])

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """All stored points and their ids, in tree order."""
        return np.array(self.points, dtype=np.float64).reshape(-1, self.d), np.array(
            self.ids, dtype=np.int64
        )

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def depth(self) -> int:
        """Length of the longest root-to-leaf path."""
        return self._depth

    @property
    def nbytes(self) -> int:
        """Rough memory of the Python objects: 8 bytes per float or int held."""
        n_nodes = 2 * math.ceil(len(self) / max(1, self.leaf_size // 2))
        return 8 * (len(self) * (self.d + 1) + n_nodes * (2 * self.d + 3))

    def __repr__(self) -> str:
        return (f"ReferenceKDTree(n={len(self)}, d={self.d}, leaf_size={self.leaf_size}, "
                f"depth={self.depth})")
