"""Redrawing a view into the figure it drew last, instead of a new one: ``drawing_into``.

The widget panels (``hsr_lab.widgets.render``) refill one figure on every slider move: its
canvas and renderer survive, so matplotlib's text-layout cache stays warm. ``new_figure``
(``hsr_lab.figures``) asks ``target_figure()`` and, inside ``drawing_into(fig)``, calls
``refill`` rather than ``plt.subplots``. Views need no change: they call ``new_figure``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure

_TARGET: ContextVar[Figure | None] = ContextVar("hsr_lab_target_figure", default=None)


@contextlib.contextmanager
def drawing_into(fig: Figure) -> Iterator[Figure]:
    """Inside this block, ``new_figure`` clears and refills ``fig`` instead of making a new one.

    The widget panels redraw a view into the same figure on every slider move: its canvas and
    renderer survive, so matplotlib's text-layout cache (keyed on the renderer) stays warm and
    a redraw costs about half of drawing a brand-new figure.
    """
    token = _TARGET.set(fig)
    try:
        yield fig
    finally:
        _TARGET.reset(token)


def emptied_grid(fig: Figure, nrows: int, ncols: int) -> Any:
    """``fig``'s axes, emptied to look like fresh ones, if they form an nrows x ncols grid.

    Creating axes (and their ticks) is the slowest part of a redraw; emptying keeps the Axis
    objects and their ticks. Removed: every artist, legend, title and label, and the figure's
    own legends and texts; reset as ``Axes.clear`` sets them: limits (autoscaled again),
    scales, direction, margins, colours, spines, the colour cycle and the grid. Not reset: tick
    parameters (resetting them recreates the ticks); a view that changes them must set them on
    every call. Returns the axes as ``plt.subplots`` would (one, or an array), or None if the
    grid differs.
    """
    axes = fig.axes
    specs = [ax.get_subplotspec() for ax in axes]
    if len(axes) != nrows * ncols or any(spec is None for spec in specs) \
            or specs[0].get_geometry()[:2] != (nrows, ncols):
        return None
    for artist in [*fig.legends, *fig.texts]:
        artist.remove()
    rc = mpl.rcParams
    for ax in axes:
        for artist in [*ax.lines, *ax.images, *ax.collections, *ax.patches, *ax.texts]:
            artist.remove()
        if ax.get_legend() is not None:
            ax.get_legend().remove()
        ax.containers.clear()
        for loc in ("left", "center", "right"):
            ax.set_title("", loc=loc)
        ax.set(xlabel="", ylabel="", xscale="linear", yscale="linear", aspect="auto",
               facecolor=rc["axes.facecolor"], xmargin=rc["axes.xmargin"],
               ymargin=rc["axes.ymargin"])
        if ax.xaxis_inverted():
            ax.invert_xaxis()
        if ax.yaxis_inverted():
            ax.invert_yaxis()
        ax.set_axis_on()
        for side, spine in ax.spines.items():
            spine.set_visible(rc[f"axes.spines.{side}"])
        ax.set_prop_cycle(None)
        ax.grid(False)
        if rc["axes.grid"]:
            ax.grid(True, which=rc["axes.grid.which"], axis=rc["axes.grid.axis"])
        ax.relim()
        ax.set_autoscale_on(True)
        ax.autoscale_view()
    return axes[0] if len(axes) == 1 else np.array(axes).reshape(nrows, ncols).squeeze()


def target_figure() -> Figure | None:
    """The figure that ``new_figure`` refills (inside ``drawing_into``), else None."""
    return _TARGET.get()


def refill(fig: Figure, size: tuple[float, float], nrows: int, ncols: int,
           **subplots_kw: Any) -> Any:
    """Resize ``fig`` to ``size`` (inches) and return an nrows x ncols grid of empty axes in it:
    its own axes emptied (``emptied_grid``) when they form that grid, else new ones."""
    fig.set_size_inches(size)
    axes = emptied_grid(fig, nrows, ncols) if not subplots_kw else None
    if axes is None:
        fig.clear()
        axes = fig.subplots(nrows, ncols, **subplots_kw)
    return axes
