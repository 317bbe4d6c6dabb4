"""The paper's Gaussian picture, measured on real attention scores of all-MiniLM-L6-v2.

Row i of a head has scores s_ij = <q_i, k_j> / sqrt(d), d = 32. The paper assumes s_ij is
Gaussian with mean 0 for a fixed query and uses one scalar threshold b = sigma_a sqrt(c ln n).
Real rows are not centred, so here each row gets its *fitted* Gaussian N(mu_i, sigma_i^2) (mean
and standard deviation over the row) and a centred per-row threshold (ours, not the paper's)

    b_i = mu_i + sigma_i sqrt(c ln n),   c = 0.4,

so that under the Gaussian model P(s_ij >= b_i) = Phibar(sqrt(c ln n)) =
``theory.expected_activated(n) / n``. The exact mu_i and sigma_i read the whole row: a
measurement tool here; a sample of s keys estimates them in O(s d) (notebook 05).
Thresholding real softmax scores this way is a post-hoc view: no public model uses ReLU^alpha
attention, so these counts say how sparse ReLU^alpha *would* be on keys like these, and how
much softmax mass the paper's "massively activated" entries carry.

``depth_sweep`` asks whether a kd-tree fails on these keys because one passage is short (a
tree at most 4 levels deep) or because d = 32 is high: it grows n at fixed d.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from hsr_lab import HSR, cache, softmax_attention, theory
from hsr_lab.data.corpus import cached_extractions
from hsr_lab.data.minilm import HEAD_DIM, ExtractedAttention

C = theory.PAPER_C  # the paper's constant in b = sigma sqrt(c ln n)


def row_thresholds(S: np.ndarray, c: float = C) -> np.ndarray:
    """b_i = mu_i + sigma_i sqrt(c ln n) per row of S (..., m, n): the paper's sqrt(c ln n)
    applied to each row's fitted Gaussian, a centred per-row threshold (ours, not the
    paper's scalar b)."""
    n = S.shape[-1]
    mu, sigma = S.mean(axis=-1, dtype=np.float64), S.std(axis=-1, dtype=np.float64)
    return mu + sigma * np.sqrt(c * np.log(n))


def share_activated(S: np.ndarray, c: float = C) -> np.ndarray:
    """Mean over rows of |{j : s_ij >= b_i}| / n; S is (..., m, n), the result (...)."""
    b = row_thresholds(S, c)
    return (S >= b[..., None]).mean(axis=(-1, -2))


def gaussian_share(n: int, c: float = C) -> float:
    """What the Gaussian model predicts for ``share_activated``: Phibar(sqrt(c ln n))."""
    return float(theory.expected_activated(n, c)) / n


def qq_points(S: np.ndarray, sink: bool = True, probs: int = 199
              ) -> tuple[np.ndarray, np.ndarray]:
    """Normal quantiles and the matching quantiles of the row-standardised scores
    z_ij = (s_ij - mu_i) / sigma_i, pooled over rows; ``sink=False`` drops column 0 first."""
    S = np.asarray(S, dtype=np.float64)[..., 0 if sink else 1:]
    Z = (S - S.mean(axis=-1, keepdims=True)) / S.std(axis=-1, keepdims=True)
    p = (np.arange(1, probs + 1) - 0.5) / probs
    p = np.concatenate([p, [1 - 1e-4]])  # and the far tail, where the sink shows
    return sps.norm.ppf(p), np.quantile(Z.ravel(), p)


def hsr_work(K: np.ndarray, Q: np.ndarray, rows: np.ndarray, c: float = C
             ) -> tuple[float, float]:
    """Mean ``QueryStats.work`` and mean reported k of HSR(K, numpy) for the queries
    ``Q[rows]`` at t = sqrt(d) b_i (b_i from the row's fitted Gaussian)."""
    index = HSR(K, backend="numpy")
    b = row_thresholds(Q[rows] @ K.T / np.sqrt(HEAD_DIM), c)
    work, found = 0, 0
    for q, b_i in zip(Q[rows], b, strict=True):
        _, qs = index.query(q, np.sqrt(HEAD_DIM) * b_i, stats=True)
        work, found = work + qs.work, found + qs.points_reported
    return work / len(rows), found / len(rows)


def dropped_mass(Q: np.ndarray, K: np.ndarray, V: np.ndarray, rows: np.ndarray,
                 sinks: int, c: float = C) -> np.ndarray:
    """eps_i of softmax restricted to the HSR-reported entries s_ij >= b_i (plus the first
    ``sinks`` keys, kept dense), one row at a time since b_i differs per row."""
    b = row_thresholds(Q[rows] @ K.T / np.sqrt(HEAD_DIM), c)
    eps = np.empty(len(rows))
    for r, (i, b_i) in enumerate(zip(rows, b, strict=True)):
        _, st = softmax_attention(Q[i:i + 1], K, V, method="hsr", b=float(b_i), sinks=sinks,
                                  backend="numpy", return_stats=True)
        eps[r] = st.dropped_mass[0]
    return eps


