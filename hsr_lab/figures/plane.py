"""Half-plane reporting in the plane: what a kd-tree and the convex layers do with one query."""

from __future__ import annotations

import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Polygon

from hsr_lab.experiments import PlaneQuery, plane_query
from hsr_lab.figures import COLORS, figure, house_style, new_figure
from hsr_lab.figures._common import FAINT

# What the kd-tree query did with a cell: (legend label, fill colour, hatch, edge style).
_CELL_STYLE = {
    "pruned": ("pruned (misses)", COLORS[0], "", "-"),
    "reported": ("reported whole", COLORS[2], "////", "-"),
    "scanned": ("leaf scanned", COLORS[1], "\\\\\\\\", "-"),  # not dots: 10x slower to hatch
    "opened": ("opened", "none", "", "--"),
}
_SHADE = COLORS[4]


@figure("hsr_plane", "One half-plane query in the plane: kd-tree cells visited and convex layers "
        "reached.")
def fig_hsr_plane(quick: bool = False, seed: int = 0, **kw) -> Figure:
    """Gaussian points, the half-plane <a, x> >= t, and the work of a kd-tree and of convex layers.

    ``kw`` goes to ``plane_query`` (n, angle, t, leaf_size); 200 points (quick: 100).

    Examples
    --------
    >>> fig = fig_hsr_plane(quick=True)
    >>> [ax.get_title().splitlines()[1] for ax in fig.axes]
    ['4 leaves scanned = 25 inner products', '16 of 100 points reported']
    """
    kw = {"n": 100 if quick else 200, "seed": seed, **kw}
    scene = PlaneScene(**{k: kw.pop(k) for k in ("leaf_size", "seed") if k in kw})
    scene.show(**kw)
    return scene.figure


class PlaneScene:
    """The ``hsr_plane`` figure in two layers, so that a widget redraws only what moves.

    Drawn once: the axes, their labels and legends (again when a new point set needs a new view
    box: ``static_key`` is the box). Drawn for each query by ``show``: the shaded
    half-plane <a, x> >= t and its line, the kd-tree cells by outcome, the convex layers, the
    points and the titles (``moving``, in drawing order). ``fig_hsr_plane`` shows both layers
    as one ordinary figure; ``hsr_lab.widgets.ScenePanel`` keeps the first layer as a bitmap
    and blits the second onto it.
    """

    def __init__(self, leaf_size: int = 8, seed: int = 0) -> None:
        self.leaf_size, self.seed = leaf_size, seed
        self.n = 0
        self.box: tuple[float, float, float, float] | None = None  # (x0, y0, x1, y1)
        self._added: list[Artist] = []
        self.moving: list[Artist] = []
        with house_style():
            self.figure, self.axes = new_figure(width_ratio=2, height=3.6, ncols=2)
            for ax in self.axes:
                ax.set(aspect="equal", xlabel="$x_1$", ylabel="$x_2$")
                ax.grid(False)
                ax.legend(handles=_legend_handles(ax is self.axes[0]), loc="upper center",
                          ncol=3, bbox_to_anchor=(0.5, -0.16), handlelength=1.6,
                          columnspacing=1.0)
            self._grey = [ax.scatter([], [], s=4, color=FAINT, linewidths=0, zorder=4)
                          for ax in self.axes]

    def show(self, n: int = 200, angle: float = 0.6, t: float = 1.0) -> PlaneQuery:
        """Draw the query <a, x> >= t, a = (cos angle, sin angle), over n Gaussian points (the
        same seed); return its trace."""
        pq = plane_query(n=n, angle=angle, t=t, leaf_size=self.leaf_size, seed=self.seed)
        if n != self.n:  # a new point set (grey points are moving artists)
            self.n = n
            for grey in self._grey:
                grey.set_offsets(pq.points)
            box = _view_box(pq.points)
            if box != self.box:  # new limits: the static layer changes
                self.box = box
                for ax in self.axes:
                    ax.set(xlim=box[::2], ylim=box[1::2])
        for artist in self._added:
            artist.remove()
        self._added = []  # so that an error below cannot leave removed artists listed
        ax_tree, ax_layers = self.axes
        with house_style():
            added = [artist for ax in self.axes for artist in _draw_half_plane(ax, pq, self.box)]
            added += [*_draw_cells(ax_tree, pq), *_draw_layers(ax_layers, pq)]
            added += [_draw_reported(ax, pq) for ax in self.axes]
        self._added = added
        # Redrawn each time, in the order of a full draw: also the grey points and the spines,
        # which a full draw puts above the shading and the cells.
        spines = [s for ax in self.axes for s in ax.spines.values() if s.get_visible()]
        kept = [*self._grey, *spines, ax_tree.title, ax_layers.title]
        self.moving = sorted([*added, *kept], key=lambda artist: artist.get_zorder())
        return pq

    @property
    def static_key(self) -> tuple[float, ...] | None:
        """What the static layer depends on: the view box."""
        return self.box


