"""How many entries of a ReLU^alpha row are activated as n grows, against the paper's n^{4/5}."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.legend_handler import HandlerTuple
from matplotlib.lines import Line2D

from hsr_lab import theory
from hsr_lab.experiments import SparsitySweep, one_row_scores, row_max_sweep, sparsity_sweep
from hsr_lab.figures import COLORS, LINESTYLES, MARKERS, figure, new_figure
from hsr_lab.figures._common import fit_positive, fmt_fit, log_n_axes

PAPER_C = theory.PAPER_C  # the paper's threshold constant: b = sigma_a sqrt(0.4 ln n)
_LEGEND = dict(loc="upper center", bbox_to_anchor=(0.5, -0.2), handlelength=2.4)


@figure("sparsity_scaling", "Activated entries per row against n: measured, exact expectation "
        "n Phibar(sqrt(c ln n)) and the paper's n^{4/5} bound; fitted slopes against 1 - c/2.")
def fig_sparsity_scaling(quick: bool = False, seed: int = 0, **kw) -> Figure:
    """Left: c = 0.4 with every seed, the bounds n^{4/5} and 2 n^{4/5}. Right: every c, fitted.

    ``kw`` goes to ``sparsity_sweep`` (n_values, c_values, seeds, d, n_queries).
    """
    sweep = sparsity_sweep(quick=quick, seed=seed, **kw)
    fig, (ax_paper, ax_all) = new_figure(width_ratio=2, height=3.5, ncols=2)
    if PAPER_C in sweep.c:
        _paper_panel(ax_paper, sweep, int(np.flatnonzero(sweep.c == PAPER_C)[0]))
    else:
        ax_paper.set_axis_off()
    _all_c_panel(ax_all, sweep)
    return fig


def _paper_panel(ax: Axes, sweep: SparsitySweep, row: int) -> None:
    """c = 0.4: seeds, their mean, the exact expectation, the paper's bounds and the fit."""
    n, counts = sweep.n, sweep.counts[row]
    grid = np.geomspace(n[0], n[-1], 100)
    line = dict(marker="")
    ax.plot(grid, theory.paper_whp_bound(grid), color=COLORS[5], ls=LINESTYLES[5],
            label=r"paper, w.h.p.: $2\,n^{4/5}$", **line)
    ax.plot(grid, theory.paper_bound(grid, PAPER_C), color=COLORS[1], ls=LINESTYLES[1],
            label=r"paper, expectation: $n^{4/5}$", **line)
    ax.plot(grid, theory.expected_activated(grid, PAPER_C), color=COLORS[0], ls=LINESTYLES[0],
            label=r"exact $E[k] = n\,\bar\Phi(\sqrt{0.4\,\ln n})$", **line)
    fit = fit_positive(n, counts)
    ax.plot(n, counts.mean(axis=0), ls="none", marker=MARKERS[0], color=COLORS[0], mfc="white",
            ms=4.5, label=f"mean of {counts.shape[0]} seeds; fit to all: {fmt_fit(fit, 3)}")
    ax.plot(np.tile(n, counts.shape[0]), counts.ravel(), ls="none", marker=".", ms=2.5,
            color="black", alpha=0.5, label=f"one seed (mean of {sweep.n_queries} rows)")
    lo, hi = theory.local_slope(np.array([n[0], n[-1]], dtype=float), PAPER_C)
    ax.text(0.98, 0.03, "slope < 0.8: $E[k] \\approx n^{4/5}/\\sqrt{0.8\\pi\\ln n}$\n"
            f"(Mills ratio); its local slope: {lo:.2f} to {hi:.2f}",
            transform=ax.transAxes, ha="right", va="bottom", fontsize=7)
    log_n_axes(ax, n, "activated entries per row, k")
    ax.set_title(r"paper's threshold $b = \sigma_a\sqrt{0.4\,\ln n}$")
    ax.legend(**_LEGEND)


