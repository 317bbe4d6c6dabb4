"""Small drawing helpers shared by several figures: log axes over n, fitted slopes, images."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import NullLocator

from hsr_lab import theory

FAINT = "0.6"  # grey for context: individual seeds, points not reported


def log_n_axes(ax: Axes, n: np.ndarray, ylabel: str, xlabel: str = "context length n",
               yscale: str = "log") -> None:
    """Axes over the context lengths: x ticks at powers of two, y in powers of ten (log-log)."""
    ax.set_xscale("log", base=2)
    ax.set_yscale(yscale)
    exps = np.log2(np.asarray(n, dtype=float))
    step = 2 if exps.max() - exps.min() > 6 else 1  # at most ~7 labels across a column
    ax.set_xticks(2.0 ** np.arange(np.ceil(exps.min()), exps.max() + 1, step))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set(xlabel=xlabel, ylabel=ylabel)


def fit_positive(n: np.ndarray, counts: np.ndarray) -> theory.ExponentFit:
    """``theory.fit_exponent`` of ln counts on ln n over the positive counts (0 has no log)."""
    n_all = np.broadcast_to(np.asarray(n, dtype=float), np.shape(counts))
    keep = np.asarray(counts) > 0
    return theory.fit_exponent(n_all[keep], np.asarray(counts)[keep])


def fmt_fit(fit: theory.ExponentFit, digits: int = 2) -> str:
    """'0.76 [0.75, 0.77]': a fitted slope and its confidence interval."""
    return f"{fit.slope:.{digits}f} [{fit.slope_low:.{digits}f}, {fit.slope_high:.{digits}f}]"


def image_panel(ax: Axes) -> None:
    """An axes that shows an image: no grid, all four spines, ticks outside."""
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(True)
