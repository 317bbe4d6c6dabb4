"""One half-plane query in the plane, with everything a figure of it needs."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..hsr import ConvexLayers, ReferenceKDTree


@dataclass(frozen=True)
class PlaneQuery:
    """Points, the half-plane <a, x> >= t, the answer, the kd-tree cells and the convex layers.

    ``cells`` rows are (x_lo, y_lo, x_hi, y_hi) and ``outcomes`` says what the query did with
    each visited cell: "pruned", "reported" (whole, no inner product), "scanned" or "opened".
    """

    points: np.ndarray
    a: np.ndarray
    t: float
    reported: np.ndarray
    cells: np.ndarray
    outcomes: np.ndarray
    layers: list[np.ndarray]
    layers_reached: int
    inner_products: int  # points the kd-tree scored: those of the leaves it scanned


def plane_query(n: int = 300, angle: float = 0.6, t: float = 1.0, leaf_size: int = 8,
                seed: int = 0) -> PlaneQuery:
    """Gaussian points in the plane and the half-plane with normal (cos angle, sin angle).

    Reports {x : <a, x> >= t} with a = (cos angle, sin angle), and traces the pure-Python
    kd-tree (``ReferenceKDTree.trace``) and the convex layers on the same query.
    """
    points, tree, layers = _structures(n, leaf_size, seed)
    a = np.array([np.cos(angle), np.sin(angle)])
    visited = tree.trace(a, t)
    cells = np.array([[c[0] - h[0], c[1] - h[1], c[0] + h[0], c[1] + h[1]]
                      for c, h in ((node.center, node.half) for node, _ in visited)])
    reported, stats = layers.query(a, t)
    scanned = sum(node.stop - node.start for node, outcome in visited if outcome == "scanned")
    return PlaneQuery(points, a, float(t), np.sort(reported), cells,
                      np.array([outcome for _, outcome in visited]), list(layers.layers),
                      stats.nodes_visited, scanned)


@lru_cache(maxsize=32)  # a widget's n slider revisits sizes; n <= 2000 points each
def _structures(n: int, leaf_size: int, seed: int
                ) -> tuple[np.ndarray, ReferenceKDTree, ConvexLayers]:
    """The points and both structures; cached, since a slider moving the half-plane reuses them."""
    points = np.random.default_rng(seed).standard_normal((n, 2))
    points.flags.writeable = False
    ids = np.arange(n, dtype=np.int64)
    return points, ReferenceKDTree(points, ids, leaf_size), ConvexLayers(points, ids, leaf_size)
