"""The paper's exact case on learned keys: byte LMs trained with ReLU^alpha attention.

Four models identical but for the attention rule (``hsr_lab.data.relu_lm``: softmax; ReLU^2
with a learned b per head; ReLU^2 with b tied to the paper's value; ReLU with a learned b) read
W held-out windows of N bytes (``pystdlib.heldout_windows``). Row t of a causal window sees
n = t + 1 keys, as decoding at context n does, so one window gives every n <= N. For one
(layer, head), with s_tj = <q_t, k_j> / sqrt(d), d = 64:

- ReLU^alpha: row t's activated entries are {j <= t : s_tj > b_h}, b_h the model's own scalar;
- softmax (the twin): the paper's threshold b = sigma_a sqrt(0.4 ln n), sigma_a = sigma_k ||q||
  / sqrt(d) read as the paper's Gaussian model does (``smollm2.paper_b``), and the softmax mass
  it drops.

At each n of a grid the count is the mean over the m rows t = n - m .. n - 1 of every window;
``ReluLMStudy.fit`` fits ln count on ln n per head. The same keys feed the kd-tree
(``HSR(backend="numpy")``: nodes visited and inner products per query at t = sqrt(d) b, beside
Gaussian keys of the same d), the keys' spectrum and participation ratio (post-RoPE), and an
exactness check: every (layer, head) through ``relu_attention(method="hsr")`` against the
model's own dense attention. ``decoding_times`` (not cached) times one decoding step.
Notebook 09 teaches it.
"""

from __future__ import annotations

import functools
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from hsr_lab import HSR, Decoder, cache, relu_attention, softmax_attention, theory
from hsr_lab.attention.dense import dense_relu
from hsr_lab.data import pystdlib, relu_lm

from .common import progress, resolve_quick
from .smollm2 import decoding_scores, paper_b, spectrum

C = theory.PAPER_C
D = 64  # every model's head dimension
RECENT = 64  # "recent" keys: the RECENT positions t - j < RECENT before (and at) row t
SEED_KEYS = ("bpb", "count", "empty", "b", "b_paper")  # measured for every training seed


def _grid(lo: int, hi: int) -> np.ndarray:
    """lo, lo sqrt 2, 2 lo, ... up to hi (rounded), the n of the count fits."""
    k = round(2 * np.log2(hi / lo))
    return np.unique(np.round(lo * 2.0 ** (np.arange(k + 1) / 2)).astype(np.int64))


def _setting(quick: bool) -> dict:
    """Windows, their length, the count grid, rows per n, and the tree's n."""
    if quick:
        return dict(windows=1, length=256, sizes=_grid(64, 256).tolist(), m=16,
                    tree_sizes=[128, 256], tree_rows=4)
    return dict(windows=8, length=2048, sizes=_grid(128, 2048).tolist(), m=64,
                tree_sizes=[256, 512, 1024, 2048], tree_rows=8)


# ----------------------------------------------------------------------------- one head
def head_counts(Q: np.ndarray, K: np.ndarray, b: float | None, sizes: np.ndarray, m: int
                ) -> dict[str, np.ndarray]:
    """For one head of one window, over the last m rows below each n: the mean activated
    count, the share of empty rows, the threshold used (b None: the paper's b at each n, for
    softmax), the softmax mass on the activated entries and the share of activated entries
    among the RECENT most recent keys (t - j < RECENT)."""
    out: dict[str, list] = {k: [] for k in ("count", "empty", "b_used", "kept_mass", "recent")}
    for n in sizes:
        S = decoding_scores(Q, K, int(n), m)  # (m, n), -inf above the diagonal
        bn = paper_b(Q[n - m:n], K[:n], int(n)) if b is None else b
        active = S > bn
        P = np.exp(S - S.max(axis=1, keepdims=True))
        near = np.arange(n)[None, :] > np.arange(n - m, n)[:, None] - RECENT
        for key, value in zip(out, (active.sum(axis=1).mean(), (~active.any(axis=1)).mean(),
                                    bn, (np.where(active, P, 0).sum(axis=1)
                                         / P.sum(axis=1)).mean(),
                                    (active & near).sum() / max(active.sum(), 1)), strict=True):
            out[key].append(value)
    return {key: np.array(v, dtype=float) for key, v in out.items()}


def tree_counters(K: np.ndarray, A: np.ndarray, t: float) -> tuple[float, float, float]:
    """Mean nodes visited, inner products and reported keys per query of a kd-tree over K."""
    index = HSR(np.asarray(K, np.float64), backend="numpy")
    stats = [index.query(a, t, stats=True)[1] for a in np.asarray(A, np.float64)]
    return (float(np.mean([s.nodes_visited for s in stats])),
            float(np.mean([s.inner_products for s in stats])),
            float(np.mean([s.points_reported for s in stats])))