@dataclass(frozen=True, eq=False)
class RealSweep:
    """Every number the ``real_attention`` figure draws (arrays over layers L and heads H).

    share: (L, H) mean share of entries with s_ij >= b_i, over rows and passages;
    prediction: Phibar(sqrt(c ln n)) at the mean passage length n_share.
    n: the key counts of the work sweep; work, reported: (len(n), L*H) mean per query.
    eps_free, eps_sink: (L, H) mean dropped mass with sinks=0 and sinks=1.
    sink_mass: (L, H) mean softmax probability on token 0 ([CLS]).
    """

    share: np.ndarray
    prediction: float
    n_share: float
    n: np.ndarray
    work: np.ndarray
    reported: np.ndarray
    eps_free: np.ndarray
    eps_sink: np.ndarray
    sink_mass: np.ndarray

    def __repr__(self) -> str:
        return (f"RealSweep(share {self.share.mean():.4f} vs Gaussian {self.prediction:.4f}; "
                f"work at n={self.n[-1]}: {np.median(self.work[-1]):.0f}; dropped mass "
                f"{self.eps_free.mean():.3f} (no sink) vs {self.eps_sink.mean():.3f} (sink))")


def sweep(exs: list[ExtractedAttention], rows: int = 32, sizes: tuple[int, ...] = (32, 64, 128,
          256, 512), seed: int = 0) -> dict[str, np.ndarray]:
    """Measure share, HSR work and dropped mass on extractions ``exs`` (all layers, heads);
    work and dropped mass on the longest passage, ``rows`` random queries per head."""
    rng = np.random.default_rng(seed)
    S_all = [ex.scores() for ex in exs]
    share = np.mean([share_activated(S) for S in S_all], axis=0)
    n_mean = float(np.mean([ex.n for ex in exs]))
    ex = max(exs, key=lambda e: e.n)
    L, H = ex.Q.shape[:2]
    n_grid = np.array(sorted({min(s, ex.n) for s in sizes}))
    work, reported = np.zeros((len(n_grid), L * H)), np.zeros((len(n_grid), L * H))
    eps_free, eps_sink = np.zeros((L, H)), np.zeros((L, H))
    for li in range(L):
        for h in range(H):
            Q, K, V = (np.asarray(a[li, h], dtype=np.float64) for a in (ex.Q, ex.K, ex.V))
            for g, n in enumerate(n_grid):
                pick = rng.choice(n, size=min(rows, n), replace=False)
                work[g, li * H + h], reported[g, li * H + h] = hsr_work(K[:n], Q[:n], pick)
            pick = rng.choice(ex.n, size=min(rows, ex.n), replace=False)
            eps_free[li, h] = dropped_mass(Q, K, V, pick, sinks=0).mean()
            eps_sink[li, h] = dropped_mass(Q, K, V, pick, sinks=1).mean()
    sink_mass = np.mean([e.P[..., 0].mean(axis=-1) for e in exs], axis=0)
    return dict(share=share, prediction=gaussian_share(round(n_mean)), n_share=n_mean,
                n=n_grid, work=work, reported=reported, eps_free=eps_free, eps_sink=eps_sink,
                sink_mass=sink_mass)


def real_sweep(quick: bool = False, seed: int = 0, force: bool = False) -> RealSweep:
    """``sweep`` over the default passages, cached on disk; ``quick``: 2 short passages.

    Full: 4 passages of 256..512 tokens, 32 queries per head (about half a minute, once).
    """
    opts = (dict(count=2, min_tokens=96, max_tokens=128, rows=8) if quick
            else dict(count=4, min_tokens=256, max_tokens=512, rows=32))
    rows = opts.pop("rows")
    params = dict(opts, rows=rows, seed=seed, c=C)

    def compute() -> dict[str, np.ndarray]:
        return sweep(cached_extractions(seed=seed, **opts), rows=rows, seed=seed)

    data = cache.cached("real_attention", params, compute, force=force)
    return RealSweep(**{k: (float(v) if v.ndim == 0 else v) for k, v in data.items()})


# ----------------------------------------------------------------------------- small n or high d?
DEPTH_HEADS = ((0, 5), (3, 5), (5, 5))  # (layer, head) of the MiniLM keys in the depth sweep


def pooled_keys(count: int, seed: int = 0, min_tokens: int = 256, max_tokens: int = 512,
                heads: tuple[tuple[int, int], ...] = DEPTH_HEADS) -> dict[str, np.ndarray]:
    """The keys and queries of ``heads`` over ``count`` passages, stacked passage after passage:
    Q, K (len(heads), N, 32) float32. Passages do not see each other, so the pool is a sample
    of the keys a head produces, not one long context (MiniLM reads at most 512 tokens)."""
    from hsr_lab.data.corpus import passages
    from hsr_lab.data.minilm import extract

    Qs, Ks = [], []
    for text in passages(count, seed, min_tokens, max_tokens):
        ex = extract(text, max_tokens=max_tokens)
        Qs.append(np.stack([ex.Q[li, h] for li, h in heads]))
        Ks.append(np.stack([ex.K[li, h] for li, h in heads]))
    return dict(Q=np.concatenate(Qs, axis=1), K=np.concatenate(Ks, axis=1))


