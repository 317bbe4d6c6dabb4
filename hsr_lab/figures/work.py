"""The machine-independent work of one half-space query against n, for several dimensions d."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from hsr_lab import theory
from hsr_lab.experiments import query_work_sweep
from hsr_lab.figures import COLORS, LINESTYLES, MARKERS, figure, new_figure
from hsr_lab.figures._common import FAINT, fit_positive, fmt_fit, log_n_axes

_SCAN = dict(color="black", ls=(0, (4, 2)), lw=1.6, marker="")


@figure("query_work", "Work per half-space query (boxes tested + inner products) of the kd-tree "
        "on Gaussian keys against n for d = 2 ... 64: measured slopes (not bounds), beside the "
        "exponent of Part 1's cited bound and the scan's n.")
def fig_query_work(quick: bool = False, seed: int = 0, **kw) -> Figure:
    """Left: work per query against n, log-log, one line per d, and the scan's n.

    Right: the same work as a share of the scan, work / n. The legend gives each d's fitted
    slope (95% CI), a measurement on Gaussian keys, next to the exponent of Part 1's cited bound
    (1 - 1/floor(d/2) for d >= 4; log n + k at d = 2, 3). A kd-tree has no sublinear bound for
    half-spaces (``fig_kdtree_counterexample``), so no kd-tree exponent is drawn.
    ``kw`` goes to ``query_work_sweep`` (n_values, dims, n_queries, c).
    """
    sweep = query_work_sweep(quick=quick, seed=seed, **kw)
    n, work = sweep.n, sweep.work
    fig, (ax_work, ax_share) = new_figure(width_ratio=2, height=3.6, ncols=2)
    handles, labels = [], []
    for i, d in enumerate(sweep.dims):
        style = dict(color=COLORS[i % len(COLORS)], ls=LINESTYLES[i % len(LINESTYLES)],
                     marker=MARKERS[i % len(MARKERS)], mfc="white")
        handles += ax_work.plot(n, work[i], **style)
        ax_share.plot(n, work[i] / n, **style)
        labels.append(_slope_label(int(d), fit_positive(n, work[i]), work[i] / n))
    handles += ax_work.plot(n, n, **_SCAN)
    labels.append("dense scan: n inner products")
    k = sweep.reported.mean(axis=0)
    handles += ax_work.plot(n, k, color=FAINT, lw=2.5, marker="", zorder=1)
    labels.append("k, points reported (not counted in work)")
    ax_share.axhline(1.0, **_SCAN)
    over = [str(d) for d, row in zip(sweep.dims, work / n, strict=True) if row.max() > 1.0]
    if over:  # the honest part: the tree can cost more than the scan it should beat
        ax_share.text(0.98, 0.985, f"d = {', '.join(over)}: more work than the scan",
                      transform=ax_share.transAxes, ha="right", va="top", fontsize=7)

    log_n_axes(ax_work, n, "work per query")
    ax_work.set_title("work = boxes tested + inner products")
    log_n_axes(ax_share, n, "work / n", yscale="linear")
    ax_share.set_ylim(0.0, 1.25)  # headroom for the note above the lines
    ax_share.set_title("the same work as a share of the scan")
    fig.legend(handles, labels, loc="outside lower center", ncol=2, handlelength=2.6,
               fontsize=7, title_fontsize=8,
               title="d: measured slope of the kd-tree's work on Gaussian keys [95% CI];  "
               "Part 1's cited bound: $n^{1 - 1/\\lfloor d/2\\rfloor}$ (d ≥ 4), log n (d = 2, 3)")
    return fig


def _slope_label(d: int, fit: theory.ExponentFit, share: np.ndarray) -> str:
    """'d = 8: measured 0.85 [0.84, 0.87];  Part 1 bound: 0.75', noting when it is a scan."""
    part1 = f"{theory.part1_exponent(d):.2g}" if d >= theory.PART1_FROM_D else "log n"
    label = f"d = {d}: measured {fmt_fit(fit)};  Part 1 bound: {part1}"
    if share.min() > 0.9:  # almost every box is opened: the tree only adds its nodes to a scan
        label += f"  (≈ scan, {share.max():.2f} n)"
    return label
