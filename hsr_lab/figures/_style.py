"""The house style of hsr_lab figures: ``hsr_lab.mplstyle``, applied as a context, never globally.

Every colour of the cycle is paired with a line style and a marker, so that curves can be told
apart in grey scale. ``COLORS[i]``, ``LINESTYLES[i]`` and ``MARKERS[i]`` belong together.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import style as mpl_style
from matplotlib.figure import Figure

from hsr_lab.figures._layout import fit_layout
from hsr_lab.figures.redraw import refill, target_figure

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
    Inside ``figure_width(inches)`` the figure is ``inches`` wide instead, its fonts unchanged,
    and panels too narrow side by side are stacked (``fit_layout``); the axes come back in the
    shape asked for either way.
    Figures come from pyplot, so they show inline in notebooks; close them after saving.
    Inside ``drawing_into(fig)`` the grid is drawn into ``fig`` instead (its axes emptied).
    """
    if not width_ratio > 0:
        raise ValueError(f"width_ratio must be positive; got {width_ratio!r}")
    if height is None:
        height = ROW_HEIGHT * nrows
    elif not height > 0:
        raise ValueError(f"height must be positive (inches); got {height!r}")
    can_stack = not {"gridspec_kw", "width_ratios", "height_ratios"} & set(subplots_kw)
    size, grid = fit_layout((COLUMN_WIDTH * width_ratio, height), nrows, ncols, can_stack)
    target = target_figure()
    if target is None:
        fig, axes = plt.subplots(*grid, figsize=size, **subplots_kw)
    else:
        fig, axes = target, refill(target, size, *grid, **subplots_kw)
    if grid != (nrows, ncols):  # stacked: the axes in the shape the caller unpacks
        shape = (nrows, ncols) if not subplots_kw.get("squeeze", True) else \
            tuple(k for k in (nrows, ncols) if k > 1)
        axes = np.asarray(axes).reshape(shape)
    return fig, axes
