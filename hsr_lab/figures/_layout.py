"""Figures at a journal's column width: ``figure_width``, ``fit_layout``, ``fit_text`` and a
check that no text runs off the canvas (``text_overflow``).

A figure drawn inside ``figure_width(inches)`` is exactly that wide, with the house style's
font sizes: the figure is resized, never the fonts, so that a paper includes it at 100% and its
text matches the paper's small print. The natural height is kept. A grid whose panels would
be narrower than ``MIN_PANEL_WIDTH`` side by side is stacked instead: each row of panels
becomes a column of them (a two-panel figure in one journal column is two panels, one above
the other), and ``new_figure`` still returns the axes in the shape the figure asked for.
Titles and legend entries too wide for their room are broken into lines (``fit_text``). The
venues' widths are in ``hsr_lab.venues``.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator
from contextvars import ContextVar

from matplotlib import cbook
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from hsr_lab.venues import MAX_WIDTH, MIN_WIDTH

MIN_PANEL_WIDTH = 2.4  # inches: narrower panels side by side are stacked instead
MAX_HEIGHT = 8.5  # inches: stacked panels are shortened to fit a page's text height (9 in)

_WIDTH: ContextVar[float | None] = ContextVar("hsr_lab_figure_width", default=None)


@contextlib.contextmanager
def figure_width(inches: float | None) -> Iterator[None]:
    """Inside this block every house-style figure is drawn ``inches`` wide (None: the width
    each figure chose). The fonts keep their sizes; see the module's docstring."""
    if inches is not None and not MIN_WIDTH <= inches <= MAX_WIDTH:
        raise ValueError(f"inches must be between {MIN_WIDTH:g} and {MAX_WIDTH:g}; got "
                         f"{inches!r}")
    token = _WIDTH.set(None if inches is None else float(inches))
    try:
        yield
    finally:
        _WIDTH.reset(token)


def current_width() -> float | None:
    """The width that ``figure_width`` set, or None outside it."""
    return _WIDTH.get()


def fit_layout(size: tuple[float, float], nrows: int, ncols: int, can_stack: bool = True
               ) -> tuple[tuple[float, float], tuple[int, int]]:
    """(figure size, grid actually drawn) for a figure that asked for ``size`` and an
    nrows x ncols grid, at the current width: the natural height, or the panels stacked
    (nrows * ncols rows, each as tall as a row was, scaled with its width; at most
    MAX_HEIGHT in all) where side by side they would be narrower than MIN_PANEL_WIDTH."""
    width = _WIDTH.get()
    if width is None:
        return size, (nrows, ncols)
    natural_width, height = size
    if ncols > 1 and can_stack and width / ncols < MIN_PANEL_WIDTH:
        row_height = height / nrows * min(1.0, width * ncols / natural_width)
        return (width, min(MAX_HEIGHT, row_height * nrows * ncols)), (nrows * ncols, 1)
    return (width, height), (nrows, ncols)


def fit_text(fig: Figure, passes: int = 6) -> None:
    """Break the lines of titles, x-axis labels and legend entries that are wider than the room
    they have, at spaces (never inside $math$), until the figure's text fits its canvas.

    An axes title or x label may span its slot in the grid (so that it never reaches its
    neighbour's), an axes legend too; the figure's texts (its suptitle) and legends the
    figure's width. Text that fits is left alone, so a figure at its own width is unchanged
    unless something ran off. The fonts keep their sizes.
    """
    for _ in range(passes):
        renderer = _settle(fig)
        changed = False
        for text, room in _titles(fig):
            changed |= _wrap(text, room, renderer)
        for legend, room in _legends(fig):
            changed |= _fit_legend(legend, room, renderer)
        if not changed:
            return
    _settle(fig)


def _settle(fig: Figure) -> object:
    """Lay ``fig`` out as saving would and return its renderer. Two draws: constrained layout
    places a title by where the draw before put it, so a changed title settles one draw late."""
    renderer = _renderer(fig)
    for _ in range(2):
        fig.draw_without_rendering()
    return renderer


def _renderer(fig: Figure) -> object:
    """The renderer that measures ``fig``'s text: its canvas's, or Agg's for a figure made
    without pyplot (whose base canvas cannot draw)."""
    if not hasattr(fig.canvas, "get_renderer"):
        FigureCanvasAgg(fig)  # attaches itself as fig.canvas
    return fig.canvas.get_renderer()


def _slot(fig: Figure, ax: Axes) -> tuple[float, float]:
    """(left, right) pixels of the grid cells that ``ax`` spans (the figure, outside a grid)."""
    spec = ax.get_subplotspec()
    if spec is None:
        return 0.0, fig.bbox.width
    ncols = spec.get_gridspec().ncols
    return (fig.bbox.width * spec.colspan.start / ncols,
            fig.bbox.width * spec.colspan.stop / ncols)


def _titles(fig: Figure) -> Iterator[tuple[Text, float]]:
    """Each axes title and x-axis label in a grid with its room: twice the distance from the
    axes' centre, over which it is centred, to the nearer side of its slot; the figure's texts
    (its suptitle among them) with the figure's width. Less a small margin at each side."""
    pad = 0.04 * fig.dpi
    for ax in fig.axes:
        if ax.get_subplotspec() is not None:
            left, right = _slot(fig, ax)
            box = ax.get_window_extent()
            centre = (box.x0 + box.x1) / 2
            room = 2 * (min(centre - left, right - centre) - pad)
            yield ax.title, room
            yield ax.xaxis.label, room
    for text in fig.texts:
        yield text, fig.bbox.width - 2 * pad


