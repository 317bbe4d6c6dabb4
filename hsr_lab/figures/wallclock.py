"""Wall-clock: the kd-tree (NumPy walk, and the compiled walk where it was measured) against the
dense scan across d, from the benchmark's results.

Timings depend on the machine and change from run to run, so this figure does not time
anything itself: it plots the last full run of ``benchmarks/bench_hsr.py``, committed in
``benchmarks/results/hsr.csv``. Rerun ``make bench``
to see your machine's numbers; the figure is then redrawn from them, byte for byte the same for
the same table.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from hsr_lab.figures import COLORS, LINESTYLES, MARKERS, figure, new_figure

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def read_results(name: str, results_dir: Path | None = None) -> list[dict[str, str]]:
    """The rows of ``benchmarks/results/<name>.csv`` (a clear error if the benchmark never ran)."""
    path = (results_dir or RESULTS) / f"{name}.csv"
    if not path.exists():
        raise FileNotFoundError(f"no benchmark results at '{path}': run `make bench` first")
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _crossover(dims: np.ndarray, speedup: np.ndarray) -> float | None:
    """The dimension where the speed-up falls through 1 (log-linear interpolation), if it does."""
    for i in range(len(dims) - 1):
        if speedup[i] >= 1 > speedup[i + 1]:
            lo, hi = np.log(speedup[i]), np.log(speedup[i + 1])
            return float(dims[i] + (dims[i + 1] - dims[i]) * lo / (lo - hi))
    return None


@figure("wallclock", "Wall-clock speed-up of the kd-tree over the dense scan against d: the NumPy "
        "walk at the three largest n of the last benchmark run, and the compiled walk (Numba) at "
        "the largest where the run measured it, with the last line's crossover marked.")
def fig_wallclock(quick: bool = False, seed: int = 0, results_dir: Path | None = None) -> Figure:
    """Speed-up = dense time / HSR time (median over queries) per d: one line per n for the
    NumPy walk, one for the compiled walk at the largest n (if the run measured it)."""
    rows = read_results("hsr", results_dir)
    fig, ax = new_figure(width_ratio=1.3, height=2.6)
    sizes = sorted({row["n"] for row in rows}, key=lambda s: int(s.split("^")[1]))
    lines = [(size, "numpy", "NumPy walk") for size in sizes[-3:]]
    if any(row.get("compiled_speedup_vs_brute", "nan") not in ("", "nan") for row in rows):
        lines.append((sizes[-1], "compiled", "compiled walk"))
    for i, (size, name, label) in enumerate(lines):
        cell = sorted((int(r["d"]), float(r[f"{name}_speedup_vs_brute"])) for r in rows
                      if r["n"] == size)
        dims, speedup = (np.array(v) for v in zip(*cell, strict=True))
        ax.loglog(dims, speedup, color=COLORS[i], ls=LINESTYLES[i], marker=MARKERS[i],
                  label=f"n = {size}: {label}")
        cross = _crossover(dims, speedup)
        if i == len(lines) - 1 and cross is not None:
            ax.axvline(cross, color="black", lw=0.8, ls=":", marker="")
            ax.annotate(f"crossover d ≈ {cross:.0f}", (cross, 1), xytext=(4, 12),
                        textcoords="offset points", fontsize=7)
    ax.axhline(1.0, color="black", lw=0.8, marker="")
    ax.set_xscale("log", base=2)
    dtype = rows[0].get("dtype", "float64")  # the keys' dtype, and so the scan's
    ax.set(xlabel="dimension d", ylabel=f"speed-up over the {dtype} scan",
           title=f"HSR query vs K @ a >= t, K {dtype} (Gaussian keys, t = sqrt(0.4 ln n))")
    ax.legend(fontsize=7, loc="upper right")
    return fig
