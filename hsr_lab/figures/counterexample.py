"""No sublinear guarantee for a kd-tree on half-spaces: points on a line, queried along it."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from hsr_lab.experiments import line_counterexample, line_points
from hsr_lab.figures import COLORS, LINESTYLES, MARKERS, figure, new_figure
from hsr_lab.figures._common import FAINT, log_n_axes
from hsr_lab.hsr import HSR

_SCAN = dict(color="black", ls=(0, (4, 2)), lw=1.6, marker="")


@figure("kdtree_counterexample", "A kd-tree has no sublinear bound for half-spaces: points on a "
        "line queried along that line (k = 0, every cell opened, work about 1.06 n), beside "
        "Gaussian points, where the same tree prunes (measured, not a bound).")
def fig_kdtree_counterexample(quick: bool = False, seed: int = 0, **kw) -> Figure:
    """Left: 128 points on the diagonal, the half-plane <a, x> >= t whose boundary runs along
    it, and the leaf boxes the NumPy kd-tree scans (all of them). Right: work / n against n for
    the line and for Gaussian points at the paper's threshold. ``kw`` goes to
    ``line_counterexample``."""
    fig, (ax_line, ax_work) = new_figure(width_ratio=2, height=3.0, ncols=2)
    points, a, t = line_points(128, seed)
    tree = HSR(points, backend="numpy", leaf_size=8)
    _, stats = tree.query(a, t, stats=True)
    leaves = 0
    for node, outcome in tree.blocks[0].trace(a, t):
        if outcome == "scanned":
            leaves += 1
            lo = np.asarray(node.center) - np.asarray(node.half)
            ax_line.add_patch(Rectangle(tuple(lo), *(2 * np.asarray(node.half)), fill=False,
                                        ec=COLORS[1], lw=0.8))
    box = 1.1 * np.abs(points).max()
    ax_line.fill([-box, box, box], [-box, -box, box], color=COLORS[4], alpha=0.15, lw=0)
    ax_line.plot([-box, box], [-box, box], color="black", lw=0.8, marker="")
    ax_line.plot(points[:, 0], points[:, 1], ls="none", marker=".", ms=3, color=FAINT)
    ax_line.set(xlim=(-box, box), ylim=(-box, box), aspect="equal", xlabel="$x_1$",
                ylabel="$x_2$")
    ax_line.set_title(f"k = {stats.points_reported}: {leaves} of {leaves} leaves scanned,\n"
                      f"work {stats.work} for n = {len(points)}", fontsize=8)

    sweep = line_counterexample(quick=quick, seed=seed, **kw)
    n = sweep.n
    ax_work.plot(n, sweep.line_work / n, color=COLORS[1], ls=LINESTYLES[1], marker=MARKERS[1],
                 mfc="white", label="points on a line, k = 0 (a worst case)")
    ax_work.plot(n, sweep.gauss_work / n, color=COLORS[0], ls=LINESTYLES[0], marker=MARKERS[0],
                 mfc="white", label="Gaussian points, paper's t (measured)")
    ax_work.axhline(1.0, **_SCAN, label="dense scan: n")
    log_n_axes(ax_work, n, "work / n", yscale="linear")
    ax_work.set_ylim(0.0, 1.25)
    ax_work.set_title("kd-tree work as a share of the scan (d = 2)", fontsize=8)
    ax_work.legend(fontsize=7, loc="center right")
    return fig
