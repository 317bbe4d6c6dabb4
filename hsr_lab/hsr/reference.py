"""The readable twin: a kd-tree for half-space reporting in pure Python (no NumPy inside).

Every node of the tree holds a box ``[lo, hi]`` that contains all of its points. Over a box the
score ``<a, x>`` ranges over ``<c, a> +- <h, |a|>``, where ``c = (lo + hi) / 2`` is the box's
centre and ``h = (hi - lo) / 2`` its half-widths. A query for the closed half-space
``<a, x> >= t`` therefore needs only three cases at each node:

- **prune**: ``<c, a> + <h, |a|> < t``: the whole box lies outside, skip it;
- **report**: ``<c, a> - <h, |a|> >= t``: the whole box lies inside, report its points without
  computing a single inner product (they sit next to each other, so this is one slice);
- **open**: otherwise recurse into both children, or test each point of a leaf.

The answer is the exact predicate of ``numerics``: ``<a, x> >= t`` in real arithmetic. Both
bounds are widened by a rounding margin so that a decision about a whole box never disagrees
with it:

    margin = margin(d) max_i |a_i| rad + box_floor(d, max_i |a_i|),
    rad = sum_i max(|lo_i|, |hi_i|),

which covers the rounding of c, h and of the bounds' sums (``numerics``) for every x in the
box, without a square, so it holds at every finite scale. A leaf's point is decided by its
float64 score ``score(a, x)`` unless that lies within ``band64`` of t, where it is settled in
rational arithmetic (``exact.at_least_one``).

A node is split at the median of the widest side of its cell, the points ordered by
(coordinate, input row): ties go to the same side in both twins.
``hsr_lab.hsr.kdtree.NumpyKDTree`` builds the same tree and runs the same test level by level.
"""

from __future__ import annotations

import math

import numpy as np

from ._base import Node, query_many_by_loop
from ._stats import BatchQueryStats, QueryStats
from .exact import at_least_one
from .numerics import band64, box_floor, margin, score

Row = tuple[list[float], int, int]  # a point, its id, its row in the input


def _bounds(rows: list[Row]) -> tuple[list[float], list[float]]:
    """The corners lo and hi of the tightest box around the given points."""
    d = len(rows[0][0])
    return ([min(x[i] for x, _, _ in rows) for i in range(d)],
            [max(x[i] for x, _, _ in rows) for i in range(d)])


def _box(rows: list[Row]) -> tuple[list[float], list[float], float]:
    """Centre, half-widths and ``rad = sum_i max(|lo_i|, |hi_i|)`` of the tightest box."""
    lo, hi = _bounds(rows)
    center = [(low + high) / 2 for low, high in zip(lo, hi, strict=True)]
    half = [(high - low) / 2 for low, high in zip(lo, hi, strict=True)]
    rad = 0.0
    for low, high in zip(lo, hi, strict=True):  # L1-style: no square to underflow
        rad += max(abs(low), abs(high))
    return center, half, rad


class ReferenceKDTree:
    """Pure-Python kd-tree answering ``<a, x> >= t``; the twin of ``NumpyKDTree``."""

    name = "reference"

    def __init__(self, points: np.ndarray, ids: np.ndarray, leaf_size: int) -> None:
        rows = list(zip(points.tolist(), ids.tolist(), range(len(ids)), strict=True))
        self.d = len(rows[0][0])
        self.leaf_size = leaf_size
        self.points: list[list[float]] = []  # in tree order: a subtree is a slice
        self.ids: list[int] = []
        self._depth = 0
        self.root = self._build(rows, *_bounds(rows), 0)

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
        found, stats = self._walk(a, t)
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
        self._walk(a, t, visited)
        return visited

    def _walk(self, a: np.ndarray, t: float, trace: list | None = None
              ) -> tuple[list[int], QueryStats]:
        """Run the query from the root: the ids found and the counters."""
        a_list = [float(v) for v in a]
        max_a = max(abs(v) for v in a_list)
        found: list[int] = []
        stats = QueryStats()
        self._visit(self.root, a_list, [abs(v) for v in a_list], t, max_a, found, stats, trace)
        stats.points_reported = len(found)
        return found, stats

    def _visit(self, node: Node, a: list[float], abs_a: list[float], t: float, max_a: float,
               found: list[int], stats: QueryStats, trace: list | None = None) -> None:
        """Prune, report whole, or open one node (the three cases of the module docstring)."""
        stats.nodes_visited += 1
        mid, spread = score(a, node.center), score(abs_a, node.half)
        widen = margin(self.d) * max_a * node.rad + box_floor(self.d, max_a)  # the margin
        if mid + spread + widen < t:  # box entirely outside
            stats.nodes_pruned += 1
            outcome = "pruned"
        elif mid - spread - widen >= t:  # box entirely inside
            stats.nodes_reported += 1
            found.extend(self.ids[node.start:node.stop])
            outcome = "reported"
        elif node.is_leaf:
            band = band64(self.d, max_a, node.rad, t)
            for j in range(node.start, node.stop):
                stats.inner_products += 1
                s = score(a, self.points[j])
                if s >= t + band or (s >= t - band and at_least_one(a, self.points[j], t)):
                    found.append(self.ids[j])
            outcome = "scanned"
        else:
            outcome = "opened"
        if trace is not None:
            trace.append((node, outcome))
        if outcome == "opened":
            self._visit(node.left, a, abs_a, t, max_a, found, stats, trace)
            self._visit(node.right, a, abs_a, t, max_a, found, stats, trace)

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
