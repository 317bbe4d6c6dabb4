"""Softmax restricted to the massively activated entries: dropped mass and error against b.

Keeping only s_ij >= b and renormalising gives Attn_hat with
||Attn - Attn_hat||_inf <= 2 max_i eps_i ||V||_inf, eps_i the softmax mass of row i on the
dropped entries. The sweeps measure both sides for Gaussian data, with and without a few
planted keys that every query scores highly (massive activations, like attention sinks).

``dropped_mass_vs_n`` fixes b at the paper's threshold sigma_a sqrt(0.4 ln n) and grows n, with
unit queries at d = 16 (sigma_a = 1/4): Gaussian keys then drop most of the mass, planted sinks
little. ``dropped_mass_vs_sigma`` varies the score scale sigma_a: the dropped share is about
Phi(sqrt(0.4 ln n) - sigma_a) (``theory.gaussian_dropped_mass``), near 1 at sigma_a = 1/4 and
small once sigma_a exceeds sqrt(0.4 ln n), while the kept share of entries does not move.
``sink_budget`` measures how far the planted sinks carry the mass (notebook 4's exercises).
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


def planted_instance(m: int, n: int, d: int, planted: int, seed: int,
                     sigma_a: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Queries of norm sigma_a sqrt(d) (unit queries, sigma_a = 1/sqrt(d), by default), Gaussian
    keys and values; the first ``planted`` keys point along the mean query, long enough that
    every query scores them near 1.5 ln n (times its cosine with them), far above the Gaussian
    scores s_j ~ N(0, sigma_a^2), so they carry most of the softmax mass."""
    if isinstance(planted, bool) or not isinstance(planted, int | np.integer) or planted < 0:
        raise ValueError(f"planted must be a whole number of keys >= 0; got {planted!r}")
    if planted > n:
        raise ValueError(f"planted must be at most n = {n}; got {planted}")
    scale = 1.0 if sigma_a is None else _query_norm(sigma_a, d)
    rng = np.random.default_rng(seed)
    Q = unit_vectors(rng, m, d)
    Q[:, 0] += 2.0  # queries share a direction, as real queries do
    Q /= np.linalg.norm(Q, axis=1, keepdims=True)
    K, V = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    mean = Q.mean(axis=0)
    K[:planted] = 1.5 * np.log(n) * np.sqrt(d) * mean / np.linalg.norm(mean) / scale
    return Q * scale, K, V


def _query_norm(sigma_a: float, d: int) -> float:
    """||q|| = sigma_a sqrt(d): the norm that gives scores of std sigma_a on N(0, I) keys."""
    if isinstance(sigma_a, bool) or not isinstance(sigma_a, int | float | np.floating) \
            or not 0 < sigma_a < 1e3:
        raise ValueError(f"sigma_a must be a score scale in (0, 1000); got {sigma_a!r}")
    return float(sigma_a) * float(np.sqrt(d))


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


@dataclass(frozen=True)
class SigmaSweep:
    """Per n (rows) and score scale sigma_a (columns), Gaussian keys at the paper's b(n)."""

    n: np.ndarray  # (N,)
    sigma_a: np.ndarray  # (S,) the std of the scores, set by the query norm sigma_a sqrt(d)
    b: np.ndarray  # (N, S) b = sigma_a sqrt(0.4 ln n)
    mean_dropped: np.ndarray  # (N, S) mean_i eps_i over the m rows
    max_dropped: np.ndarray  # (N, S) max_i eps_i
    kept: np.ndarray  # (N, S) mean kept entries per row
    m: int
    d: int

    @property
    def formula(self) -> np.ndarray:
        """Phi(sqrt(0.4 ln n) - sigma_a), shape (N, S): ``theory.gaussian_dropped_mass``."""
        return np.asarray(theory.gaussian_dropped_mass(self.n[:, None].astype(float),
                                                       self.sigma_a[None, :]))


