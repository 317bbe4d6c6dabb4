"""Convex layers (onion peeling): static half-plane reporting in the plane (d = 2).

Peel the convex hull of the points, then the hull of what is left, and so on: the points split
into nested convex polygons ("layers"), outermost first. A query ``<a, x> >= t`` walks the
layers from the outside in. On one layer, the vertex maximising ``<a, x>`` is found in
O(log h) by bisection over the edge angles; if even that vertex misses the half-plane, every
deeper layer lies inside this one's hull and misses it too, so the walk stops. Otherwise the
vertices inside the closed half-plane form one contiguous arc around the maximum, reported by
walking both ways from it.

Costs (n points, L layers, k points reported, L' <= L layers reached by a query):
- build: O(L n log n). Each layer reruns qhull (``scipy.spatial.ConvexHull``) on the points still
  left; Chazelle's (1985) optimal O(n log n) peeling is not implemented.
- query: O(L' log n + k), plus O(f) for the final flat layer of f points if the walk reaches it.
- space: O(n).

Degenerate input. Each point belongs to exactly one layer. A layer keeps only the strictly
convex hull vertices, in counter-clockwise order (checked with an exact orientation predicate);
duplicates of a vertex and points lying on a hull edge go to deeper layers, so that the stopping
rule above never skips them. When fewer than 3 points are left, or they are collinear (qhull
raises ``QhullError``, or the exact check finds no three points turning), they form a final
"flat" layer that a query simply scans, in O(f).
Qhull's joggle option (QJ) is never used: joggling would perturb the vertices.

Rounding. Scores are computed as ``numerics.score`` does (``s = 0.0; s += a0*x0;
s += a1*x1``). The stopping rule and the walk compare the scores with ``t - slack`` rather than
``t``, with ``slack = 2^-40 (|a0| max|x0| + |a1| max|x1|)`` over the layer: a few thousand
times the rounding error of one score (at most about 2^-52 times the same sum), so that
rounding in the scores, the angles or qhull does not hide a point the brute-force scan
reports; the slack can only cost a few extra scores. A point is reported on the exact
predicate of ``numerics``: its score decides outside ``numerics.band64`` of t, and the rare
point inside is settled in rational arithmetic (``exact.at_least_one``).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from scipy.spatial import ConvexHull, QhullError

from ._base import query_many_by_loop
from ._stats import BatchQueryStats, QueryStats
from .exact import at_least_one
from .numerics import band64, score

_SLACK_REL = 2.0**-40  # relative rounding slack of a layer's scores (see the module docstring)
_SLACK_ABS = 2.0**-1000  # absolute slack for scores that underflow into subnormal numbers
_CCW_ERR = (3.0 + 16.0 * 2.0**-53) * 2.0**-53  # Shewchuk's error bound of the float orient2d


class ConvexLayers:
    """Half-plane reporting over m points of the plane by convex layers (backend "layers").

    ``ConvexLayers(points, ids, leaf_size)``: points (m, 2) finite float64 with m >= 1, ids (m,)
    int64. ``leaf_size`` is accepted for the ``StaticIndex`` interface and ignored: a layer is
    never cut into leaves. ``layers`` lists the coordinates of each layer, outermost first,
    counter-clockwise; when ``flat_size > 0`` the last one is the flat layer (sorted, not a
    polygon).

    Query stats: nodes_visited = layers whose top vertex was found (and the flat layer if
    scanned); nodes_pruned = 1 if the walk stopped at a layer that misses the half-plane;
    nodes_reported = layers reported whole; inner_products = bisection steps (each one is the
    sign of <a, edge>) plus the scores computed by the hill-climb, the walk and the flat scan.
    """

    name = "layers"
    ascending = False  # ids come layer by layer

    def __init__(self, points: np.ndarray, ids: np.ndarray, leaf_size: int) -> None:
        points = np.asarray(points, dtype=np.float64)
        ids = np.asarray(ids, dtype=np.int64)
        if points.ndim != 2:
            raise ValueError(f"points must be an (m, 2) array; got shape {points.shape}")
        if points.shape[1] != 2:
            raise ValueError(
                f"backend 'layers' works in the plane only (d = 2); got d = {points.shape[1]}"
            )
        if points.shape[0] == 0 or ids.shape != (points.shape[0],):
            raise ValueError(
                f"need m >= 1 points and one id each; got points {points.shape}, ids {ids.shape}"
            )
        rings, flat = _peel(points)
        flat = flat[np.lexsort((points[flat, 1], points[flat, 0]))]  # along the line, if any
        order = np.concatenate([*rings, flat])
        self._points = points[order]  # fancy indexing copies: the inputs are never aliased
        self._ids = ids[order]
        sizes = [len(r) for r in rings] + ([len(flat)] if len(flat) else [])
        self._starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self._n_convex = len(rings)
        # Sorted in exact arithmetic (each ring starts at its smallest angle); the running max
        # only smooths out uneven rounding of atan2, so that bisection sees a sorted array.
        angles = [np.maximum.accumulate(_edge_angles(points[r])) for r in rings]
        self._angles = np.concatenate([*angles, np.empty(0)])
        self._extent = np.array([np.abs(points[r]).max(axis=0) for r in rings]).reshape(-1, 2)
        # sum_i max |x_i| over each layer, the flat one included: rad of ``numerics.band64``
        self._reach = np.array([np.abs(self._points[lo:hi]).max(axis=0).sum() for lo, hi in
                                zip(self._starts[:-1], self._starts[1:], strict=True)])

    # ----------------------------------------------------------------------------- query

    def query(self, a: np.ndarray, t: float) -> tuple[np.ndarray, QueryStats]:
        """Ids of every point x with <a, x> = a0*x0 + a1*x1 >= t, and the cost of finding them."""
        a = np.asarray(a, dtype=np.float64)
        if a.shape != (2,):
            raise ValueError(f"a must be a vector of shape (2,); got shape {a.shape}")
        a_list, t = a.tolist(), float(t)
        psi = math.atan2(a_list[1], a_list[0]) + math.pi / 2  # edges at this angle are level
        stats, rows = QueryStats(), []
        for layer in range(self._n_convex):
            stats.nodes_visited += 1
            top, s_top = self._top_vertex(layer, a_list, psi, stats)
            floor = t - self._slack(layer, a_list)
            if s_top < floor:  # the whole hull misses, and every deeper layer lies inside it
                stats.nodes_pruned = 1
                break
            arc = self._arc(layer, top, s_top, a_list, t, floor, stats)
            stats.nodes_reported += len(arc) == self._span(layer)[1]
            rows += arc
        else:  # no layer missed: the flat rest, if any, is scanned
            rows += self._scan_flat(a_list, t, stats)
        stats.points_reported = len(rows)
        return self._ids[np.array(rows, dtype=np.int64)], stats

    def query_many(self, A: np.ndarray, t: np.ndarray | float, sort: bool = True
                   ) -> tuple[np.ndarray, np.ndarray, BatchQueryStats]:
        """``query(A[i], t[i])`` for every row of A, one after the other (a plain loop)."""
        return query_many_by_loop(self, A, t, sort)

    def _top_vertex(
        self, layer: int, a: list[float], psi: float, stats: QueryStats
    ) -> tuple[int, float]:
        """argmax_x <a, x> over the layer's vertices: bisection on edge angles, then hill-climb."""
        lo, h = self._span(layer)
        theta0 = self._angles[lo]  # the smallest edge angle of the layer
        psi = theta0 + (psi - theta0) % (2 * math.pi)  # the same direction, in [theta0, +2 pi)
        top = lo + self._first_edge_past(lo, lo + h, psi, stats) % h
        return self._climb(lo, h, top, a, self._band(layer, a, 0.0), stats)

    def _first_edge_past(self, lo: int, hi: int, psi: float, stats: QueryStats) -> int:
        """Smallest i with angle(x_{i+1} - x_i) >= psi, minus lo: the first edge not going up."""
        start = lo
        while lo < hi:
            mid = (lo + hi) // 2
            stats.inner_products += 1  # comparing angles is the sign of <a, edge>
            if self._angles[mid] < psi:
                lo = mid + 1
            else:
                hi = mid
        return lo - start

    def _climb(
        self, lo: int, h: int, i: int, a: list[float], err: float, stats: QueryStats
    ) -> tuple[int, float]:
        """Walk to a neighbour while its exact score ``<a, x_j>`` is strictly larger: a local,
        so global, maximum (each float score lies within ``err`` of the exact one)."""
        s = self._score(i, a, stats)
        for step in (1, -1):
            moved = False
            j = _neighbour(lo, h, i, step)
            s_j = self._score(j, a, stats)
            # rounding in the angles can leave the bisection a few vertices off
            while self._rises(i, s, j, s_j, a, err):
                i, s, moved = j, s_j, True
                j = _neighbour(lo, h, i, step)
                s_j = self._score(j, a, stats)
            if moved:  # came from a lower vertex and the next one is not higher
                return i, s
        return i, s

    def _rises(self, i: int, s: float, j: int, s_j: float, a: list[float], err: float) -> bool:
        """Whether ``<a, x_j> > <a, x_i>`` exactly: the float scores s and s_j decide when they
        differ by more than their errors (``2 err``), rational arithmetic otherwise (a level
        edge, or scores that underflow to the same float: a plateau of zeros would otherwise
        stop the climb short of the top vertex)."""
        if abs(s_j - s) > 2 * err:
            return s_j > s
        x_i, x_j = self._points[i].tolist(), self._points[j].tolist()
        return sum(Fraction(u) * (Fraction(v) - Fraction(w))
                   for u, v, w in zip(a, x_j, x_i, strict=True)) > 0

    def _arc(
        self,
        layer: int,
        top: int,
        s_top: float,
        a: list[float],
        t: float,
        floor: float,
        stats: QueryStats,
    ) -> list[int]:
        """Rows x of the layer with <a, x> >= t: walk both ways from top while score >= floor."""
        lo, h = self._span(layer)
        band = self._band(layer, a, t)
        rows = [top] if self._inside(top, s_top, a, t, band) else []
        unseen = h - 1  # so that a layer lying wholly inside is not reported twice
        for step in (1, -1):
            i = top
            while unseen > 0:
                i = _neighbour(lo, h, i, step)
                s = self._score(i, a, stats)
                if s < floor:
                    break
                unseen -= 1
                if self._inside(i, s, a, t, band):
                    rows.append(i)
        return rows

    def _scan_flat(self, a: list[float], t: float, stats: QueryStats) -> list[int]:
        """Rows x of the flat layer with <a, x> >= t, by scanning it: O(size of the flat layer)."""
        if self.flat_size == 0:
            return []
        stats.nodes_visited += 1
        lo, f = self._span(self._n_convex)
        band = self._band(self._n_convex, a, t)
        rows = [i for i in range(lo, lo + f) if self._inside(i, self._score(i, a, stats), a, t,
                                                             band)]
        stats.nodes_reported += len(rows) == f
        return rows

    def _score(self, i: int, a: list[float], stats: QueryStats) -> float:
        """<a, x_i> summed left to right (``numerics.score``), counted as one inner product."""
        stats.inner_products += 1
        return score(a, self._points[i].tolist())

    def _band(self, layer: int, a: list[float], t: float) -> float:
        """``numerics.band64`` of a layer: a score further from t than this decides."""
        return float(band64(2, max(abs(a[0]), abs(a[1])), float(self._reach[layer]), t))

    def _inside(self, i: int, s: float, a: list[float], t: float, band: float) -> bool:
        """Whether row i, of float64 score s, has ``<a, x_i> >= t`` exactly."""
        if abs(s - t) > band:
            return s >= t
        return at_least_one(a, self._points[i].tolist(), t)

    def _slack(self, layer: int, a: list[float]) -> float:
        """slack = 2^-40 (|a0| max|x0| + |a1| max|x1|), max over the layer (so over all inside)."""
        x0, x1 = self._extent[layer].tolist()
        return _SLACK_REL * (abs(a[0]) * x0 + abs(a[1]) * x1) + _SLACK_ABS

    def _span(self, layer: int) -> tuple[int, int]:
        """(first row, number of rows) of one layer."""
        lo, hi = self._starts[layer : layer + 2].tolist()
        return lo, hi - lo

    # ------------------------------------------------------------------- the structure

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """(points, ids) of every stored point, layer by layer (copies)."""
        return self._points.copy(), self._ids.copy()

    @property
    def points(self) -> np.ndarray:
        """The stored points, layer by layer, outermost first (read-only view)."""
        view = self._points.view()
        view.flags.writeable = False
        return view

    @property
    def ids(self) -> np.ndarray:
        """The ids of ``points``, row for row (read-only view)."""
        view = self._ids.view()
        view.flags.writeable = False
        return view

    def __len__(self) -> int:
        return len(self._points)

    @property
    def depth(self) -> int:
        """Number of layers, the flat layer included."""
        return len(self._starts) - 1

    @property
    def flat_size(self) -> int:
        """Number of points in the final flat layer (0 if the peeling ends on a polygon)."""
        return len(self._points) - int(self._starts[self._n_convex])

    @property
    def layers(self) -> list[np.ndarray]:
        """Coordinates (h, 2) of each layer, outermost first, counter-clockwise (copies)."""
        bounds = zip(self._starts[:-1], self._starts[1:], strict=True)
        return [self._points[lo:hi].copy() for lo, hi in bounds]

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays held: points, ids, layer offsets, edge angles, extents and
        reaches."""
        arrays = (self._points, self._ids, self._starts, self._angles, self._extent, self._reach)
        return sum(arr.nbytes for arr in arrays)

    def __repr__(self) -> str:
        sizes = np.diff(self._starts)
        outer = f", outermost {sizes[0]} vertices" if self._n_convex else ""
        return (
            f"ConvexLayers(m={len(self)}, depth={self.depth}{outer}, "
            f"flat layer {self.flat_size} points, nbytes={self.nbytes})"
        )


def _neighbour(lo: int, h: int, i: int, step: int) -> int:
    """Row of the vertex `step` places counter-clockwise of row i, on a layer of h rows from lo."""
    return lo + (i - lo + step) % h


# ----------------------------------------------------------------------------- build


def _peel(points: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Rows of each convex layer (strictly convex, counter-clockwise), then the flat rest."""
    rings, remaining = [], np.arange(len(points))
    while len(remaining) >= 3:
        ring = _hull_ring(points[remaining])
        if ring is None:
            break
        rings.append(remaining[ring])
        keep = np.ones(len(remaining), dtype=bool)
        keep[ring] = False
        remaining = remaining[keep]
    return rings, remaining