def gaussian_tree(sizes: list[int], rows: int, seed: int) -> np.ndarray:
    """The same counters on Gaussian keys and queries of d = 64 at the paper's threshold
    t = sqrt(d) sigma_a sqrt(0.4 ln n): (len(sizes), 3)."""
    rng = np.random.default_rng(seed)
    out = []
    for n in sizes:
        K, A = rng.standard_normal((n, D)), rng.standard_normal((rows, D))
        sigma_a = np.linalg.norm(A, axis=1).mean() / np.sqrt(D)
        out.append(tree_counters(K, A, float(np.sqrt(D) * theory.paper_threshold(n, sigma_a))))
    return np.array(out)


def exactness(tr: relu_lm.Trace, lm: relu_lm.ReluLM, layer: int, b: np.ndarray
              ) -> np.ndarray:
    """Relative error per head of the HSR path against the model's own dense attention over
    the window: ReLU^alpha through ``relu_attention(method="hsr")`` against
    ``relu_lm.attention``; softmax kept to s >= b_h, HSR against dense. b: (H,)."""
    Q, K, V = tr.Q[layer], tr.K[layer], tr.V[layer]
    dense = relu_lm.attention(Q, K, V, lm, layer) if lm.relu else None
    err = np.zeros(len(b))
    for h, bh in enumerate(map(float, b)):
        q, k, v = (np.ascontiguousarray(x[h]) for x in (Q, K, V))
        if lm.relu:
            ref = dense[h]
            hsr = relu_attention(q, k, v, lm.alpha, bh, causal=True, method="hsr",
                                 backend="numpy")
        else:
            ref = softmax_attention(q, k, v, causal=True, b=bh, measure_dropped=False)
            hsr = softmax_attention(q, k, v, causal=True, b=bh, method="hsr", backend="numpy",
                                    measure_dropped=False)
        err[h] = np.linalg.norm(hsr - ref) / max(np.linalg.norm(ref), 1e-300)
    return err


# ----------------------------------------------------------------------------- one model
def _rows_study(lm: relu_lm.ReluLM, s: dict, windows: np.ndarray
                ) -> tuple[dict[str, np.ndarray], relu_lm.Trace, np.ndarray]:
    """Bits per byte and the row counts of one model over the windows, its b and the paper's
    b per head; also the first window's trace and the keys of all windows (L, H, W N, d)."""
    L, H = lm.config["n_layers"], lm.config["n_heads"]
    sizes, m = np.array(s["sizes"]), s["m"]
    acc: dict[str, np.ndarray] = {}
    bpb, keys = [], []
    for w, ids in enumerate(windows):
        tr = relu_lm.run(lm, ids)
        bpb.append(tr.bits_per_byte())
        keys.append(tr.K)
        for layer in range(L):
            for h in range(H):
                b = None if lm.b is None else float(lm.b[layer, h])
                res = head_counts(tr.Q[layer, h], tr.K[layer, h], b, sizes, m)
                for key, value in res.items():
                    acc.setdefault(key, np.zeros((len(windows), L, H, len(sizes))))[w, layer,
                                                                                     h] = value
        if w == 0:
            first = tr
    b_paper = _paper_b(first, m)
    out = {k: v.mean(axis=0) for k, v in acc.items()} | dict(
        bpb=np.array(bpb), b_paper=b_paper, b=lm.b if lm.relu else b_paper)
    return out, first, np.concatenate(keys, axis=2)


def _paper_b(tr: relu_lm.Trace, m: int) -> np.ndarray:
    """(L, H): the paper's b = sigma_a sqrt(0.4 ln N) of every head at the window's N,
    sigma_a read from its last m queries and all its keys."""
    L, H, N = tr.Q.shape[:3]
    return np.array([[paper_b(tr.Q[layer, h][N - m:], tr.K[layer, h], N) for h in range(H)]
                     for layer in range(L)])


def _model_study(name: str, s: dict, windows: np.ndarray) -> dict[str, np.ndarray]:
    """Every number of one variant's model of training seed 0, over its layers L and heads H;
    and for every training seed (``relu_lm.SEEDS``) the ``SEED_KEYS`` arrays, stacked on a first
    axis as ``<key>_seeds`` (seed 0's are the same numbers)."""
    lm = relu_lm.load(name)
    out, first, keys = _rows_study(lm, s, windows)
    out |= _keys_and_tree(lm, first, keys, s)
    del keys
    per_seed = [out] + [_rows_study(relu_lm.load(name, seed), s, windows)[0]
                        for seed in relu_lm.SEEDS[1:]]
    return out | {f"{key}_seeds": np.stack([p[key] for p in per_seed]) for key in SEED_KEYS}


