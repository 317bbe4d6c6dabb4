"""The machine-independent cost of a half-space query against n, for several dimensions d.

Work = boxes tested + inner products computed (each O(d)). The classical bound for a
partition tree is n^{1 - 1/floor(d/2)} + k (Part 1 of the paper); a kd-tree's box test meets
n^{1 - 1/d} + k for a hyperplane crossing its cells, and a scan always costs n.
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
                     c: float = 0.4, seed: int = 0, quick: bool | None = None,
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
