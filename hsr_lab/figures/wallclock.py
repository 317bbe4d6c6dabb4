"""Wall-clock: the kd-tree (NumPy walk, and the compiled walk where it was measured) against the
dense scan across d, from the benchmark's results.

Timings depend on the machine and change from run to run, so this figure does not time
anything itself: it plots the last full run of ``benchmarks/bench_hsr.py``, committed in
``benchmarks/results/hsr.csv``. That benchmark times each method in its own block of repeats
(warm caches), the secondary protocol; the headline ratios of the README come from the
alternating protocol of ``benchmarks/bench_float32.py``. Rerun ``make bench`` to see your
machine's numbers; the figure is then redrawn from them, byte for byte the same for the same
table. The figure's provenance records the table's SHA-256 and its provenance header.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from hsr_lab.figures import COLORS, LINESTYLES, MARKERS, figure, new_figure

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def read_results(name: str, results_dir: Path | None = None) -> list[dict[str, str]]:
    """The rows of ``benchmarks/results/<name>.csv`` (a clear error if the benchmark never ran).

    Lines starting with '#' at the top are the run's provenance, not rows (pandas:
    ``read_csv(path, comment="#")``).
    """
    path = (results_dir or RESULTS) / f"{name}.csv"
    if not path.exists():
        raise FileNotFoundError(f"no benchmark results at '{path}': run `make bench` first")
    with open(path, newline="") as fh:
        return list(csv.DictReader(line for line in fh if not line.startswith("#")))


@dataclass(frozen=True)
class Crossover:
    """Where a speed-up falls through 1: ``d``, interpolated log-linearly (speed-up against d)
    between the two measured dimensions ``below`` and ``above`` it; nothing was measured
    between them."""

    d: float
    below: int
    above: int


def crossover(dims: np.ndarray, speedup: np.ndarray) -> Crossover | None:
    """The first place where the speed-up falls through 1, interpolated: ln speed-up is taken
    as linear in d between the two measured dimensions around it. None if it never does."""
    for i in range(len(dims) - 1):
        if speedup[i] >= 1 > speedup[i + 1]:
            lo, hi = np.log(speedup[i]), np.log(speedup[i + 1])
            d = float(dims[i] + (dims[i + 1] - dims[i]) * lo / (lo - hi))
            return Crossover(d, int(dims[i]), int(dims[i + 1]))
    return None


@figure("wallclock", "Wall-clock speed-up of the kd-tree over the dense scan against d, each "
        "method timed in its own block of repeats (warm caches, the secondary protocol): the "
        "NumPy walk at the three largest n of the last benchmark run, and the compiled walk "
        "(Numba) at the largest where the run measured it, with the last line's crossover "
        "dimension marked (interpolated between the two measured d around it).",
        sources=("benchmarks/results/hsr.csv",))
def fig_wallclock(quick: bool = False, seed: int = 0, results_dir: Path | None = None) -> Figure:
    """Speed-up = dense time / HSR time (median over queries) per d: one line per n for the
    NumPy walk, one for the compiled walk at the largest n (if the run measured it)."""
    rows = read_results("hsr", results_dir)
    fig, ax = new_figure(width_ratio=1.3, height=3.0)
    sizes = sorted({row["n"] for row in rows}, key=lambda s: int(s.split("^")[1]))
    lines = [(size, "numpy", "NumPy walk") for size in sizes[-3:]]
    if any(row.get("compiled_speedup_vs_brute", "nan") not in ("", "nan") for row in rows):
        lines.append((sizes[-1], "compiled", "compiled walk"))
    for i, (size, name, label) in enumerate(lines):
        cell = sorted((int(r["d"]), float(r[f"{name}_speedup_vs_brute"])) for r in rows
                      if r["n"] == size)
        dims, speedup = (np.array(v) for v in zip(*cell, strict=True))
        power = size.split("^")[1]
        ax.loglog(dims, speedup, color=COLORS[i], ls=LINESTYLES[i], marker=MARKERS[i],
                  label=f"$n = 2^{{{power}}}$: {label}")
        cross = crossover(dims, speedup)
        if i == len(lines) - 1 and cross is not None:
            ax.axvline(cross.d, color="black", lw=0.8, ls=":", marker="")
            ax.annotate(f"crossover d ≈ {cross.d:.0f}\n(interpolated:\nmeasured at "
                        f"{cross.below} and {cross.above})", (cross.d, 1), xytext=(4, 10),
                        textcoords="offset points", fontsize=7)
    ax.axhline(1.0, color="black", lw=0.8, marker="")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted({int(r["d"]) for r in rows}))
    ax.xaxis.set_major_formatter("{x:.0f}")
    ax.xaxis.set_minor_locator(NullLocator())
    dtype = rows[0].get("dtype", "float64")  # the keys' dtype, and so the scan's
    ax.set(xlabel="dimension d", ylabel=f"speed-up over the {dtype} scan",
           title=f"kd-tree query vs the {dtype} scan, warm caches")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=2, fontsize=7)
    return fig