def _keys_and_tree(lm: relu_lm.ReluLM, tr: relu_lm.Trace, K_all: np.ndarray, s: dict
                   ) -> dict[str, np.ndarray]:
    """Spectrum, participation ratio, the paper's b at n = N, tree counters and exactness."""
    L, H = tr.Q.shape[:2]
    spec = np.array([[spectrum(K_all[layer, h]) for h in range(H)] for layer in range(L)])
    b_paper = _paper_b(tr, s["m"])
    tree = np.zeros((L, H, len(s["tree_sizes"]), 3))
    err = np.zeros((L, H))
    b_all = lm.b if lm.relu else b_paper
    for layer in range(L):
        err[layer] = exactness(tr, lm, layer, b_all[layer])
        for h in range(H):
            b = float(b_all[layer, h])
            for i, n in enumerate(s["tree_sizes"]):
                bn = b if lm.relu else paper_b(tr.Q[layer, h][n - s["m"]:n], tr.K[layer, h][:n],
                                               n)
                A = tr.Q[layer, h][n - s["tree_rows"]:n]
                tree[layer, h, i] = tree_counters(tr.K[layer, h][:n], A, np.sqrt(D) * bn)
    return dict(spectrum=spec, pr=1.0 / np.square(spec).sum(axis=-1), tree=tree,
                hsr_error=err)


# ----------------------------------------------------------------------------- the study
@dataclass(frozen=True)
class SeedComparison:
    """Held-out bits per byte of model ``a`` minus model ``b``, each the mean over its R
    training seeds of the mean over the windows, against the seed noise:

        difference = mean_r bpb(a, r) - mean_r bpb(b, r),
        half_width = t_{0.975, df} * sd * sqrt(1/R + 1/R),

    sd the seed-to-seed standard deviation of a model's bits per byte, pooled over V variants
    (all of them unless told otherwise; df = V (R - 1) degrees of freedom). The difference
    exceeds seed noise when |difference| > half_width (a two-sample t-test at 5%).
    ``separated``: every seed of one model is below every seed of the other (weaker evidence:
    with two seeds each, two equal models are separated one time in three)."""

    a: str
    b: str
    difference: float
    half_width: float
    sd: float
    df: int
    separated: bool

    @property
    def exceeds_noise(self) -> bool:
        return abs(self.difference) > self.half_width


