"""How many entries of a ReLU^alpha attention row are activated, as n grows.

With i.i.d. Gaussian keys (std sigma_k) and a query q, the scaled score
s_j = <q, k_j> / sqrt(d) is N(0, sigma_a^2) with sigma_a = sigma_k ||q|| / sqrt(d). At the
threshold b = sigma_a sqrt(c ln n) a row keeps n Phibar(sqrt(c ln n)) <= n^{1 - c/2} entries in
expectation (``hsr_lab.theory``); ``sparsity_sweep`` counts them. ``row_max_sweep`` checks the
paper's with-high-probability claim: the largest count over many rows against 2 n^{4/5}.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import theory
from ..cache import cached
from .common import progress, resolve_quick, seeds_for, unit_vectors


@dataclass(frozen=True)
class SparsitySweep:
    """Activated entries per row: ``counts[c, seed, n]`` is the mean over the queries."""

    n: np.ndarray  # (N,) context lengths
    c: np.ndarray  # (C,) threshold constants, b = sigma_a sqrt(c ln n)
    counts: np.ndarray  # (C, S, N) mean activated count per row, one value per seed
    d: int
    n_queries: int


def _count_rows(n: int, d: int, c_values: np.ndarray, n_queries: int, seed: int) -> np.ndarray:
    """Mean activated count per row at each c, for one seed: fresh keys, unit queries."""
    rng = np.random.default_rng(seed)
    keys = rng.standard_normal((n, d))
    queries = unit_vectors(rng, n_queries, d)
    scores = keys @ queries.T / np.sqrt(d)  # (n, m): s_j for each query
    sigma_a = theory.score_sigma(1.0, 1.0, d)
    b = np.array([theory.paper_threshold(n, sigma_a, c) for c in c_values])
    return (scores[None, :, :] > b[:, None, None]).sum(axis=1).mean(axis=1)


def sparsity_sweep(n_values=None, c_values=(0.4, 0.8, 1.2), seeds: int = 5, d: int = 16,
                   n_queries: int = 16, seed: int = 0, quick: bool | None = None,
                   force: bool = False) -> SparsitySweep:
    """Count activated entries per row for every n, c and seed (cached on disk).

    Default n: 2^8 .. 2^20 in full mode, 2^8 .. 2^14 in quick mode.
    """
    quick = resolve_quick(quick)
    if n_values is None:
        n_values = 2 ** np.arange(8, 15 if quick else 21)
    n_arr = np.asarray(n_values, dtype=np.int64)
    c_arr = np.asarray(c_values, dtype=np.float64)
    params = dict(n=n_arr.tolist(), c=c_arr.tolist(), seeds=seeds, d=d, m=n_queries, seed=seed)

    def compute() -> dict[str, np.ndarray]:
        counts = np.zeros((len(c_arr), seeds, len(n_arr)))
        children = seeds_for(seed, seeds * len(n_arr))
        cells = [(s, i) for s in range(seeds) for i in range(len(n_arr))]
        for s, i in progress(cells, "sparsity sweep"):
            counts[:, s, i] = _count_rows(int(n_arr[i]), d, c_arr, n_queries,
                                          children[s * len(n_arr) + i])
        return {"counts": counts}

    result = cached("sparsity", params, compute, force=force)
    return SparsitySweep(n_arr, c_arr, result["counts"], d, n_queries)


def activation_mask(m: int = 48, n: int = 256, d: int = 16, c: float = theory.PAPER_C,
                    alpha: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """A Gaussian instance at the paper's threshold: the scores, the ReLU^alpha matrix and its mask.

    A = ReLU(Q K^T / sqrt(d) - b)^alpha with b = sigma_a sqrt(c ln n), unit-norm queries.
    """
    rng = np.random.default_rng(seed)
    keys = rng.standard_normal((n, d))
    queries = unit_vectors(rng, m, d)
    scores = queries @ keys.T / np.sqrt(d)
    b = float(theory.paper_threshold(n, theory.score_sigma(1.0, 1.0, d), c))
    relu = np.maximum(scores - b, 0.0) ** alpha
    return {"scores": scores, "relu": relu, "mask": scores > b, "b": np.float64(b)}


@dataclass(frozen=True)
class RowMaxSweep:
    """Per n: the largest and the mean activated count over ``rows`` rows, c = 0.4."""

    n: np.ndarray
    row_max: np.ndarray  # (N,) max over rows
    row_mean: np.ndarray  # (N,) mean over rows
    rows: int
    d: int


def row_max_sweep(n_values=None, rows: int | None = None, d: int = 16, seed: int = 0,
                  quick: bool | None = None, force: bool = False) -> RowMaxSweep:
    """The most activated entries in any of ``rows`` rows (unit queries, one Gaussian key set per
    n) at b = sigma_a sqrt(0.4 ln n), against the paper's w.h.p. bound 2 n^{4/5} (cached).

    Each row's count is Binomial(n, Phibar(sqrt(0.4 ln n))) given its query. Default: n = 2^8 ..
    2^18 with 1024 rows (full), 2^8 .. 2^14 with 256 rows (quick).
    """
    quick = resolve_quick(quick)
    if n_values is None:
        n_values = 2 ** np.arange(8, 15 if quick else 19, 2)
    rows = rows or (256 if quick else 1024)
    n_arr = np.asarray(n_values, dtype=np.int64)
    params = dict(n=n_arr.tolist(), rows=rows, d=d, seed=seed)

    def compute() -> dict[str, np.ndarray]:
        out = {"max": np.zeros(len(n_arr)), "mean": np.zeros(len(n_arr))}
        children = seeds_for(seed, len(n_arr))
        for j in progress(range(len(n_arr)), "row maxima"):
            rng = np.random.default_rng(children[j])
            n = int(n_arr[j])
            keys, queries = rng.standard_normal((n, d)), unit_vectors(rng, rows, d)
            b = float(theory.paper_threshold(n, theory.score_sigma(1.0, 1.0, d)))
            counts = np.concatenate([  # 64 rows at a time keeps the score block small
                (keys @ queries[i:i + 64].T / np.sqrt(d) > b).sum(axis=0)
                for i in range(0, rows, 64)])
            out["max"][j], out["mean"][j] = counts.max(), counts.mean()
        return out

    r = cached("row_max", params, compute, force=force)
    return RowMaxSweep(n_arr, r["max"], r["mean"], rows, d)


def one_row_scores(n: int = 2**16, d: int = 16, c: float = theory.PAPER_C, seed: int = 0
                   ) -> tuple[np.ndarray, float, float]:
    """One row's scores s_j = <q, k_j>/sqrt(d) for a unit query and n Gaussian keys, with
    sigma_a (= 1/sqrt(d) here) and the paper's threshold b = sigma_a sqrt(c ln n)."""
    rng = np.random.default_rng(seed)
    q = unit_vectors(rng, 1, d)[0]
    scores = rng.standard_normal((n, d)) @ q / np.sqrt(d)
    sigma_a = float(theory.score_sigma(1.0, 1.0, d))
    return scores, sigma_a, float(theory.paper_threshold(n, sigma_a, c))
