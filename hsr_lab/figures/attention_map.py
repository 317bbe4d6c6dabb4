"""Which entries of a ReLU^alpha attention matrix are non-zero, next to the dense scores."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from hsr_lab import theory
from hsr_lab.experiments import activation_mask
from hsr_lab.figures import figure, new_figure
from hsr_lab.figures._common import image_panel


@figure("activation_map", "Dense scores Q K^T/sqrt(d) and the few entries that ReLU^alpha keeps "
        "at the paper's threshold b = sigma_a sqrt(0.4 ln n).")
def fig_activation_map(quick: bool = False, seed: int = 0, **kw) -> Figure:
    """Left: s = Q K^T / sqrt(d) as a heatmap. Right: ReLU(s - b)^alpha, zeros left white.

    ``kw`` goes to ``activation_mask`` (m, n, d, c, alpha); default m = 48, n = 256
    (quick: m = 16, n = 64).
    """
    params = {"m": 16, "n": 64} if quick else {"m": 48, "n": 256}
    params.update(kw)
    c = float(params.get("c", theory.PAPER_C))
    inst = activation_mask(seed=seed, **params)
    scores, relu, mask = inst["scores"], inst["relu"], inst["mask"]
    m, n = scores.shape
    fig, (ax_s, ax_r) = new_figure(width_ratio=2, height=2.4, ncols=2)
    extent = (0.5, n + 0.5, m + 0.5, 0.5)  # entry (i, j) centred on query i, key j (1-based)
    top = float(np.abs(scores).max())
    image = ax_s.imshow(scores, cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -top, top),
                        aspect="auto", interpolation="nearest", extent=extent)
    bar = fig.colorbar(image, ax=ax_s, label=r"score $s_{ij} = \langle q_i, k_j\rangle/\sqrt{d}$")
    b = float(inst["b"])
    bar.ax.axhline(b, color="black", lw=1.0)  # entries above this line are the kept ones
    bar.ax.text(-0.6, b, "b", ha="right", va="center", transform=bar.ax.get_yaxis_transform())
    ax_s.set_title(f"dense scores $QK^T/\\sqrt{{d}}$\nall {m} × {n} entries computed")

    cmap = colormaps["viridis"].with_extremes(bad="white")
    kept = np.ma.masked_where(~mask, relu)  # masked cells are drawn white
    image = ax_r.imshow(kept, cmap=cmap, vmin=0.0, aspect="auto", interpolation="nearest",
                        extent=extent)
    alpha = int(params.get("alpha", 1))
    power = "" if alpha == 1 else f"^{{{alpha}}}"
    fig.colorbar(image, ax=ax_r, label=f"$\\mathrm{{ReLU}}(s_{{ij}} - b){power}$ (white: 0)")
    predicted = float(theory.expected_activated(n, c)) / n
    ax_r.set_title(f"b = {b:.2f}: {mask.mean():.1%} of entries activated\n"
                   rf"(expected $\bar\Phi(\sqrt{{{c:g}\,\ln n}})$ = {predicted:.1%})")
    for ax in (ax_s, ax_r):
        image_panel(ax)
        ax.set(xlabel="key j", ylabel="query i")
    return fig
