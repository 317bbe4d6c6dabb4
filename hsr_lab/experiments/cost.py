"""Wall-clock cost of one half-space query on this machine: the kd-tree against the dense scan.

Measured live (never cached: a timing belongs to the machine and the moment), for keys of three
kinds, so that a notebook user can see where the tree wins and where it cannot:

- ``isotropic``: k_j ~ N(0, I_d), the paper's model. The tree wins at small d and large n.
- ``anisotropic``: k_j ~ N(0, diag(s)^2) with s_i falling geometrically from 1 to 0.01: a few
  large directions, like real key caches. Boxes are thin in the small directions.
- ``low-rank``: keys on a random 2-dimensional plane in R^d plus noise of 0.01: intrinsic
  dimension 2 whatever d is. The tree prunes as in the plane.

The threshold is the paper's, relative to each query's score spread: b = sigma_a sqrt(c ln n)
on the score s_j = <a, k_j>/sqrt(d), that is t = sqrt(d) b on the raw inner product <a, k_j>,
where sigma_a is the standard deviation of the score over the keys (so std(K @ a), the spread
of the raw inner products, is sqrt(d) sigma_a and t = std(K @ a) sqrt(c ln n)). E[k] is then
about the same for every kind of keys.

That is our specialisation, not the paper's: the paper uses one scalar b for every row, and a
per-row threshold needs each row's score spread, that is, the dense pass over the keys that
the method is meant to avoid. ``per_row_vs_scalar`` measures what changes with one scalar b.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from ..hsr import HSR, TREE
from ..hsr.plan import race
from ..theory import paper_threshold
from ..validate import as_positive_int
from .common import seeds_for, unit_vectors

KEY_KINDS = ("isotropic", "anisotropic", "low-rank")
# Peak memory is about 4x the keys: the caller's array, each structure's validated copy and the
# tree's permuted copy. 512 MiB of keys (n = 2^20 at d = 64) stays near 2 GiB.
MAX_KEY_BYTES = 2**29


@dataclass(frozen=True)
class QueryCost:
    """Per n: median seconds per query of the tree and of the scan, mean work and k."""

    n: np.ndarray
    d: int
    keys: str
    tree_s: np.ndarray  # median over queries of the median of 3 timings, the kd-tree (``tree``)
    scan_s: np.ndarray  # the same for the scan K @ a >= t (backend="brute")
    work: np.ndarray  # mean box tests + inner products of the tree (can exceed n)
    reported: np.ndarray  # mean k, the keys reported
    blas_threads: int | None  # BLAS threads both sides ran with (None: the library's default)
    tree: str = "numpy"  # the kd-tree's backend: hsr.TREE, "compiled" where Numba is installed

    @property
    def speedup(self) -> np.ndarray:
        """scan time / tree time: above 1 the tree wins."""
        return self.scan_s / self.tree_s


def make_keys(kind: str, n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """n keys in R^d of the given kind (see the module docstring), shape (n, d)."""
    _check_kind(kind)
    if kind == "isotropic":
        return rng.standard_normal((n, d))
    if kind == "anisotropic":
        return rng.standard_normal((n, d)) * np.geomspace(1.0, 0.01, d)
    basis = np.linalg.qr(rng.standard_normal((d, min(2, d))))[0]  # (d, 2), orthonormal
    return rng.standard_normal((n, basis.shape[1])) @ basis.T + 0.01 * rng.standard_normal((n, d))


def measure_query_cost(n_values, d: int, keys: str = "isotropic", n_queries: int = 7,
                       c: float = 0.4, seed: int = 0, blas_threads: int | None = 1,
                       on_step: Callable[[int, int], None] | None = None) -> QueryCost:
    """Time the tree and the scan side by side on the same keys and queries, for each n.

    The tree is ``hsr.TREE``: the kd-tree walked by compiled loops where Numba is installed,
    else the NumPy walk (same tree, same counters); ``QueryCost.tree`` names it.

    For each n: build both structures over the same keys; for each of ``n_queries`` unit
    queries, time each structure three times, alternating which goes first, and keep its median;
    report the medians over queries. Both sides run with ``blas_threads`` BLAS threads (1, as
    in ``benchmarks/``: on a shared machine a threaded call that waits for a busy core is
    noise). ``on_step(done, total)`` is called after each n, in units of keys measured.
    """
    d, n_arr = as_positive_int("d", d), np.asarray(n_values, dtype=np.int64)
    if n_arr.ndim != 1 or not len(n_arr) or n_arr.min() < 2:
        raise ValueError(f"n_values must be a non-empty list of sizes >= 2; got {n_values!r}")
    if int(n_arr.max()) * d * 8 > MAX_KEY_BYTES:
        raise ValueError(f"n = {int(n_arr.max())} keys of d = {d} take "
                         f"{n_arr.max() * d * 8 / 2**20:.0f} MiB (and about 4x that while "
                         f"measured); keep n * d * 8 bytes under {MAX_KEY_BYTES // 2**20} MiB")
    _check_kind(keys)
    n_queries = as_positive_int("n_queries", n_queries)
    columns = {name: np.zeros(len(n_arr)) for name in ("tree", "scan", "work", "k")}
    with threadpool_limits(blas_threads):
        for i, (n, child) in enumerate(zip(n_arr, seeds_for(seed, len(n_arr)), strict=True)):
            rng = np.random.default_rng(child)
            K = make_keys(keys, int(n), d, rng)
            tree, scan = HSR(K, backend=TREE.name), HSR(K, backend="brute")
            times = []
            for a in unit_vectors(rng, n_queries, d):
                t = float(paper_threshold(n, np.std(K @ a), c))  # sqrt(d) b, per row: dense
                medians = race({name: lambda s=s, a=a, t=t: s.query(a, t)
                                for name, s in (("tree", tree), ("scan", scan))}, 3)
                times.append([medians["tree"], medians["scan"]])
                _, stats = tree.query(a, t, stats=True)
                columns["work"][i] += stats.work / n_queries
                columns["k"][i] += stats.points_reported / n_queries
            columns["tree"][i], columns["scan"][i] = np.median(times, axis=0)
            if on_step is not None:
                on_step(int(n_arr[:i + 1].sum()), int(n_arr.sum()))
    return QueryCost(n_arr, d, keys, columns["tree"], columns["scan"], columns["work"],
                     columns["k"], blas_threads, TREE.name)


def _check_kind(kind: object) -> None:
    if kind not in KEY_KINDS:
        raise ValueError(f"keys must be one of {', '.join(KEY_KINDS)}; got {kind!r}")


@dataclass(frozen=True)
class ThresholdRows:
    """Activated count per row with a per-row threshold and with one scalar b for all rows."""

    keys: str
    n: int
    d: int
    per_row: np.ndarray  # (rows,) k with t_i = std(K @ a_i) sqrt(c ln n): needs a dense pass
    scalar: np.ndarray  # (rows,) k with one t = sqrt(d) sigma_a sqrt(c ln n), sigma_a fixed
    sigma_a: float  # the scalar's sigma_a: the mean over rows of std(K @ a_i) / sqrt(d)


def per_row_vs_scalar(keys: str = "isotropic", n: int = 2**14, d: int = 16, rows: int = 64,
                      c: float = 0.4, seed: int = 0) -> ThresholdRows:
    """k per row at the per-row threshold (our panels) and at one scalar b (the paper's).

    The scalar uses sigma_a estimated once, as the mean score spread over the rows; for
    isotropic keys and unit queries every row has the same spread, 1/sqrt(d), so both agree.
    """
    _check_kind(keys)
    rng = np.random.default_rng(seed)
    K, A = make_keys(keys, n, d, rng), unit_vectors(rng, rows, d)
    S = K @ A.T  # (n, rows): raw inner products, the dense pass
    spread = S.std(axis=0)
    t_rows = np.asarray(paper_threshold(n, spread, c))
    sigma_a = float(spread.mean()) / np.sqrt(d)
    t_scalar = float(paper_threshold(n, sigma_a, c)) * np.sqrt(d)
    return ThresholdRows(keys, n, d, (S >= t_rows).sum(axis=0), (S >= t_scalar).sum(axis=0),
                         sigma_a)
