"""Softmax restricted to the massively activated entries: dropped mass and error against b.

Keeping only s_ij >= b and renormalising gives Attn_hat with
||Attn - Attn_hat||_inf <= 2 max_i eps_i ||V||_inf, eps_i the softmax mass of row i on the
dropped entries. The sweep measures both sides for Gaussian data, with and without a few
planted keys that every query scores highly (massive activations, like attention sinks).
``dropped_mass_vs_n`` fixes b at the paper's threshold sigma_a sqrt(0.4 ln n) and grows n: with
Gaussian keys the dropped mass stays near 1 (the Gaussian model behind n^{4/5} and the
massive-activation assumption behind "negligible error" do not hold together); with planted
sinks it is small.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import theory
from ..attention import softmax_attention
from ..cache import cached
from .common import progress, resolve_quick, unit_vectors


@dataclass(frozen=True)
class SoftmaxSweep:
    """Per threshold b (rows) and setting (columns: planted = 0 and planted > 0)."""

    b: np.ndarray  # (B,) thresholds on the score s = <q, k>/sqrt(d)
    planted: np.ndarray  # (P,) number of planted high-scoring keys
    max_dropped: np.ndarray  # (B, P) max_i eps_i
    mean_dropped: np.ndarray  # (B, P) mean_i eps_i
    error: np.ndarray  # (B, P) max |Attn - Attn_hat|
    bound: np.ndarray  # (B, P) 2 max_i eps_i ||V||_inf
    kept: np.ndarray  # (B, P) mean kept entries per row
    n: int


def planted_instance(m: int, n: int, d: int, planted: int, seed: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit queries, Gaussian keys and values; the first ``planted`` keys point along the mean
    query with norm ``1.5 ln(n) sqrt(d)``: every query scores them near 1.5 ln n, far above
    the Gaussian scores (std 1/sqrt(d)), so they carry most of the softmax mass."""
    if isinstance(planted, bool) or not isinstance(planted, int | np.integer) or planted < 0:
        raise ValueError(f"planted must be a whole number of keys >= 0; got {planted!r}")
    if planted > n:
        raise ValueError(f"planted must be at most n = {n}; got {planted}")
    rng = np.random.default_rng(seed)
    Q = unit_vectors(rng, m, d)
    Q[:, 0] += 2.0  # queries share a direction, as real queries do
    Q /= np.linalg.norm(Q, axis=1, keepdims=True)
    K, V = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    mean = Q.mean(axis=0)
    K[:planted] = 1.5 * np.log(n) * np.sqrt(d) * mean / np.linalg.norm(mean)
    return Q, K, V


def softmax_error_sweep(b_values=None, planted=(0, 4), n: int | None = None, d: int = 16,
                        m: int = 32, seed: int = 0, quick: bool | None = None,
                        force: bool = False) -> SoftmaxSweep:
    """Dropped mass, error and bound of thresholded softmax for each b (cached on disk)."""
    quick = resolve_quick(quick)
    n = n or (1024 if quick else 16384)
    if b_values is None:
        b_values = np.linspace(-1.0, 1.5, 11 if quick else 26)
    b_arr, p_arr = np.asarray(b_values, dtype=float), np.asarray(planted, dtype=np.int64)
    params = dict(b=b_arr.tolist(), planted=p_arr.tolist(), n=n, d=d, m=m, seed=seed)

    def compute() -> dict[str, np.ndarray]:
        out = {k: np.zeros((len(b_arr), len(p_arr)))
               for k in ("max_dropped", "mean_dropped", "error", "bound", "kept")}
        for j, p in enumerate(p_arr):
            Q, K, V = planted_instance(m, n, d, int(p), seed)
            dense = softmax_attention(Q, K, V)
            for i, b in enumerate(progress(b_arr, f"softmax sweep (planted={p})")):
                approx, stats = softmax_attention(Q, K, V, method="hsr", b=float(b),
                                                  backend="numpy", return_stats=True)
                eps = stats.dropped_mass
                out["max_dropped"][i, j], out["mean_dropped"][i, j] = eps.max(), eps.mean()
                out["error"][i, j] = np.abs(approx - dense).max()
                out["bound"][i, j] = theory.softmax_error_bound(eps, np.abs(V).max())
                out["kept"][i, j] = stats.activated.mean()
        return out

    r = cached("softmax_error", params, compute, force=force)
    return SoftmaxSweep(b_arr, p_arr, r["max_dropped"], r["mean_dropped"], r["error"],
                        r["bound"], r["kept"], n)


@dataclass(frozen=True)
class MassSweep:
    """Per n (rows) and setting (columns: planted = 0 and planted > 0), at the paper's b(n)."""

    n: np.ndarray  # (N,)
    planted: np.ndarray  # (P,)
    b: np.ndarray  # (N,) b = sigma_a sqrt(0.4 ln n), sigma_a = 1/sqrt(d) for unit queries
    max_dropped: np.ndarray  # (N, P) max_i eps_i
    mean_dropped: np.ndarray  # (N, P) mean_i eps_i
    kept: np.ndarray  # (N, P) mean kept entries per row
    d: int


def dropped_mass_vs_n(n_values=None, planted=(0, 4), d: int = 16, m: int = 32, seed: int = 0,
                      quick: bool | None = None, force: bool = False) -> MassSweep:
    """eps_i of softmax kept at s_ij >= b(n), the paper's threshold, as n grows (cached).

    Default n: 2^8 .. 2^16 (full), 2^8 .. 2^12 (quick). Uses the kd-tree (``backend="numpy"``).
    """
    quick = resolve_quick(quick)
    if n_values is None:
        n_values = 2 ** np.arange(8, 13 if quick else 17)
    n_arr, p_arr = np.asarray(n_values, dtype=np.int64), np.asarray(planted, dtype=np.int64)
    sigma_a = theory.score_sigma(1.0, 1.0, d)
    b_arr = np.array([float(theory.paper_threshold(int(n), sigma_a)) for n in n_arr])
    params = dict(n=n_arr.tolist(), planted=p_arr.tolist(), d=d, m=m, seed=seed)

    def compute() -> dict[str, np.ndarray]:
        out = {k: np.zeros((len(n_arr), len(p_arr))) for k in ("max", "mean", "kept")}
        for i in progress(range(len(n_arr)), "dropped mass against n"):
            for j, p in enumerate(p_arr):
                Q, K, V = planted_instance(m, int(n_arr[i]), d, int(p), seed)
                _, stats = softmax_attention(Q, K, V, method="hsr", b=float(b_arr[i]),
                                             backend="numpy", return_stats=True)
                eps = stats.dropped_mass
                out["max"][i, j], out["mean"][i, j] = eps.max(), eps.mean()
                out["kept"][i, j] = stats.activated.mean()
        return out

    r = cached("dropped_mass_vs_n", params, compute, force=force)
    return MassSweep(n_arr, p_arr, b_arr, r["max"], r["mean"], r["kept"], d)