def tree_fractions(K: np.ndarray, A: np.ndarray, c: float = C) -> tuple[float, float, float]:
    """Mean nodes visited / n, inner products / n and reported k / n of HSR(K, "numpy") for the
    queries A, each at t = sqrt(d) b_i with b_i = mu_i + sigma_i sqrt(c ln n) from its exact
    row of scores (the same rule for every kind of key, so that only the keys differ)."""
    K, A = np.asarray(K, np.float64), np.asarray(A, np.float64)
    n, d = K.shape
    b = row_thresholds(A @ K.T / np.sqrt(d), c)
    index = HSR(K, backend="numpy")
    stats = [index.query(a, np.sqrt(d) * b_i, stats=True)[1] for a, b_i in zip(A, b, strict=True)]
    return tuple(float(np.mean([getattr(s, f) for s in stats])) / n
                 for f in ("nodes_visited", "inner_products", "points_reported"))


@dataclass(frozen=True, eq=False)
class DepthSweep:
    """The kd-tree on keys of d = 32 as n grows, to tell small n from high d apart.

    n: the key counts; depth: the tree's depth log2(n / leaf) at each n.
    kinds: the names of the rows of the arrays below (Gaussian d = 32, Gaussian d = 4, and the
    pooled MiniLM keys of each (layer, head) of ``DEPTH_HEADS``).
    nodes, inner, reported: (kinds, n) mean nodes visited / n, inner products / n and k / n;
    NaN where a pool holds fewer than n keys.
    """

    n: np.ndarray
    depth: np.ndarray
    kinds: tuple[str, ...]
    nodes: np.ndarray
    inner: np.ndarray
    reported: np.ndarray

    @property
    def work(self) -> np.ndarray:
        """(kinds, n): (nodes visited + inner products) / n; 1 is a scan's work."""
        return self.nodes + self.inner

    def row(self, kind: str) -> np.ndarray:
        """work / n of one kind of keys, over n."""
        return self.work[self.kinds.index(kind)]

    def markdown(self) -> str:
        """The work / n table (kinds by n, the depth under each n), as Markdown for a notebook;
        a cell is blank where the pool holds fewer than n keys."""
        head = "| keys | " + " | ".join(f"$n = {n}$ (depth {d:.0f})"
                                        for n, d in zip(self.n, self.depth, strict=True))
        rule = "|---" * (len(self.n) + 1) + "|"
        rows = ["| " + kind + " | " + " | ".join("" if np.isnan(w) else f"{w:.2f}" for w in row)
                + " |" for kind, row in zip(self.kinds, self.work, strict=True)]
        return "\n".join([head + " |", rule, *rows])

    def __repr__(self) -> str:
        last = {k: f"{w[np.isfinite(w)][-1]:.2f}" for k, w in zip(self.kinds, self.work,
                                                                  strict=True)}
        return (f"DepthSweep(n = {self.n.tolist()}, depth {self.depth.tolist()}; work / n at "
                f"the largest n of each: {last})")


def depth_sweep(quick: bool = False, seed: int = 0, queries: int = 8, force: bool = False
                ) -> DepthSweep:
    """Work of the kd-tree at d = 32 for n = 2^12 .. 2^16 (quick: 2^8 .. 2^10): Gaussian keys
    N(0, I) at d = 32 and d = 4, and MiniLM keys pooled over 40 passages (quick: 10 short ones),
    ``queries`` queries per cell (unit Gaussian for Gaussian keys, the head's own queries for
    MiniLM). Cached."""
    sizes = (2**8, 2**9, 2**10) if quick else tuple(2**p for p in range(12, 17))
    pool = dict(count=10, min_tokens=96, max_tokens=128) if quick else dict(count=40)
    params = dict(sizes=list(sizes), pool=pool, heads=[list(h) for h in DEPTH_HEADS],
                  queries=queries, seed=seed, c=C)

    def compute() -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        keys = pooled_keys(seed=seed, **pool)
        out = np.full((3, 2 + len(DEPTH_HEADS), len(sizes)), np.nan)
        for j, n in enumerate(sizes):
            for g, d in enumerate((32, 4)):
                K, A = rng.standard_normal((n, d)), rng.standard_normal((queries, d))
                out[:, g, j] = tree_fractions(K, A / np.linalg.norm(A, axis=1, keepdims=True))
            for h in range(len(DEPTH_HEADS)):
                if n <= keys["K"].shape[1]:
                    pick = rng.choice(n, size=queries, replace=False)
                    out[:, 2 + h, j] = tree_fractions(keys["K"][h, :n], keys["Q"][h, pick])
        return dict(nodes=out[0], inner=out[1], reported=out[2])

    data = cache.cached("kd_depth", params, compute, force=force)
    n = np.array(sizes)
    kinds = ("Gaussian d=32", "Gaussian d=4",
             *(f"MiniLM layer {li} head {h}" for li, h in DEPTH_HEADS))
    return DepthSweep(n, theory.kdtree_depth(n), kinds, data["nodes"], data["inner"],
                      data["reported"])
