"""The house style of hsr_lab figures: ``hsr_lab.mplstyle``, applied as a context, never globally.

Every colour of the cycle is paired with a line style and a marker, so that curves can be told
apart in grey scale. ``COLORS[i]``, ``LINESTYLES[i]`` and ``MARKERS[i]`` belong together.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from importlib import resources
from pathlib import Path
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import style as mpl_style
from matplotlib.figure import Figure

STYLE_FILE = "hsr_lab.mplstyle"


@contextlib.contextmanager
def style_path() -> Iterator[Path]:
    """Yield a file-system path to ``hsr_lab.mplstyle`` (it ships inside the package)."""
    with resources.as_file(resources.files("hsr_lab") / STYLE_FILE) as path:
        yield Path(path)


@contextlib.contextmanager
def house_style() -> Iterator[None]:
    """Apply the house style inside a ``with`` block; rcParams are restored on exit.

    Except ``interactive``: a notebook's inline backend loads on the first figure, inside the
    block, and turns interactive mode on; restoring it would stop every later figure showing.
    """
    with style_path() as path:
        with mpl_style.context(path):
            try:
                yield
            finally:
                interactive = mpl.is_interactive()
        mpl.interactive(interactive)


def _style_params() -> mpl.RcParams:
    with style_path() as path:
        return mpl.rc_params_from_file(path, use_default_template=False)


_PARAMS = _style_params()
_CYCLE = _PARAMS["axes.prop_cycle"].by_key()
COLORS: tuple[str, ...] = tuple(_CYCLE["color"])
LINESTYLES: tuple[Any, ...] = tuple(_CYCLE["linestyle"])  # names or (offset, dashes) tuples
MARKERS: tuple[str, ...] = tuple(_CYCLE["marker"])
COLUMN_WIDTH, ROW_HEIGHT = (float(x) for x in _PARAMS["figure.figsize"])  # inches


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


def new_figure(
    width_ratio: float = 1.0,
    height: float | None = None,
    *,
    nrows: int = 1,
    ncols: int = 1,
    **subplots_kw: Any,
) -> tuple[Figure, Any]:
    """``plt.subplots`` at house size: ``width_ratio`` columns wide, ``height`` inches tall.

    The default height is one row height (2.5 in) per row of panels; a two-column-wide figure
    is ``width_ratio=2.1``. Call it inside ``house_style()`` (``@figure`` functions are).
    Figures come from pyplot, so they show inline in notebooks; close them after saving.
    Inside ``drawing_into(fig)`` the grid is drawn into ``fig`` instead (its axes emptied).
    """
    if not width_ratio > 0:
        raise ValueError(f"width_ratio must be positive; got {width_ratio!r}")
    if height is None:
        height = ROW_HEIGHT * nrows
    elif not height > 0:
        raise ValueError(f"height must be positive (inches); got {height!r}")
    size = (COLUMN_WIDTH * width_ratio, height)
    target = _TARGET.get()
    if target is None:
        return plt.subplots(nrows, ncols, figsize=size, **subplots_kw)
    target.set_size_inches(size)
    axes = _emptied_grid(target, nrows, ncols) if not subplots_kw else None
    if axes is None:
        target.clear()
        axes = target.subplots(nrows, ncols, **subplots_kw)
    return target, axes


def _emptied_grid(fig: Figure, nrows: int, ncols: int) -> Any:
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