@dataclass(frozen=True, eq=False)
class ReluLMStudy:
    """The cached study: arrays per model V (``variants``), layer L, head H, grid n.

    sizes: the n of the counts; tree_sizes: the n of the kd-tree; m: rows per n per window;
    seeds: the training seeds R (``relu_lm.SEEDS``). Every array without ``_seeds`` is of the
    models of training seed 0.
    bpb: (V, W) held-out bits per byte of each window (float64 NumPy, float16 weights).
    count, empty, b_used, kept_mass, recent: (V, L, H, S) mean activated entries per row, share
    of rows with none, the threshold used (ReLU: the model's b; softmax: the paper's b at n),
    the share of softmax(S) mass on the activated entries, and the share of activated entries
    among the RECENT = 64 latest keys, over the rows below each n.
    b: (V, L, H) the model's b (softmax: the paper's b at n = N); b_paper: the paper's value
    sigma_a sqrt(0.4 ln N) read from the head's own queries and keys.
    spectrum: (V, L, H, 64) PCA variance shares of the post-RoPE keys; pr: (V, L, H) their
    participation ratio. tree: (V, L, H, T, 3) nodes visited, inner products and reported keys
    per query; gaussian_tree: (T, 3) the same on Gaussian keys. hsr_error: (V, L, H) relative
    error of the HSR path against the model's dense attention over a whole window.
    bpb_seeds (V, R, W), count_seeds and empty_seeds (V, R, L, H, S), b_seeds and b_paper_seeds
    (V, R, L, H): the same quantities for every training seed, on the same windows (a head of
    one seed has no counterpart in another: compare models, not heads, across seeds).
    """

    variants: tuple[str, ...]
    seeds: tuple[int, ...]
    sizes: np.ndarray
    tree_sizes: np.ndarray
    m: int
    arrays: dict[str, np.ndarray]

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self.__dict__["arrays"][name]
        except KeyError:
            raise AttributeError(name) from None

    def index(self, variant: str) -> int:
        if variant not in self.variants:
            raise ValueError(f"variant must be one of {self.variants}; got {variant!r}")
        return self.variants.index(variant)

    def seed_index(self, seed: int) -> int:
        if isinstance(seed, bool) or seed not in self.seeds:
            raise ValueError(f"seed must be one of the training seeds {self.seeds}; got "
                             f"{seed!r}")
        return self.seeds.index(seed)

    def counts(self, variant: str, seed: int = 0) -> np.ndarray:
        """(L, H, S): the mean activated entries per row of one model."""
        return self.count_seeds[self.index(variant), self.seed_index(seed)]

    def fit(self, variant: str, layer: int, head: int, seed: int = 0
            ) -> theory.ExponentFit | None:
        """ln count on ln n for one head (None when some n has no activated entry)."""
        counts = self.counts(variant, seed)[layer, head]
        return theory.fit_exponent(self.sizes, counts) if (counts > 0).all() else None

    def slopes(self, variant: str, seed: int = 0) -> np.ndarray:
        """(L, H, 3): slope and its 95% interval per head (NaN where ``fit`` is None)."""
        L, H = self.count.shape[1:3]
        out = np.full((L, H, 3), np.nan)
        for layer in range(L):
            for h in range(H):
                f = self.fit(variant, layer, h, seed)
                if f is not None:
                    out[layer, h] = f.slope, f.slope_low, f.slope_high
        return out

    def pooled_fit(self, variant: str, seed: int = 0) -> theory.ExponentFit:
        """The slope of the mean count over the heads with counts at every n."""
        counts = self.counts(variant, seed).reshape(-1, len(self.sizes))
        return theory.fit_exponent(self.sizes, counts[(counts > 0).all(axis=1)].mean(axis=0))

    def seed_bpb(self, variant: str) -> np.ndarray:
        """(R,): the held-out bits per byte of one variant for each training seed (the mean
        over the windows)."""
        return self.bpb_seeds[self.index(variant)].mean(axis=-1)

    def seed_sd(self, variants: tuple[str, ...] | None = None) -> tuple[float, int]:
        """The seed-to-seed standard deviation of a model's bits per byte, pooled over the
        variants (all, or those named): sqrt(sum_v sum_r (bpb_vr - mean_r bpb_vr)^2 / df),
        df = V (R - 1)."""
        rows = [self.index(v) for v in (self.variants if variants is None else variants)]
        means = self.bpb_seeds[rows].mean(axis=-1)  # (V, R)
        df = means.shape[0] * (means.shape[1] - 1)
        if df < 1:
            raise ValueError(f"seed noise needs two training seeds or more and a variant; got "
                             f"seeds {self.seeds}, variants {variants}")
        return float(np.sqrt(np.square(means - means.mean(axis=1, keepdims=True)).sum() / df)), df

    def compare(self, a: str, b: str, noise_from: tuple[str, ...] | None = None
                ) -> SeedComparison:
        """Model a against model b in held-out bits per byte, against the seed noise pooled
        over ``noise_from`` (default: every variant)."""
        ma, mb = self.seed_bpb(a), self.seed_bpb(b)
        sd, df = self.seed_sd(noise_from)
        half = float(stats.t.ppf(0.975, df) * sd * np.sqrt(1 / ma.size + 1 / mb.size))
        separated = bool(ma.max() < mb.min() or mb.max() < ma.min())
        return SeedComparison(a, b, float(ma.mean() - mb.mean()), half, sd, df, separated)

    def gaussian_fit(self) -> theory.ExponentFit:
        """The Gaussian expectation n Phibar(sqrt(0.4 ln n)) fitted on the same n."""
        return theory.fit_exponent(self.sizes, theory.expected_activated(self.sizes, C))

    def __repr__(self) -> str:
        parts = [f"{v}: " + ", ".join(f"{x:.3f}" for x in self.seed_bpb(v)) + " bpb, slope "
                 + ", ".join(f"{self.pooled_fit(v, r).slope:.2f}" for r in self.seeds)
                 for v in self.variants]
        return (f"ReluLMStudy(n = {self.sizes[0]}..{self.sizes[-1]}, m={self.m}, "
                f"{self.bpb.shape[1]} windows, training seeds {self.seeds} (values listed by "
                "seed); " + "; ".join(parts) + ")")


