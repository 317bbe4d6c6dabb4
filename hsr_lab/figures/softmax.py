"""Thresholded softmax: dropped mass and error against the threshold, beside the bound."""

from __future__ import annotations

from matplotlib.figure import Figure

from hsr_lab import theory
from hsr_lab.experiments import dropped_mass_vs_n, dropped_mass_vs_sigma, softmax_error_sweep
from hsr_lab.figures import COLORS, LINESTYLES, MARKERS, figure, new_figure
from hsr_lab.figures._common import log_n_axes


@figure("softmax_error", "Softmax kept only where s >= b: dropped mass and output error against "
        "b, with the bound 2 max eps ||V||_inf; Gaussian keys with and without planted sinks.")
def fig_softmax_error(quick: bool = False, seed: int = 0, **kw) -> Figure:
    """Left: max_i eps_i (solid) and mean_i eps_i (dotted) against b. Right: the measured error
    max |Attn - Attn_hat| (markers) and the bound 2 max_i eps_i ||V||_inf (line)."""
    sweep = softmax_error_sweep(quick=quick, seed=seed, **kw)
    fig, (ax_mass, ax_err) = new_figure(width_ratio=2, height=2.6, ncols=2)
    floor = 1e-17  # a zero error or mass drawn at the bottom of the log axis
    for j, planted in enumerate(sweep.planted):
        label = "Gaussian keys" if planted == 0 else f"+ {planted} planted sinks"
        style = dict(color=COLORS[j], marker=MARKERS[j], markevery=2)
        ax_mass.semilogy(sweep.b, sweep.max_dropped[:, j].clip(floor), ls=LINESTYLES[j],
                         label=f"{label}: max", **style)
        ax_mass.semilogy(sweep.b, sweep.mean_dropped[:, j].clip(floor), ls=":", alpha=0.7,
                         label=f"{label}: mean", color=COLORS[j], marker="")
        ax_err.semilogy(sweep.b, sweep.error[:, j].clip(floor), ls="", label=f"{label}: error",
                        **style)
        ax_err.semilogy(sweep.b, sweep.bound[:, j].clip(floor), ls=LINESTYLES[j], marker="",
                        color=COLORS[j], label=f"{label}: bound")
    ax_mass.set(xlabel="threshold b on s = <q, k>/sqrt(d)", ylabel=r"dropped mass $\epsilon_i$",
                title=f"mass on dropped entries (n = {sweep.n})")
    ax_err.set(xlabel="threshold b on s = <q, k>/sqrt(d)",
               ylabel=r"$\|Attn - \widehat{Attn}\|_\infty$",
               title=r"error $\leq 2 \max_i \epsilon_i \|V\|_\infty$")
    for ax in (ax_mass, ax_err):
        ax.legend(fontsize=6, loc="lower right")
    return fig


@figure("softmax_mass_vs_n", "Softmax mass dropped at the paper's threshold "
        "b = sigma_a sqrt(0.4 ln n) as n grows, for several score scales sigma_a, against "
        "Phi(sqrt(0.4 ln n) - sigma_a); planted sinks at sigma_a = 1/4; kept entries per row "
        "against n^{4/5}.")
def fig_softmax_mass_vs_n(quick: bool = False, seed: int = 0, **kw) -> Figure:
    """Left: mean_i eps_i (markers) against n for each sigma_a, with the tilted-Gaussian formula
    Phi(sqrt(0.4 ln n) - sigma_a) (lines), and unit queries with 4 planted sinks. Right: kept
    entries per row against n, with the exact E[k] and n^{4/5}. ``kw`` goes to
    ``dropped_mass_vs_sigma``."""
    sweep = dropped_mass_vs_sigma(quick=quick, seed=seed, **kw)
    sinks = dropped_mass_vs_n(quick=quick, seed=seed)
    n = sweep.n
    fig, (ax_mass, ax_kept) = new_figure(width_ratio=2, height=2.8, ncols=2)
    for j, sigma in enumerate(sweep.sigma_a):
        ax_mass.plot(n, sweep.mean_dropped[:, j], color=COLORS[j], ls="", marker=MARKERS[j],
                     mfc="white", label=rf"$\sigma_a = {sigma:g}$")
        ax_mass.plot(n, sweep.formula[:, j], color=COLORS[j], ls=LINESTYLES[j], marker="")
    ax_mass.plot(sinks.n, sinks.mean_dropped[:, 1], color="black", ls=":", marker="x",
                 label=rf"$\sigma_a = 1/4$ + {sinks.planted[1]} sinks")
    ax_mass.plot([], [], color="0.4", marker="", label=r"$\Phi(\sqrt{0.4\ln n} - \sigma_a)$")
    for j in range(len(sweep.sigma_a)):
        ax_kept.plot(n, sweep.kept[:, j], color=COLORS[j], ls="", marker=MARKERS[j],
                     mfc="white")
    ax_kept.plot(n, theory.expected_activated(n.astype(float)), color="0.4", marker="",
                 label=r"exact $n\,\bar\Phi(\sqrt{0.4\ln n})$, any $\sigma_a$")
    ax_kept.plot(n, theory.paper_bound(n.astype(float)), color="black", ls=(0, (4, 2)),
                 marker="", label=r"$n^{4/5}$")
    log_n_axes(ax_mass, n, r"mean dropped mass $\epsilon_i$", yscale="linear")
    ax_mass.set_ylim(0.0, 1.05)
    ax_mass.set_title(f"dropped mass at the paper's b ({sweep.m} rows, d = {sweep.d})",
                      fontsize=8)
    fig.legend(*ax_mass.get_legend_handles_labels(), loc="outside lower center", ncol=3,
               fontsize=7)
    log_n_axes(ax_kept, n, "kept entries per row")
    ax_kept.set_title("kept entries per row (markers: each $\\sigma_a$)", fontsize=8)
    ax_kept.legend(fontsize=6, loc="upper left")
    return fig
