"""Byte LMs trained with the paper's ReLU^alpha attention, beside their softmax twin.

Three figures: the training run (``relu_lm_training``, from the shipped logs), the sparsity of
the trained rows against n (``relu_lm_sparsity``) and the keys as HSR sees them
(``relu_lm_keys``), the last two from ``experiments.relu_lms.relu_lm_study``.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from hsr_lab import theory
from hsr_lab.figures import COLORS, LINESTYLES, MARKERS, figure, new_figure
from hsr_lab.figures._common import FAINT, log_n_axes

RELU = ("relu2_learned", "relu2_paper", "relu1_learned")


def _style(i: int) -> dict:
    return dict(color=COLORS[i], ls=LINESTYLES[i], marker=MARKERS[i])


def _labels() -> dict[str, str]:
    from hsr_lab.data.relu_lm import LABELS

    return LABELS


# ----------------------------------------------------------------------------- training
@figure("relu_lm_training", "Four byte LMs (4 layers, 4 heads of d = 64, context 2048) trained "
        "identically but for the attention rule on the Python standard library: held-out bits "
        "per byte over training for both training seeds, and for seed 0 the bias b of every "
        "ReLU head and the share of visible keys each ReLU head activates.")
def fig_relu_lm_training(quick: bool = False, seed: int = 0) -> Figure:
    """Validation bits per byte, b per head and active share per head, over the steps."""
    from hsr_lab.data import relu_lm

    logs = {v: relu_lm.load(v).log for v in relu_lm.VARIANTS}
    fig, axes = new_figure(width_ratio=2.1, height=2.6, ncols=3)
    for i, (v, log) in enumerate(logs.items()):
        steps = [r["step"] for r in log]
        axes[0].plot(steps, [r["val_bpb"] for r in log], label=_labels()[v], **_style(i))
        for r in relu_lm.SEEDS[1:]:  # the other training seeds: thin, same colour
            other = relu_lm.load(v, r).log
            axes[0].plot([x["step"] for x in other], [x["val_bpb"] for x in other],
                         color=COLORS[i], ls=LINESTYLES[i], marker="", lw=0.8, alpha=0.7)
    axes[0].plot([], [], color=FAINT, marker="", lw=0.8,
                 label="thin: seed " + ", ".join(map(str, relu_lm.SEEDS[1:])))
    axes[0].set(xlabel="step", ylabel="held-out bits per byte",
                title="validation loss (thick: seed 0)", ylim=(0.7, 1.2))
    axes[0].legend(fontsize=6)
    for key, ax, title in (("b", axes[1], "learned or tied b, per head"),
                           ("active_share", axes[2], "share of visible keys above b")):
        for i, v in enumerate(relu_lm.VARIANTS):
            if v == "softmax":
                continue
            steps = np.array([r["step"] for r in logs[v]])
            values = np.array([r[key] for r in logs[v]]).reshape(len(steps), -1)
            ax.plot(steps, values, color=COLORS[i], ls=LINESTYLES[i], marker="", lw=0.7,
                    alpha=0.8)
            ax.plot([], [], color=COLORS[i], ls=LINESTYLES[i], marker="", label=_labels()[v])
        ax.set(xlabel="step", yscale="log", title=title)
        ax.legend(fontsize=6)
    axes[1].set_ylabel("b (score units)")
    axes[2].set_ylabel("share of keys j <= t with s_tj > b")
    return fig


# ----------------------------------------------------------------------------- sparsity
@figure("relu_lm_sparsity", "Trained ReLU^alpha rows on held-out text: activated entries per "
        "row against n for every head, the fitted slope of each head with its 95% interval "
        "against 0.8 and the Gaussian expectation, and each head's b against the paper's "
        "sigma_a sqrt(0.4 ln n).")
def fig_relu_lm_sparsity(quick: bool = False, seed: int = 0, force: bool = False) -> Figure:
    """Counts against n, slopes per head, b against the paper's value."""
    from hsr_lab.experiments.relu_lms import relu_lm_study

    s = relu_lm_study(quick=quick, seed=seed, force=force)
    fig, axes = new_figure(width_ratio=2.1, height=2.8, ncols=3)
    _count_panel(axes[0], s)
    _slope_panel(axes[1], s)
    _b_panel(axes[2], s)
    return fig


def _count_panel(ax: Axes, s) -> None:
    n = s.sizes
    for i, v in enumerate(s.variants):
        if v not in RELU:
            continue
        counts = s.count[s.index(v)].reshape(-1, len(n))
        ax.plot(n, counts.T, color=COLORS[i], ls=LINESTYLES[i], marker="", lw=0.4, alpha=0.5)
        ax.plot(n, counts.mean(axis=0), label=f"{_labels()[v]} (mean)", lw=2, **_style(i))
    ax.plot(n, theory.paper_bound(n), color="k", ls="--", marker="", lw=1.5,
            label=r"$n^{4/5}$")
    ax.plot(n, theory.expected_activated(n), color="k", ls=":", marker="", lw=1.5,
            label=r"$n\bar\Phi(\sqrt{0.4\ln n})$")
    log_n_axes(ax, n, "activated entries per row")
    ax.set_title("rows at the model's b (thin: heads)", fontsize=8)
    ax.legend(fontsize=5, loc="lower right", ncols=2)