@functools.lru_cache(maxsize=16)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def weights_digests() -> list[str]:
    """SHA-256 of every shipped weights file, by variant then training seed (the study's
    cache key: retrained weights compute afresh)."""
    out = []
    for v in relu_lm.VARIANTS:
        for r in relu_lm.SEEDS:
            st = relu_lm.weights_path(v, r).stat()
            out.append(_file_digest(str(relu_lm.weights_path(v, r)), st.st_size, st.st_mtime_ns))
    return out


def relu_lm_study(quick: bool | None = None, seed: int = 0, force: bool = False
                  ) -> ReluLMStudy:
    """The study over the shipped models (cached; minutes in full, seconds quick).

    Full: 8 held-out windows of 2048 bytes, n = 128 .. 2048 (9 values), m = 64 rows per n,
    the kd-tree at n = 256 .. 2048. Quick: one window of 256 bytes, n = 64 .. 256, m = 16.
    Everything for the models of training seed 0; bits per byte, counts, empty rows and b for
    every training seed. ``seed`` draws the held-out windows (not a training seed).
    """
    s = _setting(resolve_quick(quick))
    params = dict(s, seed=seed, c=C, variants=list(relu_lm.VARIANTS),
                  training_seeds=list(relu_lm.SEEDS), weights=weights_digests(),
                  heldout=pystdlib.load().sha256("heldout"))

    def compute() -> dict[str, np.ndarray]:
        windows = pystdlib.heldout_windows(s["length"], s["windows"], seed)
        per = [_model_study(v, s, windows)
               for v in progress(relu_lm.VARIANTS, desc="ReLU LM study")]
        stacked = {k: np.stack([p[k] for p in per]) for k in per[0]}
        return stacked | dict(gaussian_tree=gaussian_tree(s["tree_sizes"], 64, seed))

    data = dict(cache.cached("relu_lm_study", params, compute, force=force))
    return ReluLMStudy(tuple(relu_lm.VARIANTS), tuple(relu_lm.SEEDS), np.array(s["sizes"]),
                       np.array(s["tree_sizes"]), s["m"], data)


# ----------------------------------------------------------------------------- timing
def decoding_times(variant: str = "relu2_learned", layer: int = 0, head: int = 0,
                   n: int | None = None, repeats: int = 20, seed: int = 0
                   ) -> dict[str, float | int | str]:
    """Median seconds of one decoding step at context n: a held-out window's keys and values
    0..n-1 in the cache, the query of row n-1 asking (it sees every key, itself included).
    Three ways, interleaved: the dense row (``attention.dense.dense_relu``, the reference
    kernel, without the argument checks of ``relu_attention``), ``Decoder.attend`` with
    ``backend="auto"``, and with the kd-tree (``backend="compiled"`` where Numba is installed,
    else "numpy"; "tree_kind" says which, "auto_kernel" what auto ran). Measured on this
    machine, never cached."""
    from hsr_lab.hsr.compiled import AVAILABLE

    tree = "compiled" if AVAILABLE else "numpy"  # the tree backend="auto" races
    lm = relu_lm.load(variant)
    if not lm.relu:
        raise ValueError(f"variant must be a ReLU model; got {variant!r}")
    n = lm.config["context"] if n is None else int(n)
    tr = relu_lm.run(lm, pystdlib.heldout_windows(n, 1, seed)[0])
    Q, K, V = (np.ascontiguousarray(x[layer, head]) for x in (tr.Q, tr.K, tr.V))
    b, q = float(lm.b[layer, head]), Q[-1]
    decoders = {name: Decoder(D, lm.alpha, b, backend=backend, keys=K, values=V,
                              measure_dropped=False) for name, backend in
                (("auto", "auto"), ("tree", tree))}
    calls = {"dense": lambda: dense_relu(q[None], K, V, lm.alpha, b, False)} | {
        name: (lambda dec=dec: dec.attend(q)) for name, dec in decoders.items()}
    rows = {name: np.asarray(call()[0]).ravel() for name, call in calls.items()}
    for name in ("auto", "tree"):
        err = np.linalg.norm(rows[name] - rows["dense"]) / np.linalg.norm(rows["dense"])
        if not err <= 1e-12:
            raise AssertionError(f"the {name} decoding step differs from dense: {err:.2e}")
    times = {name: [] for name in calls}
    for _ in range(repeats):  # interleaved, so that a busy spell hits every method alike
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - t0)
    kernel = decoders["auto"].attend(q)[1].kernel  # what auto ran: "dense" or a tree
    return {name: float(np.median(t)) for name, t in times.items()} | {
        "n": n, "tree_kind": tree, "auto_kernel": kernel}
