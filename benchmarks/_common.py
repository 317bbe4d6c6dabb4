"""Shared by the benchmark scripts: timing by medians, a machine header, tables as CSV/Markdown.

Speed claims live here, never in unit tests: the machines are shared and noisy, so every script
measures the baseline and the contender side by side in one run and quotes medians and ratios.
"""

from __future__ import annotations

import csv
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from hsr_lab.experiments.common import unit_vectors

# One BLAS thread unless BENCH_BLAS_THREADS says otherwise: on a shared 2-core machine a
# threaded BLAS call that waits for a busy core costs a scheduler tick (~8 ms) and swamps what
# is measured. Both sides of every comparison run under the same limit; the header prints it.
BLAS_THREADS = int(os.environ.get("BENCH_BLAS_THREADS", "1"))
threadpool_limits(BLAS_THREADS)

RESULTS = Path(__file__).resolve().parent / "results"


def median_time(fn: Callable[[], object], repeats: int = 15, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def machine_header() -> str:
    """One line saying where the numbers come from."""
    return (f"# {platform.node()} | {platform.machine()} | {os.cpu_count()} cores | "
            f"Python {platform.python_version()} | NumPy {np.__version__} | "
            f"BLAS threads {BLAS_THREADS} | {time.strftime('%Y-%m-%d')}")


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.3e}"
    return str(value)


def print_table(rows: Sequence[dict[str, object]], header: bool = True) -> None:
    """Print rows (dicts with the same keys) as an aligned text table."""
    if not rows:
        return
    keys = list(rows[0])
    cells = [[_cell(row[k]) for k in keys] for row in rows]
    widths = [max(len(k), 9, *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    if header:
        print("  ".join(k.rjust(w) for k, w in zip(keys, widths, strict=True)))
    for line in cells:
        print("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)), flush=True)


def write_results(name: str, rows: Sequence[dict[str, object]], header: str,
                  notes: str = "") -> tuple[Path, Path]:
    """Write ``results/<name>.csv`` and ``results/<name>.md`` (the header and notes on top)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    keys = list(rows[0])
    csv_path, md_path = RESULTS / f"{name}.csv", RESULTS / f"{name}.md"
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    lines = [header.lstrip("# "), "", notes, "", "| " + " | ".join(keys) + " |",
             "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_cell(row[k]) for k in keys) + " |" for row in rows]
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path


def gaussian_keys(n: int, d: int, seed: int) -> np.ndarray:
    """n i.i.d. standard Gaussian keys in R^d."""
    return np.random.default_rng(seed).standard_normal((n, d))


def unit_queries(count: int, d: int, seed: int) -> np.ndarray:
    """``count`` directions uniform on the unit sphere (the sweeps' ``unit_vectors``)."""
    return unit_vectors(np.random.default_rng(seed), count, d)