def _slope_panel(ax: Axes, s) -> None:
    for i, v in enumerate(s.variants):
        if v not in RELU:
            continue
        sl = s.slopes(v).reshape(-1, 3)
        x = np.arange(len(sl)) + 0.25 * (i - 2)
        ax.errorbar(x, sl[:, 0], yerr=[sl[:, 0] - sl[:, 1], sl[:, 2] - sl[:, 0]], fmt="none",
                    ecolor=COLORS[i], lw=0.8)
        ax.plot(x, sl[:, 0], ls="none", color=COLORS[i], marker=MARKERS[i], ms=3,
                label=_labels()[v])
    ax.axhline(0.8, color="k", ls="--", label="0.8 (the paper)")
    ax.axhline(s.gaussian_fit().slope, color="k", ls=":", label="Gaussian fit")
    ax.axhline(1.0, color=FAINT, lw=0.8, label="1: a fixed share of keys")
    ax.set(xlabel="head (layer x 4 + head)", ylabel="slope of ln count on ln n",
           title="slope per head (95% CI)")
    ax.set_ylim(top=max(ax.get_ylim()[1], 1.0) + 0.45)
    ax.legend(fontsize=5.5, loc="upper center", ncols=2)


def _b_panel(ax: Axes, s) -> None:
    lim = []
    for i, v in enumerate(s.variants):
        j = s.index(v)
        ax.plot(s.b_paper[j].ravel(), s.b[j].ravel(), ls="none", color=COLORS[i],
                marker=MARKERS[i], ms=3.5, label=_labels()[v] if v in RELU else
                "softmax (its b is the paper's)")
        lim += [s.b_paper[j].min(), s.b_paper[j].max(), s.b[j].min(), s.b[j].max()]
    lo, hi = max(min(lim), 1e-2) / 2, max(lim) * 2
    ax.plot([lo, hi], [lo, hi], color="k", ls="--", marker="", lw=0.8, label="b = paper's b")
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi),
           xlabel=r"paper's $b = \sigma_a\sqrt{0.4\ln N}$ of the head",
           ylabel="the head's b", title="b against the paper's value")
    ax.legend(fontsize=5.5)


# ----------------------------------------------------------------------------- keys
@figure("relu_lm_keys", "The trained models' post-RoPE keys as half-space reporting sees "
        "them: PCA spectrum and participation ratio per head, and the kd-tree's inner products "
        "and nodes visited per query at the model's threshold against n, beside Gaussian keys "
        "of the same d = 64.")
def fig_relu_lm_keys(quick: bool = False, seed: int = 0, force: bool = False) -> Figure:
    """Spectra, participation ratios, tree inner products / n and nodes visited against n."""
    from hsr_lab.experiments.relu_lms import relu_lm_study

    s = relu_lm_study(quick=quick, seed=seed, force=force)
    fig, axes = new_figure(width_ratio=2.1, height=2.8, ncols=3)
    k = np.arange(1, s.spectrum.shape[-1] + 1)
    for i, v in enumerate(s.variants):
        j = s.index(v)
        axes[0].plot(k, s.spectrum[j].reshape(-1, len(k)).mean(axis=0), label=_labels()[v],
                     **_style(i), ms=2)
        axes[1].plot(np.arange(s.pr[j].size) + 0.2 * (i - 1.5), s.pr[j].ravel(), ls="none",
                     color=COLORS[i], marker=MARKERS[i], ms=3.5, label=_labels()[v])
        tree = s.tree[j].reshape(-1, len(s.tree_sizes), 3)
        axes[2].plot(s.tree_sizes, tree[..., 1].mean(axis=0) / s.tree_sizes, **_style(i),
                     label=f"{_labels()[v]}: inner products / n")
    axes[0].axhline(1 / len(k), color="k", ls=":", marker="", label="isotropic (1/64)")
    axes[0].set(xscale="log", yscale="log", xlabel="principal axis", ylabel="variance share",
                title="key spectrum (mean over heads)")
    axes[0].legend(fontsize=5.5)
    axes[1].axhline(len(k), color="k", ls=":", label="isotropic: 64")
    axes[1].set(xlabel="head (layer x 4 + head)", ylabel="participation ratio",
                title="effective dimension of the keys", ylim=(0, len(k) + 4))
    axes[1].legend(fontsize=5.5)
    g = s.gaussian_tree
    axes[2].plot(s.tree_sizes, g[:, 1] / s.tree_sizes, color="k", ls="--", marker="x",
                 label="Gaussian keys, paper's b")
    log_n_axes(axes[2], s.tree_sizes, "share of keys scored (1 = a scan)", yscale="linear")
    axes[2].set(title="kd-tree at the model's b", ylim=(0, 1.1))
    axes[2].legend(fontsize=5.5)
    return fig
