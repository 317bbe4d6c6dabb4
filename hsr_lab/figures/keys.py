"""Structured keys: the kd-tree against the dense scan by kind of keys, from the benchmark.

Like ``wallclock``, this figure times nothing itself: it plots the last full run of
``benchmarks/bench_keys.py`` (``benchmarks/results/keys.csv``), so it is the same bytes for the
same table. Rerun ``make bench`` to see your machine's numbers.

Each row's threshold is the per-row rule t = sqrt(d) (mu_i + sigma_i sqrt(0.4 ln n)). Runs that
record ``threshold_sample`` estimated it from that many sampled keys inside both timers; a table
without that column comes from a run that computed it outside the timers, densely, and the
figure says so in its title.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator

from hsr_lab.experiments import KEY_KINDS
from hsr_lab.figures import COLORS, LINESTYLES, MARKERS, figure, new_figure
from hsr_lab.figures.wallclock import read_results

_LABELS = {"isotropic": "isotropic N(0, I)", "anisotropic": "anisotropic (spectrum 1 to 0.01)",
           "low-rank": "low-rank (a plane in R^d)"}


@figure("key_structure", "Kd-tree against the dense scan by kind of keys at the largest n of the "
        "last benchmark run: speed-up and the work of the tree per key, against d; the title says "
        "whether the per-row threshold was timed.")
def fig_key_structure(quick: bool = False, seed: int = 0,
                      results_dir: Path | None = None) -> Figure:
    """Left: speed-up = scan time / tree time per d, one line per kind of keys. Right: work
    (boxes + inner products) / n; the scan's share is 1."""
    rows = read_results("keys", results_dir)
    largest = max({row["n"] for row in rows}, key=lambda s: int(s.split("^")[1]))
    fig, (ax_speed, ax_share) = new_figure(width_ratio=2, height=2.8, ncols=2)
    for i, kind in enumerate(k for k in KEY_KINDS if any(r["keys"] == k for r in rows)):
        cell = sorted((int(r["d"]), float(r["speedup"]), float(r["work_share"])) for r in rows
                      if r["keys"] == kind and r["n"] == largest)
        dims, speedup, share = (np.array(v) for v in zip(*cell, strict=True))
        style = dict(color=COLORS[i], ls=LINESTYLES[i], marker=MARKERS[i], label=_LABELS[kind])
        ax_speed.plot(dims, speedup, **style)
        ax_share.plot(dims, share, **style)
    ax_speed.axhline(1.0, color="black", lw=0.8, marker="")
    ax_share.axhline(1.0, color="black", lw=0.8, ls="--", marker="", label="dense scan")
    for ax in (ax_speed, ax_share):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(sorted({int(r["d"]) for r in rows}))
        ax.xaxis.set_major_formatter("{x:.0f}")
        ax.yaxis.set_major_formatter("{x:g}")
        ax.yaxis.set_minor_formatter("")
        ax.set_xlabel("dimension d")
    power = largest.split("^")[1]
    ax_speed.yaxis.set_major_locator(LogLocator(base=2))  # 0.25, 0.5, 1, 2, 4, ...
    ax_speed.set(ylabel="speed-up: scan time / tree time",
                 title=f"query time at $n = 2^{{{power}}}$ (above 1: the tree wins)\n"
                       f"{_threshold_note(rows)}")
    ax_share.set(ylabel="(box tests + inner products) / n", title="work of the tree / n")
    fig.legend(*ax_share.get_legend_handles_labels(), loc="outside lower center", ncol=2,
               fontsize=7)
    return fig


def _threshold_note(rows: list[dict[str, str]]) -> str:
    """How the run computed each row's threshold: timed from a sample, or outside the timers."""
    sample = rows[0].get("threshold_sample")
    if sample:
        return f"per-row threshold from {sample} sampled keys, inside both timers"
    return "per-row threshold computed densely, outside the timers"