def gaussian_instance(m: int, n: int, d: int, seed: int, sigma_a: float
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keys and values N(0, I_d); m queries in independent uniform directions, of norm
    sigma_a sqrt(d), so that every score s_ij = <q_i, k_j>/sqrt(d) is N(0, sigma_a^2). The same
    seed gives the same keys and directions for every sigma_a."""
    rng = np.random.default_rng(seed)
    K, V = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    return unit_vectors(rng, m, d) * _query_norm(sigma_a, d), K, V


def dropped_mass_vs_sigma(n_values=None, sigma_values=(0.25, 1.0, 2.0, 3.0), d: int = 16,
                          m: int = 20, seed: int = 0, quick: bool | None = None,
                          force: bool = False) -> SigmaSweep:
    """eps_i at the paper's threshold b = sigma_a sqrt(0.4 ln n), for each n and sigma_a, on
    ``gaussian_instance`` (cached).

    Default n: 2^8 .. 2^16 (full), 2^8 .. 2^12 (quick). The kept entries come from the kd-tree
    (``backend="numpy"``), as in ``dropped_mass_vs_n``.
    """
    quick = resolve_quick(quick)
    if n_values is None:
        n_values = 2 ** np.arange(8, 13 if quick else 17)
    n_arr, s_arr = np.asarray(n_values, dtype=np.int64), np.asarray(sigma_values, dtype=float)
    params = dict(n=n_arr.tolist(), sigma=s_arr.tolist(), d=d, m=m, seed=seed)
    b_arr = np.array([[float(theory.paper_threshold(int(n), s)) for s in s_arr] for n in n_arr])

    def compute() -> dict[str, np.ndarray]:
        out = {k: np.zeros((len(n_arr), len(s_arr))) for k in ("mean", "max", "kept")}
        for i in progress(range(len(n_arr)), "dropped mass against sigma_a"):
            for j, sigma in enumerate(s_arr):
                Q, K, V = gaussian_instance(m, int(n_arr[i]), d, seed, float(sigma))
                _, stats = softmax_attention(Q, K, V, method="hsr", b=float(b_arr[i, j]),
                                             backend="numpy", return_stats=True)
                eps = stats.dropped_mass
                out["mean"][i, j], out["max"][i, j] = eps.mean(), eps.max()
                out["kept"][i, j] = stats.activated.mean()
        return out

    r = cached("dropped_mass_vs_sigma", params, compute, force=force)
    return SigmaSweep(n_arr, s_arr, b_arr, r["mean"], r["max"], r["kept"], m, d)


@dataclass(frozen=True)
class SinkBudget:
    """How far planted sinks carry a softmax row, measured on one planted instance."""

    n: int
    sink_scores: np.ndarray  # (m,) each row's lowest sink score, in units of ln n
    sinks_only: np.ndarray  # (m,) eps_i when exactly the planted keys are kept
    eps_target: float
    b_target: float  # the largest b at which every row drops less than eps_target
    kept_target: float  # mean kept entries per row at b_target


def sink_budget(n: int, d: int = 16, m: int = 32, planted: int = 4, seed: int = 0,
                eps_target: float = 1e-3) -> SinkBudget:
    """On ``planted_instance(m, n, d, planted, seed)``: the sinks' scores / ln n, eps_i when only
    the sinks are kept, and the largest b with max_i eps_i < eps_target (exact: from each row's
    sorted scores, no grid), with the entries kept there."""
    if not 0 < eps_target < 1:
        raise ValueError(f"eps_target must be a share of softmax mass in (0, 1); got {eps_target}")
    Q, K, _ = planted_instance(m, n, d, planted, seed)
    S = Q @ K.T / np.sqrt(d)  # (m, n)
    W = np.exp(S - S.max(axis=1, keepdims=True))
    sinks_only = W[:, planted:].sum(axis=1) / W.sum(axis=1)
    order = np.argsort(S, axis=1)
    S_sorted, W_sorted = np.take_along_axis(S, order, 1), np.take_along_axis(W, order, 1)
    below = np.cumsum(W_sorted, axis=1) - W_sorted  # mass strictly below each sorted score
    ok = below < eps_target * W.sum(axis=1, keepdims=True)  # keeping s >= this score is safe
    b_rows = np.array([S_sorted[i, np.flatnonzero(ok[i])[-1]] for i in range(m)])
    b_target = float(b_rows.min())
    kept = float((S >= b_target).sum(axis=1).mean())
    return SinkBudget(n, S[:, :planted].min(axis=1) / np.log(n), sinks_only, eps_target,
                      b_target, kept)