def _view_box(points: np.ndarray) -> tuple[float, float, float, float]:
    """A square centred on the origin around the points, its half-width rounded up to 0.5.

    Square, so that with an equal aspect the axes keep their shape; rounded, so that a new
    point set of another size usually keeps the same view (and a widget its static layer).
    """
    half = float(np.ceil(2.08 * np.abs(points).max()) / 2)  # 4% margin, then up to 0.5
    return (-half, -half, half, half)


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


def _draw_half_plane(ax: Axes, pq: PlaneQuery, box: tuple[float, ...]) -> list[Artist]:
    """Shade <a, x> >= t inside the view and draw its boundary line <a, x> = t."""
    x0, y0, x1, y1 = box
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    inside = _clip_to_half_plane(corners, pq.a, pq.t)
    added: list[Artist] = []
    if len(inside):
        added.append(ax.add_patch(Polygon(inside, facecolor=_SHADE, alpha=0.15,
                                          edgecolor="none", zorder=0)))
    foot = pq.a * pq.t / (pq.a @ pq.a)  # the point of the line closest to the origin
    along = np.array([-pq.a[1], pq.a[0]])
    return [*added, ax.axline(foot, foot + along, color="black", lw=1.0, zorder=3)]


def _draw_cells(ax: Axes, pq: PlaneQuery) -> list[Artist]:
    """Every cell the kd-tree visited, filled by outcome; title with the counts."""
    # One collection per outcome (not two patches per cell): a slider redraw builds 4 artists,
    # not hundreds, and the view limits are set by the caller, so no autoscaling is needed.
    added: list[Artist] = []
    for outcome, (_, color, hatch, ls) in _CELL_STYLE.items():
        cells = pq.cells[pq.outcomes == outcome]
        if not len(cells):
            continue
        xl, yl, xh, yh = cells.T
        corners = np.stack([np.c_[xl, yl], np.c_[xh, yl], np.c_[xh, yh], np.c_[xl, yh]], axis=1)
        filled = color != "none"
        if filled:
            added.append(ax.add_collection(PolyCollection(
                corners, facecolors=to_rgba(color, 0.25), edgecolors="none", zorder=1),
                autolim=False))
        added.append(ax.add_collection(PolyCollection(
            corners, facecolors="none", hatch=hatch or None, edgecolors=color if filled else "0.3",
            linewidths=0.5, linestyles=ls, zorder=1.5), autolim=False))
    count = {k: int(np.sum(pq.outcomes == k)) for k in _CELL_STYLE}
    ax.set_title(f"kd-tree: {count['pruned']} cells pruned, {count['reported']} reported whole,\n"
                 f"{count['scanned']} leaves scanned = {pq.inner_products} inner products")
    return added


def _draw_layers(ax: Axes, pq: PlaneQuery) -> list[Artist]:
    """The convex layers, outermost first; those the query reached are drawn strong."""
    reached, stop, rest = (dict(color=COLORS[0], ls="-", lw=0.9),
                           dict(color=COLORS[3], ls="--", lw=1.2), dict(color=FAINT, lw=0.6))
    groups: dict[int, list[np.ndarray]] = {id(reached): [], id(stop): [], id(rest): []}
    for i, layer in enumerate(pq.layers):
        misses = (layer @ pq.a).max() < pq.t  # the walk stops at the first layer that misses
        style = rest if i >= pq.layers_reached else stop if misses else reached
        groups[id(style)].append(layer)
    added: list[Artist] = []  # one collection per style: a slider move adds 3 artists, not ~90
    for style in (reached, stop, rest):
        if groups[id(style)]:
            added.append(ax.add_collection(PolyCollection(
                groups[id(style)], closed=True, facecolors="none", edgecolors=style["color"],
                linestyles=style.get("ls", "-"), linewidths=style["lw"], zorder=2),
                autolim=False))
    ax.set_title(f"convex layers: {pq.layers_reached} of {len(pq.layers)} reached,\n"
                 f"{len(pq.reported)} of {len(pq.points)} points reported")
    return added


def _draw_reported(ax: Axes, pq: PlaneQuery) -> Artist:
    """The reported points in black and larger, over the grey ones (ids are row indices)."""
    return ax.scatter(*pq.points[pq.reported].T, s=9, color="black", linewidths=0, zorder=5)


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
