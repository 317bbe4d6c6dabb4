"""A throw-away example figure, so that the figure command can be tested end to end."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from hsr_lab.figures import figure, new_figure


@figure("demo", "Example: y = x^p for p = 1, 2, 3, with a little seeded noise.")
def fig_demo(quick: bool = False, seed: int = 0) -> Figure:
    """Plot x, x^2 and x^3 on [0, 1]; ``seed`` draws the noise, ``quick`` uses fewer points."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0.0, 1.0, 6 if quick else 11)
    fig, ax = new_figure()
    for p in (1, 2, 3):
        ax.plot(x, x**p + 0.02 * rng.standard_normal(x.size), label=f"$x^{p}$")
    ax.set(xlabel="x", ylabel="y", title="demo")
    ax.legend()
    return fig
