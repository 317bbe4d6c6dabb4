"""The equal-budget study of notebook 08, timed: wall time, CPU time and peak memory.

    python benchmarks/study_budgets.py            # the full study (cached runs are read back)
    python benchmarks/study_budgets.py --force    # recompute every run
    python benchmarks/study_budgets.py --quick    # the quick setting; writes nothing

The full run writes ``results/budgets.csv`` (one row per text, rule and budget),
``results/budgets_layers.csv`` (per layer) and ``results/budgets.md`` (this machine, the
command, the time and memory it took, the table and the verdict sentences). Not a ``bench_*``
script: ``make bench`` does not run it (the full study takes about an hour).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

from _common import RESULTS, machine_header, print_table

from hsr_lab.experiments import budget_verdict as V
from hsr_lab.experiments import budgets as B


def _peak_mb() -> tuple[float, float]:
    """Peak resident memory (MB) of this process and of its largest child (a worker)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, child


def _cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the quick setting; no files")
    parser.add_argument("--force", action="store_true", help="recompute cached runs")
    args = parser.parse_args()
    header = machine_header()
    print(header, flush=True)
    start, cpu = time.perf_counter(), _cpu()
    study = B.budget_study(quick=args.quick, force=args.force)
    wall, cpu = time.perf_counter() - start, _cpu() - cpu
    own, child = _peak_mb()
    runs = sum(float(r.seconds) for r in study.results) + sum(
        float(d.seconds) for d in study.dense.values())
    rows = [{k: r[k] for k in ("text", "method", "label", "kept_share", "scored_share", "tau",
                               "rel_l2", "dnll", "dnll_low", "dnll_high", "dppl")}
            for r in study.table]
    print_table(rows)
    sentences = [v.sentence() for v in V.verdicts(study)]
    timing = (f"wall {wall:.0f} s, CPU {cpu:.0f} s (this call: cached runs are read back); the "
              f"runs themselves took {runs:.0f} s of wall time when computed, over "
              f"{study.setting.workers} worker processes x {study.setting.blas_threads} BLAS "
              f"thread; peak memory {own:.0f} MB (main) and {child:.0f} MB (largest worker)")
    print(timing)
    for line in sentences:
        print(line)
    if args.quick:
        return 0
    paths = B.write_csv(study, RESULTS)
    command = "python benchmarks/study_budgets.py" + (" --force" if args.force else "")
    (RESULTS / "budgets.md").write_text("\n".join([
        header.lstrip("# "), "", f"Command: `{command}` (then `python -m hsr_lab figures "
        "--only budgets_quality budgets_work budgets_layers`).", "", timing + ".", "",
        f"Setting: {study.setting}", "", "Files: " + ", ".join(p.name for p in paths), "",
        "## Verdict sentences (computed by `budget_verdict.verdicts`)", "",
        *[f"- {line}" for line in sentences], ""]))
    print(RESULTS / "budgets.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