def _hull_ring(points: np.ndarray) -> np.ndarray | None:
    """Strictly convex hull vertices, counter-clockwise, or None when the points are flat."""
    # qhull fails on magnitudes like 1e300 or aspect ratios like 1e16; scaling each axis by a
    # power of two is exact and keeps the hull's vertices.
    _, exponents = np.frexp(np.abs(points).max(axis=0))
    try:
        hull = ConvexHull(np.ldexp(points, -exponents), qhull_options="Qc")
    except QhullError:
        return None
    ring = hull.vertices  # counter-clockwise in 2-D
    near = hull.coplanar[:, 0]  # within qhull's rounding of an edge: on it, or just outside
    if len(near) or not _certainly_convex(points[ring]):
        ring = _exact_hull(points, np.union1d(ring, near))
    if len(ring) < 3:
        return None
    return np.roll(ring, -int(np.argmin(_edge_angles(points[ring]))))  # bisection needs this


def _certainly_convex(poly: np.ndarray) -> bool:
    """True if every turn prev -> x -> next provably goes left (floating-point filter)."""
    prev, nxt = np.roll(poly, 1, axis=0), np.roll(poly, -1, axis=0)
    with np.errstate(over="ignore", invalid="ignore"):
        left = (prev[:, 0] - nxt[:, 0]) * (poly[:, 1] - nxt[:, 1])
        right = (prev[:, 1] - nxt[:, 1]) * (poly[:, 0] - nxt[:, 0])
        magnitude = np.abs(left) + np.abs(right)
        certain = (left - right > _CCW_ERR * magnitude) & (magnitude > 2.0**-900)
    return bool(certain.all())


