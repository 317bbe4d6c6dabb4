"""Shared by the benchmark scripts: timing (medians with their spread), a provenance header,
tables as CSV/Markdown.

Speed claims live here, never in unit tests: the machines are shared and noisy, so every script
measures the baseline and the contender side by side in one run and quotes medians and ratios.
Beside every median time ``<x>_ms`` a table gives ``<x>_iqr_ms``, the interquartile range of
the same timed calls (``timing``). Every table starts with the run's provenance
(``provenance_header``): machine, CPU, command, commit, versions, BLAS, seed and date, as
``# `` lines on top of the CSV (pandas: ``read_csv(path, comment="#")``) and a list on top of
the Markdown.
"""

from __future__ import annotations

import csv
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from hsr_lab import provenance
from hsr_lab.experiments.common import unit_vectors

# One BLAS thread unless BENCH_BLAS_THREADS says otherwise: on a shared 2-core machine a
# threaded BLAS call that waits for a busy core costs a scheduler tick (~8 ms) and swamps what
# is measured. Both sides of every comparison run under the same limit; the header prints it.
BLAS_THREADS = int(os.environ.get("BENCH_BLAS_THREADS", "1"))
threadpool_limits(BLAS_THREADS)

RESULTS = Path(__file__).resolve().parent / "results"


SPREAD_NOTE = ("Beside each median time <x>_ms (or <x>_s, <x>_us), <x>_iqr_ms (<x>_iqr_s, "
               "<x>_iqr_us) is the interquartile range (75th minus 25th percentile) of the same "
               "timed calls; nan where only one call was timed.")


def time_calls(fn: Callable[[], object], repeats: int = 15, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of each of ``repeats`` calls of ``fn()``, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def median_time(fn: Callable[[], object], repeats: int = 15, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` calls, after ``warmup`` calls."""
    return float(np.median(time_calls(fn, repeats, warmup)))


_UNITS = {"ms": 1e3, "s": 1.0, "us": 1e6}


def timing(name: str, seconds: Sequence[float], unit: str = "ms") -> dict[str, float]:
    """``{name}_{unit}`` and ``{name}_iqr_{unit}``: the median of the timed calls and their
    interquartile range q75 - q25 (NumPy's linear interpolation), in ``unit`` ('ms', 's' or 'us').
    Pass every call that the median should summarise (for several queries: all their calls
    together). One call has no measured spread: its IQR is NaN, not 0."""
    if unit not in _UNITS:
        raise ValueError(f"unit must be one of {', '.join(_UNITS)}; got {unit!r}")
    values = np.asarray(seconds, dtype=float)
    if values.ndim != 1 or not len(values):
        raise ValueError(f"seconds must be a non-empty 1-D list of timings; got shape "
                         f"{values.shape}")
    q25, q50, q75 = _UNITS[unit] * np.percentile(values, [25, 50, 75])
    iqr = float(q75 - q25) if len(values) > 1 else float("nan")
    return {f"{name}_{unit}": float(q50), f"{name}_iqr_{unit}": iqr}


def provenance_header(seed: int | None, argv: Sequence[str] | None = None) -> str:
    """The run's provenance as '# key: value' lines: machine and CPU, the command (this script
    and ``argv``, default ``sys.argv[1:]``), the commit (``-dirty`` if files other than
    ``results/`` differ from it), package versions, the BLAS and its threads, the seed (None:
    the script has none) and the date. Print it first; ``write_results`` puts it on top of both
    tables."""
    script = Path(sys.argv[0]).name
    args = sys.argv[1:] if argv is None else list(argv)
    env = provenance.environment(exclude=[RESULTS])
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    lines = {
        "machine": f"{platform.node()} | {platform.machine()} | {os.cpu_count()} cores | "
                   f"{provenance.cpu_model()} | load average {os.getloadavg()[0]:.2f} at the "
                   "start",
        "command": shlex.join(["python", f"benchmarks/{script}", *args]),
        "commit": env["commit"],
        "versions": versions,
        "BLAS": f"{'; '.join(env['blas']) or 'none found'}; {BLAS_THREADS} thread(s) "
                "(BENCH_BLAS_THREADS)",
        "seed": "none" if seed is None else str(seed),
        "date": time.strftime("%Y-%m-%d"),
    }
    return "\n".join(f"# {key}: {value}" for key, value in lines.items())


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


def csv_header(header: str) -> str:
    """The header's lines (the run's provenance) as '# ' comment lines, to write before a CSV's
    column names."""
    return "".join(f"# {line}\n" for line in _header_lines(header))


def markdown_header(header: str) -> list[str]:
    """The header's lines as a Markdown list, to write on top of a Markdown table."""
    return [f"- {line}" for line in _header_lines(header)]


def _header_lines(header: str) -> list[str]:
    return [line.removeprefix("#").strip() for line in header.splitlines() if line.strip()]


def write_results(name: str, rows: Sequence[dict[str, object]], header: str,
                  notes: str = "") -> tuple[Path, Path]:
    """Write ``results/<name>.csv`` and ``results/<name>.md``: the header's lines (the run's
    provenance) on top, as ``# `` comment lines in the CSV and a list in the Markdown, then the
    notes (Markdown) and the table."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    keys = list(rows[0])
    csv_path, md_path = RESULTS / f"{name}.csv", RESULTS / f"{name}.md"
    with open(csv_path, "w", newline="") as fh:
        fh.write(csv_header(header))
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    lines = [*markdown_header(header), "", notes, "", "| " + " | ".join(keys) + " |",
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
