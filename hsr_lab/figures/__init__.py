"""Every figure of hsr_lab, one function each: ``fig_<name>(quick=False, seed=0, **kw) -> Figure``.

Figure modules register their functions with ``@figure(name, caption)``. Notebooks call the
functions and see the figure inline; ``python -m hsr_lab figures`` draws every registered
figure and writes ``<name>.pdf`` and ``<name>.png`` with ``save_figure``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from hsr_lab.cache import is_file_name
from hsr_lab.figures._save import FigureOutputError, prepare_out_dir, save_figure
from hsr_lab.figures._style import COLORS, LINESTYLES, MARKERS, house_style, new_figure
from hsr_lab.figures.redraw import drawing_into

__all__ = [
    "COLORS",
    "LINESTYLES",
    "MARKERS",
    "REGISTRY",
    "FigureOutputError",
    "FigureSpec",
    "drawing_into",
    "figure",
    "house_style",
    "new_figure",
    "prepare_out_dir",
    "render_figure",
    "save_figure",
]

FigureFunc = Callable[..., Figure]


@dataclass(frozen=True)
class FigureSpec:
    """A registered figure: its file name, its caption and the function that draws it."""

    name: str
    caption: str
    func: FigureFunc

    def __repr__(self) -> str:
        return f"FigureSpec({self.name!r}, caption={self.caption!r})"


REGISTRY: dict[str, FigureSpec] = {}


def figure(name: str, caption: str) -> Callable[[FigureFunc], FigureFunc]:
    """Register ``fig_<name>`` under ``name``; the function then always draws in house style."""
    # A file name (cache.FILE_NAME) that also completes the function name fig_<name>.
    if not (is_file_name(name) and name == name.lower() and f"fig_{name}".isidentifier()):
        raise ValueError(f"figure name must be lower-case letters, digits and '_'; got {name!r}")

    def register(func: FigureFunc) -> FigureFunc:
        if func.__name__ != f"fig_{name}":
            raise ValueError(f"@figure({name!r}) must decorate fig_{name}; got {func.__name__}")
        old = REGISTRY.get(name)
        where = f"{func.__module__}.{func.__qualname__}"
        if old is not None and f"{old.func.__module__}.{old.func.__qualname__}" != where:
            raise ValueError(f"figure name {name!r} is already taken by {old.func.__module__}")

        @functools.wraps(func)
        def draw(*args: object, **kwargs: object) -> Figure:
            with house_style():
                fig = func(*args, **kwargs)
            if not isinstance(fig, Figure):
                raise TypeError(
                    f"{where} must return a matplotlib Figure; got {type(fig).__name__}"
                )
            return fig

        REGISTRY[name] = FigureSpec(name, caption, draw)  # a module reload replaces its entry
        return draw

    return register


def render_figure(
    name: str, out_dir: str | os.PathLike[str], *, quick: bool = False, seed: int = 0
) -> list[Path]:
    """Draw the registered figure ``name``, save it as PDF and PNG, close it; return the paths."""
    if name not in REGISTRY:
        raise ValueError(f"unknown figure {name!r}; valid names: {', '.join(sorted(REGISTRY))}")
    fig = REGISTRY[name].func(quick=quick, seed=seed)
    try:
        return save_figure(fig, out_dir, name)
    finally:
        plt.close(fig)


# Importing the figure modules registers their figures (they import `figure` from above).
from hsr_lab.figures import (  # noqa: E402, F401
    attention_map,
    budgets,
    counterexample,
    keys,
    plane,
    real,
    smollm2,
    softmax,
    sparsity,
    wallclock,
    work,
)
