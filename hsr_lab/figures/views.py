"""Views behind the notebook widgets: plain functions ``view_*(...) -> Figure``.

Each one is what a widget panel redraws when a slider moves (``hsr_lab.widgets``), so it is
sized to answer well under 200 ms at its defaults. They are not registered figures: their
arguments are the sliders' values, under the names the math uses (``n``, ``d``, ``alpha``,
``b``), passed on under the same names. Bad values raise ``ValueError``/``TypeError`` with a
message the panel shows instead of a plot.

The views that show HSR ask the kd-tree (``backend="numpy"``, or ``"reference"``, its readable
twin), never ``"auto"``, which scans at small n: the counters they print (nodes visited and
pruned, inner products) are the tree's.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter

from hsr_lab import theory
from hsr_lab.attention import relu_attention, softmax_attention
from hsr_lab.experiments import (
    measure_query_cost,
    planted_instance,
    relu_tree_counters,
    sparsity_sweep,
)
from hsr_lab.experiments.common import unit_vectors
from hsr_lab.figures import COLORS, LINESTYLES, MARKERS, house_style, new_figure
from hsr_lab.figures._common import log_n_axes
from hsr_lab.validate import as_positive_int, as_scalar


def _instance(m: int, n: int, d: int, seed: int) -> tuple[np.ndarray, ...]:
    """Unit-norm Gaussian queries, standard Gaussian keys and values: Q (m, d), K, V (n, d)."""
    rng = np.random.default_rng(seed)
    return unit_vectors(rng, m, d), rng.standard_normal((n, d)), rng.standard_normal((n, d))


def view_relu_attention(n: int = 2048, d: int = 4, alpha: int = 1, b: float = 1.0,
                        m: int = 32, seed: int = 0, backend: str = "numpy") -> Figure:
    """The activated entries of ReLU^alpha attention, A = ReLU(Q K^T / sqrt(d) - b)^alpha.

    Left: the mask of activated entries (one half-space query per row, <q_i, k_j> >= sqrt(d) b,
    reports them) and the kd-tree's nodes visited and pruned per row. Right: the weights of the
    first row, the inner products per row against n, and the HSR output against the dense one.
    ``backend`` is a tree: "numpy" or "reference". Every counter in the titles is the tree's
    (``experiments.relu_tree_counters``: one query per row, the structure's default leaves).

    Examples
    --------
    At the defaults the tree prunes; at ``d=8, b=0.5`` it prunes almost nothing, and scores
    nearly every key of every row:

    >>> for kw in ({}, {"d": 8, "b": 0.5}):
    ...     fig = view_relu_attention(**kw)
    ...     print(fig.axes[0].get_title().splitlines()[1], "|",
    ...           fig.axes[1].get_title().splitlines()[0])
    kd-tree per row: 77 nodes visited, 16 pruned | 733 inner products per row, n = 2048
    kd-tree per row: 126 nodes visited, 3 pruned | 1923 inner products per row, n = 2048
    """
    n, d, m = (as_positive_int(k, v) for k, v in (("n", n), ("d", d), ("m", m)))
    Q, K, V = _instance(m, n, d, seed)
    dense = relu_attention(Q, K, V, alpha=alpha, b=b)
    tree = relu_tree_counters(Q, K, b, backend)  # it checks that backend is a tree
    fast, stats = relu_attention(Q, K, V, alpha=alpha, b=b, method="hsr", backend=backend,
                                 return_stats=True)
    scores = Q @ K.T / np.sqrt(d)
    with house_style():
        fig, (ax_map, ax_row) = new_figure(width_ratio=2, height=2.6, ncols=2)
        ax_map.imshow(scores > as_scalar("b", b), aspect="auto", cmap="Greys",
                      interpolation="nearest")
        ax_map.grid(False)
        ax_map.set(xlabel="key j", ylabel="query i",
                   title=f"activated: {stats.total_activated} of {m * n} entries, "
                         f"{stats.empty_rows} empty rows\nkd-tree per row: "
                         f"{tree.nodes_visited.mean():.0f} nodes visited, "
                         f"{tree.nodes_pruned.mean():.0f} pruned")
        weights = np.maximum(scores[0] - b, 0.0) ** alpha
        ax_row.plot(np.arange(n), weights, color=COLORS[0], marker="", lw=0.8)
        ax_row.set(xlabel="key j", ylabel=r"$\mathrm{ReLU}(s_{0j} - b)^\alpha$",
                   title=f"{tree.inner_products.mean():.0f} inner products per row, n = {n}\n"
                         f"HSR vs dense: max |diff| = {np.abs(fast - dense).max():.1e}")
    return fig


def view_softmax_threshold(b: float = 1.0, planted: int = 2, sigma_a: float = 0.25,
                           n: int = 1024, d: int = 16, m: int = 32, seed: int = 0) -> Figure:
    """Softmax kept only where s_ij >= b: dropped mass eps_i and error, against the bound.

    ``sigma_a`` is the score scale: queries of norm sigma_a sqrt(d) on N(0, I) keys, so the
    Gaussian scores are N(0, sigma_a^2) (0.25: unit queries at d = 16). ``planted`` keys score
    high for every query (massive activations, like attention sinks; see
    ``hsr_lab.experiments.planted_instance``). The bound is ||Attn - Attn_hat||_inf <=
    2 max_i eps_i ||V||_inf; the title gives the paper's b = sigma_a sqrt(0.4 ln n) and, for
    Gaussian scores at that b, the derived eps = Phi(sqrt(0.4 ln n) - sigma_a).
    """
    n, d, m = (as_positive_int(k, v) for k, v in (("n", n), ("d", d), ("m", m)))
    sigma_a = as_scalar("sigma_a", sigma_a)
    Q, K, V = planted_instance(m, n, d, planted, seed, sigma_a=sigma_a)  # it checks both
    dense = softmax_attention(Q, K, V)
    approx, stats = softmax_attention(Q, K, V, method="hsr", b=b, backend="numpy",
                                      return_stats=True)
    eps = stats.dropped_mass
    error = np.abs(approx - dense).max(axis=1)
    bound = theory.softmax_error_bound(eps, np.abs(V).max())
    paper_b = float(theory.paper_threshold(n, sigma_a))
    with house_style():
        fig, ax = new_figure(width_ratio=1.4, height=2.6)
        rows = np.arange(m)
        ax.plot(rows, eps, label=r"dropped mass $\epsilon_i$", marker="o", ls="")
        ax.plot(rows, error, label=r"error $\max_j |Attn - \widehat{Attn}|$", marker="s", ls="")
        ax.axhline(bound, color="black", ls="--", marker="",
                   label=r"bound $2 \max_i \epsilon_i \|V\|_\infty$")
        ax.set_yscale("symlog", linthresh=1e-6)
        ax.set(xlabel="query row i", ylim=(0, None),
               title=f"b = {b:.2f}, $\\sigma_a$ = {sigma_a:.2f}: kept "
                     f"{stats.total_activated / m:.0f} of n = {n} keys per row\n"
                     f"paper's b = {paper_b:.2f}, where Gaussian scores drop "
                     f"{float(theory.gaussian_dropped_mass(n, sigma_a)):.2f} of the mass")
        ax.legend(loc="upper right", fontsize=7)
    return fig


def view_scaling(c: float = theory.PAPER_C, d: int = 16, seed: int = 0) -> Figure:
    """Activated entries per row against n at b = sigma_a sqrt(c ln n): slope 1 - c/2 predicted."""
    c = as_scalar("c", c)
    if not 0 < c < 2:
        raise ValueError(f"c must lie in (0, 2) so that n^(1 - c/2) grows; got {c}")
    sweep = sparsity_sweep(n_values=2 ** np.arange(8, 16), c_values=(c,), seeds=3, d=d,
                           n_queries=8, seed=seed, quick=True)
    n = sweep.n.astype(float)
    counts = sweep.counts[0]  # (seeds, n)
    fit = theory.fit_exponent(np.tile(n, len(counts)), np.maximum(counts.ravel(), 1e-3))
    with house_style():
        fig, ax = new_figure(width_ratio=1.4, height=2.6)
        ax.loglog(n, counts.mean(axis=0), ls="", marker="o",
                  label=f"measured: slope {fit.slope:.3f} [{fit.slope_low:.3f}, "
                        f"{fit.slope_high:.3f}]")
        ax.loglog(n, theory.expected_activated(n, c), marker="",
                  label=r"exact $n\,\bar\Phi(\sqrt{c \ln n})$")
        ax.loglog(n, theory.paper_bound(n, c), marker="", ls="--",
                  label=f"bound $n^{{1-c/2}}$, slope {1 - c / 2:.2f}")
        ax.set(xlabel="n (keys)", ylabel="activated entries per row", title=f"c = {c:.2f}")
        ax.legend(loc="upper left", fontsize=7)
    return fig


def view_query_cost(d: int = 4, log2_n: int = 16, keys: str = "isotropic", seed: int = 0,
                    progress: Callable[[int, int], None] | None = None) -> Figure:
    """Measured time of one query, kd-tree against the dense scan, for n = 2^10 .. 2^log2_n.

    Left: median time per query over every timed call, shaded between the quartiles (the
    interquartile range; ``hsr_lab.experiments.measure_query_cost``: keys of the given kind,
    t = sqrt(d) b with b = sigma_a sqrt(0.4 ln n) per row, one BLAS thread on both sides).
    Right: the tree's work,
    (box tests + inner products) / n, against the scan's 1 and k / n, what any exact method
    must report. This runs a measurement (seconds): the panel has a button and a progress bar.
    """
    log2_n = as_positive_int("log2_n", log2_n)
    if not 10 <= log2_n <= 22:
        raise ValueError(f"log2_n must lie in [10, 22]; got {log2_n}")
    cost = measure_query_cost(2 ** np.arange(10, log2_n + 1), d, keys, seed=seed,
                              on_step=progress)
    n = cost.n.astype(float)
    with house_style():
        fig, (ax_time, ax_share) = new_figure(width_ratio=2, height=2.6, ncols=2)
        curves = {ax_time: [(f"kd-tree ({cost.tree} walk)", 1e3 * cost.tree_s),
                            ("dense scan", 1e3 * cost.scan_s)],
                  ax_share: [("tree: (box tests + inner products) / n", cost.work / n),
                             ("reported: k / n", cost.reported / n)]}
        for ax, lines in curves.items():
            for i, (label, values) in enumerate(lines):
                ax.plot(n, values, color=COLORS[i], ls=LINESTYLES[i], marker=MARKERS[i],
                        label=label)
        for i, calls in enumerate((cost.tree_calls, cost.scan_calls)):  # the spread
            q25, q75 = 1e3 * np.percentile(calls, [25, 75], axis=1)
            ax_time.fill_between(n, q25, q75, color=COLORS[i], alpha=0.2, lw=0)
        ax_share.axhline(1.0, color="black", lw=0.8, ls="--", marker="", label="scan: 1")
        log_n_axes(ax_time, n, "ms per query (median, IQR shaded)", xlabel="n (keys)")
        log_n_axes(ax_share, n, "work / n", xlabel="n (keys)")
        for ax in (ax_time, ax_share):  # plain numbers at 1, 2, 5 x 10^k: no crowded minors
            ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
            ax.yaxis.set_major_formatter("{x:g}")
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax_time.set_title(f"d = {cost.d}, {keys} keys: {_verdict(float(cost.speedup[-1]))}\n"
                          f"at $n = 2^{{{log2_n}}}$ (1 BLAS thread)")
        ax_share.set_title("work per query, as a share of n")
        for ax in (ax_time, ax_share):
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=2, fontsize=7)
    return fig


def view_smollm2_head(layer: int = 15, head: int = 0, c: float = theory.PAPER_C,
                      per_row: bool = False, quick: bool | None = None, seed: int = 0
                      ) -> Figure:
    """One head of SmolLM2-135M (4-bit Q4_1 weights) on the study's long text, thresholded.

    Left: the scores s_ij of the last query against the key position j, the threshold (the
    paper's scalar b = sigma_a sqrt(c ln n), or with ``per_row`` the row's own b_i, computed
    here from the whole row; a sample of keys estimates it, notebook 05) and the kept entries;
    token 0 (the sink) is marked. Right: the dropped softmax mass eps_i of the last m = 64 rows
    for s > b, s > b plus token 0, and, at the same kept count, StreamingLLM and exact top-k
    (``experiments.smollm2.head_threshold``).
    Needs the SmolLM2 weights; the extraction is read from the cache once, then kept.
    """
    from hsr_lab.data.smollm2 import QUANTISED
    from hsr_lab.experiments.smollm2 import head_threshold, study_extraction
    from hsr_lab.figures.smollm2 import METHODS

    h = head_threshold(study_extraction(quick, seed), layer, head, as_scalar("c", c), per_row)
    n, last = h.S.shape[1], h.S[-1]
    j, kept = np.arange(n), h.S[-1] > h.b[-1]
    rule = "per-row $b_i$" if per_row else r"paper's $b=\sigma_a\sqrt{c\ln n}$"
    with house_style():
        fig, (ax_row, ax_eps) = new_figure(width_ratio=2.1, height=3.2, ncols=2)
        ax_row.plot(j[~kept], last[~kept], ls="", marker=".", ms=2, color="0.6", label="dropped")
        ax_row.plot(j[kept], last[kept], ls="", marker="o", ms=3, color=COLORS[0], label="kept")
        ax_row.plot([0], [last[0]], ls="", marker="*", ms=8, color=COLORS[1], label="token 0")
        ax_row.axhline(h.b[-1], color="black", ls="--", marker="", lw=0.8, label=f"b = "
                       f"{h.b[-1]:.2f}")
        ax_row.set(xlabel="key position j", ylabel=r"score $s_{ij}$ of the last query",
                   title=f"layer {layer}, head {head} (KV head {head // 3}), n = {n}: "
                         f"{kept.sum()} kept\nmass on token 0: {h.P[-1, 0]:.2f}; {rule}")
        ax_row.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=4)
        for i, (name, label) in enumerate(METHODS):
            ax_eps.plot(h.rows, h.eps[name], color=COLORS[i], ls=LINESTYLES[i], marker="",
                        label=f"{label}: mean {h.eps[name].mean():.2f}")
        ax_eps.set(xlabel="query row i (the last m)", ylabel=r"dropped mass $\epsilon_i$",
                   ylim=(-0.02, 1.02), title=f"c = {h.c:.2f}: {h.kept.mean():.1f} entries "
                                            f"above b per row (mean)")
        ax_eps.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)
        fig.suptitle(QUANTISED, fontsize=7, color="0.3")
    return fig


def _verdict(speedup: float) -> str:
    """'tree 2.3x faster than the scan', '... slower ...', or 'tree and scan on par'."""
    if 0.95 <= speedup <= 1.05:
        return "tree and scan on par"
    if speedup > 1:
        return f"tree {speedup:.1f}x faster than the scan"
    return f"tree {1 / speedup:.1f}x slower than the scan"
