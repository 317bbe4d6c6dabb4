"""Real attention (all-MiniLM-L6-v2, d = 32) against the paper's Gaussian picture.

Needs ``pip install 'hsr_lab[real]'``; without it, drawing the figure raises an ImportError
that says so (importing this module does not).
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from hsr_lab import theory
from hsr_lab.figures import COLORS, LINESTYLES, MARKERS, figure, new_figure
from hsr_lab.figures._common import image_panel, log_n_axes

QQ_HEADS = ((0, 0), (3, 5), (5, 7))  # (layer, head) pairs shown in the QQ panel
POST_HOC = ("post-hoc view: thresholds applied to a softmax model's scores "
            "(no public model uses ReLU^alpha attention)")


@figure("real_attention", "all-MiniLM-L6-v2 on Python's own docs (d = 32): scores against a "
        "fitted Gaussian, share above b = mu + sigma sqrt(0.4 ln n) per layer and head, HSR "
        "work on the real keys against n, and softmax mass dropped with and without the sink.")
def fig_real_attention(quick: bool = False, seed: int = 0, force: bool = False) -> Figure:
    """2 x 2 panels: QQ plot, share-activated heatmap, HSR work against n, dropped mass."""
    from hsr_lab.data import cached_extractions
    from hsr_lab.experiments.real_stats import real_sweep

    sweep = real_sweep(quick=quick, seed=seed, force=force)
    opts = dict(count=2, min_tokens=96, max_tokens=128) if quick else {}
    ex = max(cached_extractions(seed=seed, **opts), key=lambda e: e.n)
    fig, axes = new_figure(width_ratio=2.1, height=5.6, nrows=2, ncols=2)
    _qq_panel(axes[0, 0], ex.scores())
    _share_panel(fig, axes[0, 1], sweep)
    _work_panel(axes[1, 0], sweep)
    _dropped_panel(axes[1, 1], sweep)
    fig.suptitle(POST_HOC, fontsize=7, color="0.3")
    return fig


def _qq_panel(ax: Axes, S: np.ndarray) -> None:
    """Row-standardised scores against normal quantiles, with and without token 0."""
    from hsr_lab.experiments.real_stats import qq_points

    for j, (layer, head) in enumerate(QQ_HEADS):
        for sink, ls, mk in ((True, "-", MARKERS[j]), (False, ":", "")):
            x, y = qq_points(S[layer, head], sink=sink)
            label = f"L{layer} H{head}" + ("" if sink else ", no [CLS]")
            ax.plot(x, y, color=COLORS[j], ls=ls, marker=mk, markevery=25, label=label)
    lim = [-4, 4]
    ax.plot(lim, lim, color="0.5", lw=0.8, ls="--", marker="", label="Gaussian")
    ax.set(xlabel="normal quantile", ylabel=r"quantile of $(s_{ij}-\mu_i)/\sigma_i$",
           title=f"scores against a fitted Gaussian (n = {S.shape[-1]})")
    ax.legend(fontsize=6, ncols=2, loc="upper left")


def _share_panel(fig: Figure, ax: Axes, sweep) -> None:
    """Heatmap of the share of entries with s_ij >= b_i, the Gaussian value on the colour bar."""
    image_panel(ax)
    share = sweep.share
    img = ax.imshow(share, cmap="viridis", aspect="auto")
    bar = fig.colorbar(img, ax=ax, label="share of entries activated")
    bar.ax.axhline(sweep.prediction, color="w", lw=2)
    bar.ax.axhline(sweep.prediction, color="k", lw=1, ls="--")
    ax.set(xlabel="head", ylabel="layer", xticks=range(0, share.shape[1], 2),
           title=f"s >= b: measured {share.mean():.3f}, Gaussian {sweep.prediction:.3f} (--)")


def _work_panel(ax: Axes, sweep) -> None:
    """HSR work per query (median and range over the 72 heads) against the dense scan n."""
    n = sweep.n
    lo, med, hi = np.percentile(sweep.work, [0, 50, 100], axis=1)
    log_n_axes(ax, n, "work per query (O(d) steps)", xlabel="keys n (prefix of one passage)")
    ax.fill_between(n, lo, hi, color=COLORS[0], alpha=0.2, lw=0)
    ax.plot(n, med, color=COLORS[0], ls=LINESTYLES[0], marker=MARKERS[0],
            label="HSR kd-tree: nodes + inner products")
    ax.plot(n, n, color=COLORS[1], ls=LINESTYLES[1], marker="", label="dense scan: n")
    ax.plot(n, np.median(sweep.reported, axis=1), color=COLORS[2], ls=LINESTYLES[2],
            marker=MARKERS[2], label="reported k (measured)")
    ax.plot(n, theory.expected_activated(n), color="0.4", ls=":", marker="",
            label=r"Gaussian $n\,\bar\Phi(\sqrt{0.4 \ln n})$")
    depth = int(theory.kdtree_depth(n[-1]))
    ax.set_title(f"HSR on the real keys (d = 32; n <= {n[-1]}: tree depth <= {depth})")
    ax.legend(fontsize=6, loc="upper left")


def _dropped_panel(ax: Axes, sweep) -> None:
    """Mean softmax mass on the entries HSR does not report, per layer, sink kept or not."""
    layers = np.arange(sweep.eps_free.shape[0])
    width = 0.38
    ax.bar(layers - width / 2, sweep.eps_free.mean(axis=1), width, color=COLORS[0],
           label="sinks=0", hatch="")
    ax.bar(layers + width / 2, sweep.eps_sink.mean(axis=1), width, color=COLORS[1],
           label="sinks=1 ([CLS] kept dense)", hatch="//")
    ax.plot(layers, sweep.sink_mass.mean(axis=1), color="k", ls=LINESTYLES[5], marker=MARKERS[5],
            label="softmax mass on [CLS]")
    ax.set(xlabel="layer", ylabel=r"mean dropped mass $\epsilon_i$", ylim=(0, 1),
           title="softmax restricted to HSR-reported entries")
    ax.legend(fontsize=6, loc="upper center")
