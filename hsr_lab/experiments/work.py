"""The machine-independent cost of a half-space query against n, for several dimensions d.

Work = boxes tested + inner products computed (each O(d)). Three different things, kept apart:

- the paper's cited bound: Part 1, a partition tree, n^{1 - 1/floor(d/2)} + k (d >= 4);
- what our kd-tree does: measured here. Its n^{1 - 1/d} + k bound holds for axis-parallel
  boxes only; for half-spaces it has no sublinear guarantee (``line_counterexample``: points on
  a line, queried along that line, make it open every cell, k = 0 and work about 1.06 n). On
  Gaussian keys at low d it prunes well: measured behaviour, not a bound;
- why it fails at high d (``leaf_box_slack``): a tree of depth log2(n / leaf) splits at most
  that many coordinates, so every leaf box keeps its full width in the others.

A scan always costs n.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import theory
from ..cache import cached
from ..hsr import HSR, BatchQueryStats
from ..validate import as_matrix, as_scalar
from .common import progress, resolve_quick, seeds_for, unit_vectors

TREES = ("numpy", "reference")  # the kd-tree backends: the structure the lab teaches


@dataclass(frozen=True)
class WorkSweep:
    """Mean cost per query: arrays of shape (len(dims), len(n))."""

    n: np.ndarray
    dims: np.ndarray
    nodes: np.ndarray  # boxes tested
    inner_products: np.ndarray  # points scored
    reported: np.ndarray  # k

    @property
    def work(self) -> np.ndarray:
        """Boxes tested plus inner products: the O(d) operations of a query."""
        return self.nodes + self.inner_products


def query_work_sweep(n_values=None, dims=(2, 3, 4, 8, 16, 64), n_queries: int = 8,
                     c: float = theory.PAPER_C, seed: int = 0, quick: bool | None = None,
                     force: bool = False) -> WorkSweep:
    """Mean nodes / inner products / k of the NumPy kd-tree at t = sqrt(c ln n), unit queries.

    Default n: 2^10 .. 2^18 in full mode, 2^8 .. 2^12 in quick mode.
    """
    quick = resolve_quick(quick)
    if n_values is None:
        n_values = 2 ** np.arange(8, 13) if quick else 2 ** np.arange(10, 19)
    n_arr, d_arr = np.asarray(n_values, dtype=np.int64), np.asarray(dims, dtype=np.int64)
    params = dict(n=n_arr.tolist(), dims=d_arr.tolist(), m=n_queries, c=c, seed=seed)

    def compute() -> dict[str, np.ndarray]:
        out = {key: np.zeros((len(d_arr), len(n_arr))) for key in ("nodes", "ip", "k")}
        children = seeds_for(seed, len(d_arr) * len(n_arr))
        cells = [(i, j) for i in range(len(d_arr)) for j in range(len(n_arr))]
        for i, j in progress(cells, "query work sweep"):
            rng = np.random.default_rng(children[i * len(n_arr) + j])
            n, d = int(n_arr[j]), int(d_arr[i])
            hsr = HSR(rng.standard_normal((n, d)), backend="numpy")
            t = float(theory.paper_threshold(n, c=c))
            for q in unit_vectors(rng, n_queries, d):
                _, stats = hsr.query(q, t, stats=True)
                out["nodes"][i, j] += stats.nodes_visited / n_queries
                out["ip"][i, j] += stats.inner_products / n_queries
                out["k"][i, j] += stats.points_reported / n_queries
        return out

    r = cached("query_work", params, compute, force=force)
    return WorkSweep(n_arr, d_arr, r["nodes"], r["ip"], r["k"])


def relu_tree_counters(Q: object, K: object, b: float, backend: str = "numpy"
                       ) -> BatchQueryStats:
    """What the kd-tree does for the rows of ReLU^alpha attention: one half-space query per row,
    ``HSR(K, backend).query_many(Q, t)`` at t = sqrt(d) b, counted (nodes visited, pruned and
    reported whole, inner products, keys reported; one entry per row).

    ``backend`` must be a tree ("numpy" or "reference"): "auto" may pick the scan, whose
    counters show no tree at all.
    """
    if backend not in TREES:
        raise ValueError(f"backend must be a kd-tree, one of {TREES}, so that the counters are "
                         f"the tree's; got {backend!r}")
    K = as_matrix("K", K)
    Q = as_matrix("Q", Q, d=K.shape[1])
    t = np.sqrt(K.shape[1]) * as_scalar("b", b)
    return HSR(K, backend=backend).query_many(Q, t, stats=True)[2]


@dataclass(frozen=True)
class LineSweep:
    """The kd-tree on points of a line queried along that line, beside Gaussian points."""

    n: np.ndarray
    line_work: np.ndarray  # boxes tested + inner products, line points: about 1.06 n
    line_reported: np.ndarray  # k: 0, the half-plane holds none of the points
    gauss_work: np.ndarray  # the same tree on Gaussian points, paper's threshold, unit queries
    gauss_reported: np.ndarray


def line_points(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """n points on the diagonal x = y of the plane, and a query whose boundary runs along it.

    Returns ``(points, a, t)`` with a = (1, -1)/sqrt(2) and t = 1e-9: <a, x> = 0 exactly for
    every point (the two coordinates are equal), so k = 0, yet every box the tree builds is a
    segment of the diagonal, whose score range <c, a> +- <h, |a|> = 0 +- width straddles t.
    """
    u = np.random.default_rng(seed).standard_normal(n)
    a = np.array([1.0, -1.0]) / np.sqrt(2.0)
    return np.column_stack([u, u]), a, 1e-9


def line_counterexample(n_values=None, leaf_size: int = 32, n_queries: int = 8, seed: int = 0,
                        quick: bool | None = None, force: bool = False) -> LineSweep:
    """Work of the NumPy kd-tree (``backend="numpy"``) on ``line_points`` and on Gaussian points.

    Default n: 2^12 .. 2^18 in full mode, 2^8 .. 2^12 in quick mode.
    """
    quick = resolve_quick(quick)
    if n_values is None:
        n_values = 2 ** np.arange(8, 13) if quick else 2 ** np.arange(12, 19)
    n_arr = np.asarray(n_values, dtype=np.int64)
    params = dict(n=n_arr.tolist(), leaf=leaf_size, m=n_queries, seed=seed)

    def compute() -> dict[str, np.ndarray]:
        out = {key: np.zeros(len(n_arr)) for key in ("lw", "lk", "gw", "gk")}
        for j, (n, child) in enumerate(zip(n_arr, seeds_for(seed, len(n_arr)), strict=True)):
            points, a, t = line_points(int(n), child)
            _, stats = HSR(points, backend="numpy", leaf_size=leaf_size).query(a, t, stats=True)
            out["lw"][j], out["lk"][j] = stats.work, stats.points_reported
            rng = np.random.default_rng(child)
            tree = HSR(rng.standard_normal((int(n), 2)), backend="numpy", leaf_size=leaf_size)
            t_gauss = float(theory.paper_threshold(n))
            for q in unit_vectors(rng, n_queries, 2):
                _, stats = tree.query(q, t_gauss, stats=True)
                out["gw"][j] += stats.work / n_queries
                out["gk"][j] += stats.points_reported / n_queries
        return out

    r = cached("line_counterexample", params, compute, force=force)
    return LineSweep(n_arr, r["lw"], r["lk"], r["gw"], r["gk"])


@dataclass(frozen=True)
class BoxSlack:
    """Why boxes cannot prune in high d: leaf boxes of a kd-tree on Gaussian keys."""

    n: int
    d: int
    leaf_size: int
    depth: int  # levels below the root: a root-to-leaf path splits at most this many coordinates
    slack: float  # mean over leaves and unit queries of <h, |a|>, the half-range of the score
    center_score: float  # mean of |<c, a>| over the same leaves and queries
    t: float  # the paper's offset sqrt(0.4 ln n) for unit queries (scores <a, k> of std 1)
    pruned_share: float  # share of leaves whose box lies wholly below t, i.e. prunable


def leaf_box_slack(n: int = 2**16, d: int = 64, leaf_size: int = 32, n_queries: int = 8,
                   seed: int = 0) -> BoxSlack:
    """Build the NumPy kd-tree on n Gaussian keys and measure the leaves' boxes against queries.

    A leaf can be pruned only if <c, a> + <h, |a|> < t. Reads the tree's per-node arrays
    ``half``, ``center`` and ``left`` (the fields of ``Node``).
    """
    rng = np.random.default_rng(seed)
    hsr = HSR(rng.standard_normal((n, d)), backend="numpy", leaf_size=leaf_size)
    tree = hsr.blocks[0]
    leaves = np.flatnonzero(tree.left < 0)
    A = unit_vectors(rng, n_queries, d)
    slack = tree.half[leaves] @ np.abs(A).T  # (leaves, queries)
    center = tree.center[leaves] @ A.T
    t = float(theory.paper_threshold(n))
    return BoxSlack(n, d, leaf_size, int(hsr.depth), float(slack.mean()),
                    float(np.abs(center).mean()), t, float(np.mean(center + slack < t)))