def _legends(fig: Figure) -> Iterator[tuple[Legend, float]]:
    """Each legend with its room: the figure's width for the figure's legends, the axes' slot
    for an axes legend (less a small margin at each side)."""
    pad = 0.04 * fig.dpi
    for legend in fig.legends:
        yield legend, fig.bbox.width - 2 * pad
    for ax in fig.axes:
        if ax.get_legend() is not None:
            left, right = _slot(fig, ax)
            yield ax.get_legend(), right - left - 2 * pad


def _fit_legend(legend: Legend, room: float, renderer: object) -> bool:
    """Wrap the title of a legend wider than ``room`` pixels to that room, else its widest
    entries by what the legend overshoots (by at most half their width a pass)."""
    if _wrap(legend.get_title(), room - 0.2 * legend.get_figure(root=True).dpi, renderer):
        return True  # the entries are measured on the next pass, in the new layout
    excess = legend.get_window_extent(renderer).width - room
    texts = [t for t in legend.get_texts() if t.get_text()]
    if excess <= 0 or not texts:
        return False
    widest = max(t.get_window_extent(renderer).width for t in texts)
    limit = max(widest - excess, widest / 2)  # at most halved a pass: columns share the excess
    changed = False
    for text in texts:  # the widest entries first: the next pass sees what else overshoots
        changed |= _wrap(text, limit, renderer)
    return changed


_UNWRAPPED: weakref.WeakKeyDictionary[Text, str] = weakref.WeakKeyDictionary()


def _wrap(text: Text, room: float, renderer: object) -> bool:
    """Break ``text`` into lines at most ``room`` pixels wide, at spaces outside $math$; True
    if its text changed. It is broken from the text as the figure set it (``_UNWRAPPED``), so
    that another pass, in a new layout, breaks it afresh instead of breaking it further; a word
    wider than the room keeps a line of its own."""
    current = text.get_text()
    original = _UNWRAPPED.get(text, current)
    if not original or room <= 0 or text.get_rotation() != 0:
        return False
    prop = text.get_fontproperties()

    def width(line: str) -> float:
        return renderer.get_text_width_height_descent(line, prop, cbook.is_math_text(line))[0]

    if all(width(line) <= room for line in original.split("\n")):
        new = original  # it fits as the figure set it
    else:
        new = "\n".join(_fill(paragraph, room, width) for paragraph in original.split("\n"))
    if new == current:
        return False
    _UNWRAPPED[text] = original
    text.set_text(new)
    return True


def _fill(paragraph: str, room: float, width: Callable[[str], float]) -> str:
    """``paragraph`` broken greedily into lines of at most ``room`` (as ``width`` measures)."""
    lines = []
    line = ""
    for word in _words(paragraph):
        candidate = f"{line} {word}" if line else word
        if line and width(candidate) > room:
            lines.append(line)
            line = word
        else:
            line = candidate
    lines.append(line)
    return "\n".join(lines)


def _words(line: str) -> list[str]:
    """``line`` split at spaces, each $...$ kept whole (mathtext cannot be broken)."""
    words, current, in_math = [], "", False
    for char in line:
        if char == "$":
            in_math = not in_math
        if char == " " and not in_math:
            if current:
                words.append(current)
            current = ""
        else:
            current += char
    return [*words, current] if current else words


def text_overflow(fig: Figure, tolerance: float = 0.01) -> list[str]:
    """The text of ``fig`` drawn outside its canvas (more than ``tolerance`` inches out): one
    line per piece of text (or block of tick labels), naming it; empty when everything fits."""
    renderer = _settle(fig)
    to_inches = fig.dpi_scale_trans.inverted()
    width, height = fig.get_size_inches()
    canvas = Bbox.from_bounds(0, 0, width, height).padded(tolerance)
    found = []
    for name, box in _text_boxes(fig, renderer):
        box = box.transformed(to_inches)
        if box.width > 0 and not (canvas.x0 <= box.x0 and box.x1 <= canvas.x1
                                  and canvas.y0 <= box.y0 and box.y1 <= canvas.y1):
            found.append(f"{name} spans x {box.x0:.2f}..{box.x1:.2f}, y {box.y0:.2f}.."
                         f"{box.y1:.2f} in on a {width:.2f} x {height:.2f} in canvas")
    return found


def _text_boxes(fig: Figure, renderer: object) -> Iterator[tuple[str, Bbox]]:
    """(name, pixel box) of every piece of text that is drawn: each title, label, legend entry,
    annotation and figure text, and each axis' block of tick labels (only the ticks inside the
    view are drawn, which ``Axis.get_tightbbox`` knows)."""
    ticks = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                ticks.update((tick.label1, tick.label2))
            if axis.get_visible() and ax.get_visible():
                box = axis.get_tightbbox(renderer)
                if box is not None:
                    yield f"{axis.axis_name} axis of the axes titled {ax.get_title()!r}", box
    for text in fig.findobj(Text):
        if text in ticks or not text.get_visible() or not text.get_text().strip():
            continue
        yield repr(text.get_text()), text.get_window_extent(renderer)