def _all_c_panel(ax: Axes, sweep: SparsitySweep) -> None:
    """Every c: the measured mean, the exact expectation and the fitted slope vs 1 - c/2."""
    n = sweep.n
    grid = np.geomspace(n[0], n[-1], 100)
    handles, labels = [], []
    for i, c in enumerate(sweep.c):
        fit = fit_positive(n, sweep.counts[i])
        exact = ax.plot(grid, theory.expected_activated(grid, c), color=COLORS[i],
                        ls=LINESTYLES[i], marker="")[0]
        dots = ax.plot(n, sweep.counts[i].mean(axis=0), ls="none", marker=MARKERS[i],
                       color=COLORS[i], mfc="white", ms=4.5)[0]
        ax.plot(grid, np.exp(fit.intercept) * grid**fit.slope, color="black", lw=0.5,
                marker="", ls="-")
        handles.append((exact, dots))
        labels.append(f"c = {c:g}: {fmt_fit(fit, 3)} vs {1 - c / 2:g}")
    handles.append(Line2D([], [], color="black", lw=0.5))
    labels.append("fitted power law")
    log_n_axes(ax, n, "activated entries per row, k")
    ax.set_title(r"$b = \sigma_a\sqrt{c\,\ln n}$: fitted slope vs $1 - c/2$")
    ax.legend(handles, labels, handler_map={tuple: HandlerTuple(ndivide=1)},
              title="markers: mean of seeds; lines: exact E[k]\nfitted slope [95% CI] vs 1 - c/2",
              **_LEGEND)


@figure("sparsity_row_max", "The paper's with-high-probability bound tested: the largest activated "
        "count over many rows against 2 n^{4/5}, beside the row mean and the exact expectation.")
def fig_sparsity_row_max(quick: bool = False, seed: int = 0, **kw) -> Figure:
    """Log-log against n at b = sigma_a sqrt(0.4 ln n): the maximum over rows, the mean over
    rows, n Phibar(sqrt(0.4 ln n)), n^{4/5} and 2 n^{4/5}. ``kw`` goes to ``row_max_sweep``."""
    sweep = row_max_sweep(quick=quick, seed=seed, **kw)
    n = sweep.n
    grid = np.geomspace(n[0], n[-1], 100)
    fig, ax = new_figure(width_ratio=1.2, height=3.0)
    ax.plot(grid, theory.paper_whp_bound(grid), color=COLORS[5], ls=LINESTYLES[5], marker="",
            label=r"paper, w.h.p.: $2\,n^{4/5}$")
    ax.plot(grid, theory.paper_bound(grid), color=COLORS[1], ls=LINESTYLES[1], marker="",
            label=r"paper, expectation: $n^{4/5}$")
    ax.plot(grid, theory.expected_activated(grid), color=COLORS[0], ls=LINESTYLES[0], marker="",
            label=r"exact $E[k] = n\,\bar\Phi(\sqrt{0.4\,\ln n})$")
    ax.plot(n, sweep.row_max, ls="none", marker=MARKERS[2], color=COLORS[2], mfc="white",
            label=f"largest count over {sweep.rows} rows")
    ax.plot(n, sweep.row_mean, ls="none", marker=MARKERS[0], color=COLORS[0], mfc="white",
            label=f"mean over the {sweep.rows} rows")
    log_n_axes(ax, n, "activated entries per row, k")
    ax.set_title("every row stays below $2\\,n^{4/5}$", fontsize=8)
    ax.legend(fontsize=6.5, loc="upper left")
    return fig


@figure("score_tail", "One row's scores at n = 2^16, d = 16: a histogram with the paper's "
        "threshold b = sigma_a sqrt(0.4 ln n) and the kept upper tail, about "
        "n Phibar(sqrt(0.4 ln n)) keys.")
def fig_score_tail(quick: bool = False, seed: int = 0, n: int = 2**16, d: int = 16) -> Figure:
    """Histogram of s_j = <q, k_j>/sqrt(d) for one unit query and n Gaussian keys; the kept
    scores s_j > b shaded. ``quick`` draws the same row (it is cheap)."""
    scores, sigma_a, b = one_row_scores(n, d, seed=seed)
    kept = scores > b
    fig, ax = new_figure(width_ratio=1.6, height=2.4)
    _, edges, _ = ax.hist(scores, bins=120, color="0.7", label="dropped")
    ax.hist(scores[kept], bins=edges, color=COLORS[1], hatch="////",
            label=f"kept: {int(kept.sum())} of {n} (E = {theory.expected_activated(n):.0f})")
    ax.axvline(b, color="black", lw=1, marker="")
    ax.set(xlabel=r"score $s_j = \langle q, k_j\rangle/\sqrt{d}$", ylabel="keys")
    ax.set_title(rf"$b = \sigma_a\sqrt{{0.4\,\ln n}} = {b:.3f}$, $\sigma_a = {sigma_a:.3f}$",
                 fontsize=8)
    ax.legend(fontsize=7, loc="upper left")
    return fig
