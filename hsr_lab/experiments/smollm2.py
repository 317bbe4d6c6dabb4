"""The paper's assumptions on a real decoder LM: SmolLM2-135M (4-bit Q4_1 weights), long text.

Decoding at context n, for one (layer, query head h): the queries are the last m rows
i = n-m .. n-1 of a causal prefix of n tokens, and row i sees the keys 0..i of KV head h // 3:

    s_ij = <q_i, k_j> / sqrt(d),  d = 64,  j <= i        p_ij = softmax_j(s_ij)

Two thresholds, with the paper's c = 0.4:

- the paper's single scalar b = sigma_a sqrt(c ln n), with sigma_a = sigma_k ||q|| / sqrt(d).
  The paper defines sigma_a for Gaussian keys N(0, sigma_k^2 I) and says nothing about how to
  estimate it on real keys; the lab's default estimator (``paper_b``) takes sigma_k as the
  uncentred RMS of the prefix's key coordinates and ||q|| as the RMS norm of the m queries.
  ``sigma_a_estimates`` gives two others (centred keys; each row's score spread from a sample
  of keys), because a conclusion may depend on the choice;
- per row, b_i = mu_i + sigma_i sqrt(c ln (i+1)) from the row's own mean and spread (a
  centred per-row threshold: ours, not the paper's).

Row i keeps K_i = {j : s_ij > b}; it drops eps_i = 1 - sum_{j in K_i} p_ij of the softmax mass,
and ||Attn_i - Attn_hat_i||_inf <= 2 eps_i ||V||_inf. "+ sink" adds token 0 to K_i. At the same
kept count k_i = |K_i u {0}| we compare StreamingLLM (the first min(4, k_i) tokens + the most
recent rest: at k_i = 1 it keeps token 0 alone, the same set as "+ sink", and below 5 no
recent window at all) and exact top-k (the largest p_ij). Because the model is causal, one
cached extraction of 8192 tokens gives every prefix n.

The paper's softmax bound (``gap_bound``): if at least n^gamma kept entries score >= tau_1 and
every dropped entry scores <= tau_2, then eps_i <= n^{1-gamma} e^{-(tau_1 - tau_2)}
= n^{1-gamma-beta} with beta = (tau_1 - tau_2) / ln n, which is below 1 only when
gamma + beta > 1. Measured on real rows, it says where the gap condition holds.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from hsr_lab import cache, theory
from hsr_lab.data import long_text
from hsr_lab.data.smollm2 import HEAD_DIM, KV_HEAD, QUANTISED
from hsr_lab.validate import as_positive_int

from .common import progress, resolve_quick

C = theory.PAPER_C  # the paper's constant in b = sigma_a sqrt(c ln n)
SINKS = 4  # StreamingLLM keeps the first 4 tokens


def decoding_scores(Q: np.ndarray, K: np.ndarray, n: int, m: int) -> np.ndarray:
    """s_ij for the last m rows of the prefix of n tokens: (m, n) float64, -inf where j > i."""
    rows = np.arange(n - m, n)
    S = np.asarray(Q[rows], np.float64) @ np.asarray(K[:n], np.float64).T / np.sqrt(HEAD_DIM)
    S[np.arange(n)[None, :] > rows[:, None]] = -np.inf
    return S


def paper_b(Q_rows: np.ndarray, K: np.ndarray, n: int, c: float = C) -> float:
    """b = sigma_a sqrt(c ln n), sigma_a = sigma_k ||q|| / sqrt(d) with sigma_k the uncentred
    RMS key coordinate and ||q|| the RMS query norm (the lab's default estimator, not the
    paper's: see ``sigma_a_estimates``): one scalar for the head."""
    return float(theory.paper_threshold(n, _sigma_a_rms(Q_rows, K, centred=False), c))


def _sigma_a_rms(Q_rows: np.ndarray, K: np.ndarray, centred: bool) -> float:
    """sigma_k ||q|| / sqrt(d): sigma_k^2 = mean_jl K_jl^2 (uncentred) or mean_l Var_j K_jl
    (centred: the keys' mean vector removed); ||q||^2 the mean squared query norm."""
    K = np.asarray(K, np.float64)
    sigma_k = np.sqrt(np.mean(K.var(axis=0)) if centred else np.mean(np.square(K)))
    q_norm = np.sqrt(np.mean(np.sum(np.square(Q_rows, dtype=np.float64), axis=1)))
    return float(sigma_k * q_norm / np.sqrt(HEAD_DIM))


ESTIMATORS = ("uncentred", "centred", "sampled")
SAMPLE = 128  # keys per row for the "sampled" estimator of sigma_a


def sigma_a_estimates(S: np.ndarray, Q_rows: np.ndarray, K: np.ndarray, sample: int = SAMPLE,
                      seed: int | tuple[int, ...] = 0) -> dict[str, np.ndarray]:
    """Three estimates of the score spread sigma_a of each row of S (m, n; -inf = masked).

    uncentred: sigma_k ||q|| / sqrt(d) with sigma_k^2 the mean squared key coordinate (the
    keys' mean counts as spread); centred: the same with the keys' mean vector removed (both
    one value for the head); sampled: the standard deviation of s_ij over ``sample`` keys j
    drawn without replacement from row i's visible keys, O(sample d) work per row (notebook 05
    estimates a row's mean and spread the same way). Returns estimator -> (m,) array.
    """
    sample = as_positive_int("sample", sample)
    rng = np.random.default_rng(seed)
    visible = np.isfinite(S).sum(axis=1)
    sampled = np.array([S[i, rng.choice(n_i, size=min(sample, n_i), replace=False)].std()
                        for i, n_i in enumerate(visible)])
    m = len(S)
    return dict(uncentred=np.full(m, _sigma_a_rms(Q_rows, K, centred=False)),
                centred=np.full(m, _sigma_a_rms(Q_rows, K, centred=True)), sampled=sampled)


def gap_bound(S: np.ndarray, keep: np.ndarray) -> dict[str, np.ndarray]:
    """The paper's softmax bound at its best, per row of S (m, n; -inf = masked).

    With K_i the kept entries, D_i the dropped ones and tau_2 = max_{j in D_i} s_ij: for every
    r <= |K_i| the r largest kept scores are >= tau_1 = s_(r), so (n_i visible keys)

        eps_i = sum_D e^s / sum e^s <= n_i e^{tau_2} / (r e^{tau_1})
              = n_i^{1-gamma} e^{-(tau_1 - tau_2)} = n_i^{1-gamma-beta},

    n_i^gamma = r, beta = (tau_1 - tau_2) / ln n_i. Returns the smallest bound over r and its
    gamma, beta, tau_1, tau_2 (NaN where K_i is empty: the bound does not apply; bound 0
    where D_i is empty). The bound is below 1 exactly when gamma + beta > 1.
    """
    visible = np.isfinite(S)
    n_i = visible.sum(axis=1).astype(np.float64)
    kept = -np.sort(-np.where(keep & visible, S, -np.inf), axis=1)  # kept scores, descending
    tau_2 = np.where(~keep & visible, S, -np.inf).max(axis=1)
    r = np.arange(1, S.shape[1] + 1, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        log_bound = np.log(n_i)[:, None] - np.log(r)[None, :] - (kept - tau_2[:, None])
    log_bound = np.where(np.isfinite(kept), log_bound, np.inf)  # only r <= |K_i|
    best = np.argmin(log_bound, axis=1)
    rows = np.arange(len(S))
    applies = np.isfinite(kept[:, 0])
    tau_1 = np.where(applies, kept[rows, best], np.nan)
    nothing_dropped = applies & np.isneginf(tau_2)
    bound = np.where(nothing_dropped, 0.0, np.exp(np.minimum(log_bound[rows, best], 700.0)))
    with np.errstate(invalid="ignore"):
        beta = np.where(nothing_dropped, np.inf, (tau_1 - tau_2) / np.log(n_i))
    return dict(bound=np.where(applies, bound, np.nan),
                gamma=np.where(applies, np.log(best + 1.0) / np.log(n_i), np.nan),
                beta=np.where(applies, beta, np.nan), tau_1=tau_1,
                tau_2=np.where(applies, tau_2, np.nan))


def row_b(S: np.ndarray, c: float = C) -> np.ndarray:
    """b_i = mu_i + sigma_i sqrt(c ln n_i) over each row's n_i visible (finite) scores."""
    seen = np.isfinite(S)
    n_i = seen.sum(axis=1)
    X = np.where(seen, S, 0.0)
    mu = X.sum(axis=1) / n_i
    sigma = np.sqrt(np.where(seen, (X - mu[:, None]) ** 2, 0.0).sum(axis=1) / n_i)
    return mu + sigma * np.sqrt(c * np.log(n_i))


def softmax_rows(S: np.ndarray) -> np.ndarray:
    """p_ij = exp(s_ij - max_j s_ij) / sum_j (...), row by row; -inf entries get 0."""
    A = np.exp(S - S.max(axis=1, keepdims=True))
    return A / A.sum(axis=1, keepdims=True)


def streaming_mask(rows: np.ndarray, n: int, k: np.ndarray, sinks: int = SINKS) -> np.ndarray:
    """StreamingLLM with k_i entries: the first min(sinks, k_i) keys and the most recent rest."""
    j = np.arange(n)[None, :]
    first = np.minimum(sinks, k)[:, None]
    recent = (k[:, None] - first)
    return (j < first) | ((j > rows[:, None] - recent) & (j <= rows[:, None]))


def topk_mask(P: np.ndarray, k: np.ndarray) -> np.ndarray:
    """The k_i largest p_ij of each row (exact top-k, the best any k_i-subset can do)."""
    rank = np.argsort(np.argsort(-P, axis=1, kind="stable"), axis=1, kind="stable")
    return rank < k[:, None]


def approximation_error(P: np.ndarray, keep: np.ndarray, V: np.ndarray) -> float:
    """max_i ||Attn_i - Attn_hat_i||_inf with Attn_hat renormalised over the kept entries (a
    row that keeps nothing returns 0)."""
    kept = np.where(keep, P, 0.0)
    total = kept.sum(axis=1, keepdims=True)
    approx = np.divide(kept, total, out=np.zeros_like(kept), where=total > 0) @ V
    return float(np.abs(P @ V - approx).max())


def kept_masks(S: np.ndarray, P: np.ndarray, b: float | np.ndarray, rows: np.ndarray
               ) -> dict[str, np.ndarray]:
    """The kept entries of the rows ``rows`` (scores S, probabilities P, (m, n)) for each method:
    s_ij > b ("hsr"), the same plus token 0 ("hsr_sink"), and at hsr_sink's kept count k_i,
    StreamingLLM ("streaming") and exact top-k ("topk"). ``b``: a scalar or one per row."""
    n = S.shape[1]
    hsr = S > np.reshape(b, (-1, 1))
    with_sink = hsr | (np.arange(n) == 0)[None, :]
    k = with_sink.sum(axis=1)
    return dict(hsr=hsr, hsr_sink=with_sink, streaming=streaming_mask(rows, n, k),
                topk=topk_mask(P, k))


GAP_SETS = ("hsr", "hsr_sink", "sampled")  # kept sets whose gap condition the study measures


def gap_stats(S: np.ndarray, P: np.ndarray, keep: np.ndarray) -> dict[str, float]:
    """The gap condition of ``gap_bound`` over the rows of S for one kept set: the share of
    rows where it applies (something kept) and where it holds (gamma + beta > 1, bound < 1),
    the median gamma, beta and bound over the rows where it applies, and the largest
    measured eps_i minus its bound there (never above 0: the bound is a theorem)."""
    gap = gap_bound(S, keep)
    eps = 1.0 - np.where(keep, P, 0.0).sum(axis=1)
    on = ~np.isnan(gap["bound"])
    if not on.any():
        return dict(applies=0.0, holds=0.0, gamma=np.nan, beta=np.nan, bound=np.nan,
                    excess=np.nan)
    return dict(applies=float(on.mean()), holds=float((gap["bound"][on] < 1.0).sum() / len(S)),
                gamma=float(np.median(gap["gamma"][on])), beta=float(np.median(gap["beta"][on])),
                bound=float(np.median(gap["bound"][on])),
                excess=float((eps[on] - gap["bound"][on]).max()))


def estimator_study(S: np.ndarray, P: np.ndarray, Q_rows: np.ndarray, K: np.ndarray, n: int,
                    c: float = C, seed: int | tuple[int, ...] = 0
                    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """For each of ``ESTIMATORS``: the mean estimate of sigma_a, the mean count kept per row
    at b = sigma_a sqrt(c ln n) and the mean dropped mass (arrays of 3, in ESTIMATORS order),
    and the kept mask of the "sampled" estimator."""
    sigma = sigma_a_estimates(S, Q_rows, K, seed=seed)
    keep = {name: S > (sigma[name] * np.sqrt(c * np.log(n)))[:, None] for name in ESTIMATORS}
    out = dict(est_sigma=[sigma[name].mean() for name in ESTIMATORS],
               est_kept=[keep[name].sum(axis=1).mean() for name in ESTIMATORS],
               est_eps=[(1.0 - np.where(keep[name], P, 0.0).sum(axis=1)).mean()
                        for name in ESTIMATORS])
    return {k: np.array(v) for k, v in out.items()}, keep["sampled"]


def head_study(Q: np.ndarray, K: np.ndarray, V: np.ndarray, sizes: np.ndarray, m: int,
               c: float = C, seed: int | tuple[int, ...] = 0) -> dict[str, np.ndarray]:
    """Every number of one (layer, head): counts over the prefixes ``sizes``, then sinks,
    dropped mass, errors, the gap condition and the sigma_a estimators at the largest n.
    Q, K, V: (N, 64) of the head and its KV head; ``seed``: the estimator's key sample."""
    out: dict[str, list] = {k: [] for k in ("count", "count_max", "count_row", "count_row_max",
                                            "b")}
    for n in sizes:
        S = decoding_scores(Q, K, int(n), m)
        b = paper_b(Q[n - m:n], K[:n], int(n), c)
        count, count_row = (S > b).sum(axis=1), (S > row_b(S, c)[:, None]).sum(axis=1)
        for key, value in zip(out, (count.mean(), count.max(), count_row.mean(),
                                    count_row.max(), b), strict=True):
            out[key].append(value)
    n = int(sizes[-1])
    rows, P, Vn = np.arange(n - m, n), softmax_rows(S), np.asarray(V[:n], np.float64)
    masks = kept_masks(S, P, b, rows)
    k = masks["hsr_sink"].sum(axis=1)
    eps = {name: 1.0 - np.where(mask, P, 0.0).sum(axis=1) for name, mask in masks.items()}
    v_inf = float(np.abs(Vn).max())
    estimators, sampled = estimator_study(S, P, Q[rows], K[:n], n, c, seed)
    kept_sets = dict(hsr=masks["hsr"], hsr_sink=masks["hsr_sink"], sampled=sampled)
    gaps = {f"gap_{key}_{name}": value for name in GAP_SETS
            for key, value in gap_stats(S, P, kept_sets[name]).items()}
    return ({key: np.array(v) for key, v in out.items()} | estimators | gaps
            | {f"eps_{name}": e.mean() for name, e in eps.items()}
            | {f"eps_max_{name}": e.max() for name, e in eps.items()}
            | {f"err_{name}": approximation_error(P, mask, Vn) for name, mask in masks.items()}
            | {f"bound_{name}": 2.0 * eps[name].max() * v_inf for name in masks}
            | dict(sink0=P[:, 0].mean(), sink4=P[:, :SINKS].sum(axis=1).mean(),
                   kept=k.mean()))


def spectrum(K: np.ndarray) -> np.ndarray:
    """The PCA spectrum of the keys: eigenvalues of their covariance, largest first, as
    shares of the total variance (d values summing to 1)."""
    lam = np.linalg.eigvalsh(np.cov(np.asarray(K, np.float64), rowvar=False))[::-1]
    return np.clip(lam, 0.0, None) / lam.sum()


def participation_ratio(K: np.ndarray) -> float:
    """(sum lambda)^2 / sum lambda^2 of the keys' covariance: an effective dimension, from 1
    (all variance on one axis) to d (isotropic)."""
    return float(1.0 / np.square(spectrum(K)).sum())


def unrope(K: np.ndarray) -> np.ndarray:
    """Keys before RoPE: rotate each adjacent pair of K (..., n, 64) back by t theta_i."""
    from hsr_lab.data.smollm2 import rope_tables

    cos, sin = rope_tables(K.shape[-2])
    even, odd = K[..., 0::2], K[..., 1::2]
    out = np.empty_like(K)
    out[..., 0::2] = even * cos + odd * sin
    out[..., 1::2] = -even * sin + odd * cos
    return out


def tree_work(K: np.ndarray, A: np.ndarray, t: float) -> float:
    """Mean ``QueryStats.work`` / n of the lab's kd-tree HSR over the queries A at offset t
    (1 = as much as a scan; box tests count like inner products)."""
    from hsr_lab import HSR

    index = HSR(np.asarray(K, np.float64), backend="numpy")
    work = [index.query(a, t, stats=True)[1].work for a in np.asarray(A, np.float64)]
    return float(np.mean(work)) / len(K)


def quest_pages(K: np.ndarray, A: np.ndarray, t: float, page_size: int = 16) -> float:
    """Share of Quest's pages (``peers.QuestPages``) whose box bound reaches t: the share of
    keys that must be scanned."""
    from hsr_lab.attention.maskers.pages import page_upper_bound
    from hsr_lab.peers import QuestPages

    pages = QuestPages(np.asarray(K, np.float64), page_size)
    bound = page_upper_bound(np.asarray(A, np.float64), pages.lo, pages.hi)
    return float((bound >= t).mean())


def projected_candidates(K: np.ndarray, A: np.ndarray, t: float, r: int = 8
                         ) -> tuple[float, float]:
    """Exact search in r dimensions, then recheck: with P the top-r principal axes of K,
    <a, k> <= <Pa, Pk> + ||a_perp|| max ||k_perp||, so every key with <a, k> >= t has
    <Pa, Pk> >= t - ||a_perp|| max ||k_perp||. Returns the share of keys that pass this
    filter (each needs an exact recheck) and the kd-tree work / n of the r-dim query."""
    K, A = np.asarray(K, np.float64), np.asarray(A, np.float64)
    axes = np.linalg.svd(K - K.mean(axis=0), full_matrices=False)[2][:r].T  # (64, r)
    Kp, Ap = K @ axes, A @ axes
    k_perp = np.linalg.norm(K - Kp @ axes.T, axis=1).max()
    slack = np.linalg.norm(A - Ap @ axes.T, axis=1) * k_perp
    share = float(((Ap @ Kp.T) >= (t - slack)[:, None]).mean())
    from hsr_lab import HSR

    index = HSR(Kp, backend="numpy")
    work = [index.query(a, t - s, stats=True)[1].work for a, s in zip(Ap, slack, strict=True)]
    return share, float(np.mean(work)) / len(K)


def pruning(Q: np.ndarray, K: np.ndarray, n: int, rows: int, b: float) -> dict[str, float]:
    """Can HSR prune these keys? Work / n of a kd-tree on the post- and pre-RoPE keys, Quest's
    page share, and the projection filter, for the last ``rows`` queries at t = sqrt(d) b."""
    A, t = Q[n - rows:n], float(np.sqrt(HEAD_DIM) * b)
    share, work = projected_candidates(K[:n], A, t)
    return dict(work_post=tree_work(K[:n], A, t),
                work_pre=tree_work(unrope(K[:n]), unrope(Q[:n])[n - rows:], t),
                quest=quest_pages(K[:n], A, t), proj_share=share, proj_work=work)


# ----------------------------------------------------------------------------- the sweep
@dataclass(frozen=True, eq=False)
class SmolStudy:
    """The cached study (arrays over extracted layers L, query heads H = 9, prefixes N).

    layers, sizes: which layers, and the prefix lengths n; m: queries (last rows) per prefix.
    norms, peaks: (L, n_max) ||x_t|| and max |x_t,i| of the residual stream entering each layer.
    count, count_max: (L, H, N) mean and max over rows of |{j : s_ij > b}|, paper's b.
    count_row, count_row_max: the same with the per-row threshold b_i.
    b: (L, H, N) the paper's b. kept: (L, H) mean |K_i u {0}| at the largest n.
    sink0, sink4: (L, H) mean softmax mass on token 0 and on tokens 0..3.
    eps_<method>, eps_max_<method>, err_<method>, bound_<method>: (L, H) mean and max dropped
    mass, measured max ||Attn - Attn_hat||_inf and 2 max eps ||V||_inf, for the methods
    hsr, hsr_sink, streaming and topk (the last two at hsr_sink's kept count).
    pca_post, pca_pre: (L, 3, 64) PCA spectrum (variance shares) of the keys after / before
    RoPE; pr_post, pr_pre: (L, 3) their participation ratio 1 / sum share^2.
    work_post, work_pre: (L, H) kd-tree work / n at the largest n, keys after / before RoPE.
    quest: (L, H) share of Quest pages (16 keys) whose bound reaches t = sqrt(d) b.
    proj_share, proj_work: (L, H) share of keys passing the 8-dim projection filter (each
    rechecked exactly), and the kd-tree work / n in those 8 dimensions.
    est_sigma, est_kept, est_eps: (L, H, 3) for the sigma_a estimators ``ESTIMATORS``
    (uncentred, centred, sampled), the mean sigma_a, the mean count kept per row at
    b = sigma_a sqrt(c ln n) and the mean dropped mass, at the largest n.
    gap_<stat>_<set>: (L, H) the gap condition (``gap_stats``: applies, holds, gamma, beta,
    bound, excess) for the kept sets ``GAP_SETS``: the paper's b (hsr), the same plus token 0
    (hsr_sink) and b from the sampled sigma_a (sampled), at the largest n.
    """

    layers: np.ndarray
    sizes: np.ndarray
    m: int
    arrays: dict[str, np.ndarray]

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self.__dict__["arrays"][name]
        except KeyError:
            raise AttributeError(name) from None

    def fit(self, per_row: bool = False) -> theory.ExponentFit:
        """The log-log slope of the mean activated count (over heads with counts > 0) on n."""
        counts = (self.count_row if per_row else self.count).reshape(-1, len(self.sizes))
        mean = counts[(counts > 0).all(axis=1)].mean(axis=0)
        return theory.fit_exponent(self.sizes, mean)

    def gaussian_fit(self) -> theory.ExponentFit:
        """The same fit of the Gaussian expectation n Phibar(sqrt(c ln n)) on the same n."""
        return theory.fit_exponent(self.sizes, theory.expected_activated(self.sizes, C))

    def __repr__(self) -> str:
        return (f"SmolStudy({QUANTISED}; layers {self.layers.tolist()}, n = "
                f"{self.sizes.tolist()}, m={self.m}; slope {self.fit().slope:.3f} vs Gaussian "
                f"{self.gaussian_fit().slope:.3f} vs 0.8; mass on token 0 "
                f"{self.sink0.mean():.2f}; dropped mass hsr {self.eps_hsr.mean():.3f}, "
                f"+sink {self.eps_hsr_sink.mean():.3f}, streaming {self.eps_streaming.mean():.3f},"
                f" top-k {self.eps_topk.mean():.3f}; kd-tree work/n {self.work_post.mean():.2f})")


def study(ex, sizes: np.ndarray, m: int, tree_rows: int = 8, c: float = C
          ) -> dict[str, np.ndarray]:
    """``head_study`` and ``pruning`` for every extracted (layer, head) of ``ex`` (all 9
    heads), stacked."""
    L, H = len(ex.layers), len(ex.heads)
    per: dict[str, np.ndarray] = {}
    for li in progress(range(L), desc=f"SmolLM2 study n<={sizes[-1]}"):
        for hi, h in enumerate(ex.heads):
            Q, K = ex.Q[li, hi], ex.K[li, KV_HEAD[h]]
            res = head_study(Q, K, ex.V[li, KV_HEAD[h]], sizes, m, c,
                             seed=(int(ex.layers[li]), h))
            res |= pruning(Q, K, int(sizes[-1]), tree_rows, float(res["b"][-1]))
            for key, value in res.items():
                per.setdefault(key, np.zeros((L, H, *np.shape(value))))[li, hi] = value
    keys = dict(post=ex.K, pre=unrope(ex.K))  # (L, 3, n, 64) after and before RoPE
    pca = {f"pca_{kind}": np.array([[spectrum(k) for k in layer] for layer in K])
           for kind, K in keys.items()}
    pr = {f"pr_{kind}": 1.0 / np.square(pca[f"pca_{kind}"]).sum(axis=-1) for kind in keys}
    return per | pca | pr | dict(norms=ex.norms, peaks=ex.peaks)


def _setting(quick: bool) -> tuple[int, tuple[int, ...] | None, tuple[int, ...], int]:
    """max_tokens, layers (None: all 30), prefix lengths and m of the quick or the full study."""
    return ((256, (0, 3, 15), (64, 128, 256), 16) if quick else
            (8192, None, (256, 512, 1024, 2048, 4096, 8192), 64))


def smollm2_study(quick: bool | None = None, seed: int = 0, force: bool = False
                  ) -> SmolStudy:
    """The study on ``long_text.cached_extraction`` (cached twice: the extraction, then this).

    Full: 8192 tokens (8191 after the cut), all 30 layers, n = 256 .. 8191, m = 64 rows.
    Quick: 256 tokens, layers 0, 3 and 15 (the sinks start at layer 12), n = 64 .. 256,
    m = 16 (seconds).
    """
    max_tokens, layers, sizes, m = _setting(resolve_quick(quick))
    params = dict(max_tokens=max_tokens, layers=layers, sizes=sizes, m=m, seed=seed, c=C)

    def compute() -> dict[str, np.ndarray]:
        ex = long_text.cached_extraction(max_tokens, seed, layers)
        grid = np.array(sorted({min(s, ex.n) for s in sizes}))
        return study(ex, grid, m) | dict(layers=np.array(ex.layers), sizes=grid)

    data = dict(cache.cached("smollm2_study", params, compute, force=force))
    return SmolStudy(data.pop("layers"), data.pop("sizes"), m, data)


# ----------------------------------------------------------------------------- one head
@functools.lru_cache(maxsize=2)
def _extraction(quick: bool, seed: int):
    max_tokens, layers, _, _ = _setting(quick)
    return long_text.cached_extraction(max_tokens, seed, layers)


def study_extraction(quick: bool | None = None, seed: int = 0):
    """The cached extraction the study reads (quick: 256 tokens, layers 0, 3, 15; full: 8192
    tokens, all 30 layers), kept in memory after the first call (views redraw from it)."""
    return _extraction(resolve_quick(quick), seed)


@dataclass(frozen=True, eq=False)
class HeadThreshold:
    """One (layer, head) at one threshold: the last m rows of the prefix of n tokens.

    S, P: (m, n) scores and softmax probabilities (0 and -inf above the diagonal).
    b: (m,) the threshold of each row (all equal for the paper's scalar b).
    kept: (m,) |{j : s_ij > b}|. eps: method -> (m,) dropped mass eps_i (``kept_masks``).
    """

    layer: int
    head: int
    c: float
    per_row: bool
    rows: np.ndarray
    S: np.ndarray
    P: np.ndarray
    b: np.ndarray
    kept: np.ndarray
    eps: dict[str, np.ndarray]

    def __repr__(self) -> str:
        rule = "per-row b_i" if self.per_row else "paper's scalar b"
        return (f"HeadThreshold(layer {self.layer}, head {self.head}, {rule}, c={self.c:g}, "
                f"n={self.S.shape[1]}, m={len(self.rows)}: kept {self.kept.mean():.1f} per "
                f"row; dropped mass " + ", ".join(f"{k} {v.mean():.3f}" for k, v in
                                                  self.eps.items()) + f"; {QUANTISED})")


def head_threshold(ex, layer: int, head: int, c: float = C, per_row: bool = False,
                   m: int = 64) -> HeadThreshold:
    """Threshold the last ``m`` rows of ``ex``'s full prefix for one
    (layer, head), at the paper's scalar b = sigma_a sqrt(c ln n) or, with ``per_row``, at
    b_i = mu_i + sigma_i sqrt(c ln (i+1)): what is kept and what mass each method drops."""
    li, hi = ex._where(layer, head)  # it checks that the layer and head were extracted
    if isinstance(c, bool) or not isinstance(c, int | float | np.number) or not 0 < c <= 4:
        raise ValueError(f"c must be a number in (0, 4] (the paper's is 0.4); got {c!r}")
    n = ex.n
    m = min(n, as_positive_int("m", m))
    Q, K = ex.Q[li, hi], ex.K[li, ex.kv_heads[hi]]
    S, rows = decoding_scores(Q, K, n, m), np.arange(n - m, n)
    b = row_b(S, c) if per_row else np.full(m, paper_b(Q[rows], K, n, c))
    P = softmax_rows(S)
    masks = kept_masks(S, P, b, rows)
    eps = {name: 1.0 - np.where(mask, P, 0.0).sum(axis=1) for name, mask in masks.items()}
    return HeadThreshold(layer, head, float(c), bool(per_row), rows, S, P, b,
                         (S > b[:, None]).sum(axis=1), eps)
