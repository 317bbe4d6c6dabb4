"""Half-plane reporting in the plane: what a kd-tree and the convex layers do with one query."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Polygon, Rectangle

from hsr_lab.experiments import PlaneQuery, plane_query
from hsr_lab.figures import COLORS, figure, new_figure
from hsr_lab.figures._common import FAINT

# What the kd-tree query did with a cell: (legend label, fill colour, hatch, edge style).
_CELL_STYLE = {
    "pruned": ("pruned (misses)", COLORS[0], "", "-"),
    "reported": ("reported whole", COLORS[2], "////", "-"),
    "scanned": ("leaf scanned", COLORS[1], "....", "-"),
    "opened": ("opened", "none", "", "--"),
}
_SHADE = COLORS[4]


@figure("hsr_plane", "One half-plane query in the plane: kd-tree cells visited and convex layers "
        "reached.")
def fig_hsr_plane(quick: bool = False, seed: int = 0, **kw) -> Figure:
    """Gaussian points, the half-plane <a, x> >= t, and the work of a kd-tree and of convex layers.

    ``kw`` goes to ``plane_query`` (n, angle, offset, leaf_size); 200 points (quick: 100).
    """
    pq = plane_query(**{"n": 100 if quick else 200, "seed": seed, **kw})
    fig, (ax_tree, ax_layers) = new_figure(width_ratio=2, height=3.6, ncols=2)
    box = _view_box(pq.points)
    for ax in (ax_tree, ax_layers):
        _draw_half_plane(ax, pq, box)
    _draw_cells(ax_tree, pq)
    _draw_layers(ax_layers, pq)
    for ax in (ax_tree, ax_layers):
        _draw_points(ax, pq)
        ax.set(xlim=(box[0], box[2]), ylim=(box[1], box[3]), aspect="equal", xlabel="$x_1$",
               ylabel="$x_2$")
        ax.grid(False)
        ax.legend(handles=_legend_handles(ax is ax_tree), loc="upper center", ncol=3,
                  bbox_to_anchor=(0.5, -0.16), handlelength=1.6, columnspacing=1.0)
    return fig


def _view_box(points: np.ndarray) -> tuple[float, float, float, float]:
    """The points' bounding box plus 4% on each side: the root cell is no bigger than this."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    pad = 0.04 * (hi - lo)
    return (lo[0] - pad[0], lo[1] - pad[1], hi[0] + pad[0], hi[1] + pad[1])


def _clip_to_half_plane(poly: np.ndarray, a: np.ndarray, t: float) -> np.ndarray:
    """The part of a convex polygon where <a, x> >= t (Sutherland-Hodgman, one edge)."""
    out = []
    for p, q in zip(poly, np.roll(poly, -1, axis=0), strict=True):
        sp, sq = p @ a - t, q @ a - t
        if sp >= 0:
            out.append(p)
        if sp * sq < 0:
            out.append(p + (q - p) * sp / (sp - sq))
    return np.array(out).reshape(-1, 2)


def _draw_half_plane(ax: Axes, pq: PlaneQuery, box: tuple[float, ...]) -> None:
    """Shade <a, x> >= t inside the view and draw its boundary line <a, x> = t."""
    x0, y0, x1, y1 = box
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    inside = _clip_to_half_plane(corners, pq.a, pq.t)
    if len(inside):
        ax.add_patch(Polygon(inside, facecolor=_SHADE, alpha=0.15, edgecolor="none", zorder=0))
    foot = pq.a * pq.t / (pq.a @ pq.a)  # the point of the line closest to the origin
    along = np.array([-pq.a[1], pq.a[0]])
    ax.axline(foot, foot + along, color="black", lw=1.0, zorder=3)


def _draw_cells(ax: Axes, pq: PlaneQuery) -> None:
    """Every cell the kd-tree visited, filled by outcome; title with the counts."""
    for (xl, yl, xh, yh), outcome in zip(pq.cells, pq.outcomes, strict=True):
        _, color, hatch, ls = _CELL_STYLE[str(outcome)]
        filled = color != "none"
        ax.add_patch(Rectangle((xl, yl), xh - xl, yh - yl, facecolor=color,
                               alpha=0.25 if filled else 1.0, edgecolor="none", zorder=1))
        ax.add_patch(Rectangle((xl, yl), xh - xl, yh - yl, facecolor="none", hatch=hatch,
                               edgecolor=color if filled else "0.3", lw=0.5, ls=ls, zorder=1.5))
    count = {k: int(np.sum(pq.outcomes == k)) for k in _CELL_STYLE}
    scanned = pq.cells[pq.outcomes == "scanned"]
    inner = sum(int(np.sum(np.all((pq.points >= c[:2]) & (pq.points <= c[2:]), axis=1)))
                for c in scanned)
    ax.set_title(f"kd-tree: {count['pruned']} cells pruned, {count['reported']} reported whole,\n"
                 f"{count['scanned']} leaves scanned = {inner} inner products")


def _draw_layers(ax: Axes, pq: PlaneQuery) -> None:
    """The convex layers, outermost first; those the query reached are drawn strong."""
    reached, stop, rest = (dict(color=COLORS[0], ls="-", lw=0.9),
                           dict(color=COLORS[3], ls="--", lw=1.2), dict(color=FAINT, lw=0.6))
    for i, layer in enumerate(pq.layers):
        misses = (layer @ pq.a).max() < pq.t  # the walk stops at the first layer that misses
        style = rest if i >= pq.layers_reached else stop if misses else reached
        ax.add_patch(Polygon(layer, closed=True, fill=False, zorder=2, **style))
    ax.set_title(f"convex layers: {pq.layers_reached} of {len(pq.layers)} reached,\n"
                 f"{len(pq.reported)} of {len(pq.points)} points reported")


def _draw_points(ax: Axes, pq: PlaneQuery) -> None:
    """All points in grey, the reported ones in black and larger."""
    hit = np.zeros(len(pq.points), dtype=bool)
    hit[pq.reported] = True  # ids are row indices in plane_query
    ax.scatter(*pq.points[~hit].T, s=4, color=FAINT, linewidths=0, zorder=4)
    ax.scatter(*pq.points[hit].T, s=9, color="black", linewidths=0, zorder=5)


def _legend_handles(tree: bool) -> list:
    """Legend entries: the points and the half-plane, then cells (tree) or layers."""
    dot = dict(marker="o", ls="none", markeredgewidth=0)
    handles = [
        Line2D([], [], color="black", markersize=3.5, label="reported", **dot),
        Line2D([], [], color=FAINT, markersize=2.5, label="not reported", **dot),
    ]
    if tree:
        for label, color, hatch, ls in _CELL_STYLE.values():
            face = color if color != "none" else "none"
            handles.append(Patch(facecolor=face, alpha=0.4 if face != "none" else 1.0,
                                 hatch=hatch, edgecolor=color if face != "none" else "0.3",
                                 ls=ls, label=label))
    else:
        handles += [
            Line2D([], [], color=COLORS[0], ls="-", label="layer reached"),
            Line2D([], [], color=COLORS[3], ls="--", label="reached, misses"),
            Line2D([], [], color=FAINT, lw=0.6, label="not reached"),
            Patch(facecolor=_SHADE, alpha=0.3, edgecolor="black",
                  label=r"$\langle a,x\rangle \geq t$"),
        ]
    return handles