def _exact_hull(points: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Strictly convex hull of points[rows], counter-clockwise: Andrew's monotone chain, exact."""
    rows = rows[np.lexsort((points[rows, 1], points[rows, 0]))]
    xy = points[rows].tolist()
    lower = _chain(xy, range(len(xy)))
    upper = _chain(xy, range(len(xy) - 1, -1, -1))
    return rows[lower[:-1] + upper[:-1]]


def _chain(xy: list[list[float]], order: range) -> list[int]:
    """Positions along `order` where the chain turns strictly left (collinear points dropped)."""
    stack: list[int] = []
    for k in order:
        while len(stack) >= 2 and _orient(xy[stack[-2]], xy[stack[-1]], xy[k]) <= 0:
            stack.pop()
        stack.append(k)
    return stack


def _orient(p: list[float], q: list[float], r: list[float]) -> int:
    """Sign of (q - p) x (r - p), exactly: a floating-point filter, else rational arithmetic."""
    left = (p[0] - r[0]) * (q[1] - r[1])
    right = (p[1] - r[1]) * (q[0] - r[0])
    bound = _CCW_ERR * (abs(left) + abs(right))
    if abs(left - right) > bound > 2.0**-900:  # Shewchuk's orient2d filter, no underflow
        return 1 if left > right else -1
    px, py, qx, qy, rx, ry = (Fraction(v) for v in (*p, *q, *r))
    det = (qx - px) * (ry - py) - (qy - py) * (rx - px)
    return (det > 0) - (det < 0)


def _edge_angles(poly: np.ndarray) -> np.ndarray:
    """angle(x_{i+1} - x_i) of each edge of a ring, in (-pi, pi]."""
    edges = np.roll(poly, -1, axis=0) - poly
    return np.arctan2(edges[:, 1], edges[:, 0])
