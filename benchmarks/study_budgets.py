"""The equal-budget study of notebook 08, timed: wall time, CPU time and peak memory.

    python benchmarks/study_budgets.py            # the full study (cached runs are read back)
    python benchmarks/study_budgets.py --force    # recompute every run
    python benchmarks/study_budgets.py --quick    # the quick setting; writes nothing

The full run writes ``results/budgets.csv`` (one row per text, rule and budget),
``results/budgets_layers.csv`` (per layer, means over heads), ``results/budgets_heads.csv``
(per layer and query head) and ``results/budgets.md`` (this machine, the command, the time and
memory it took, the table and the verdict sentences). Not a ``bench_*``
script: ``make bench`` does not run it (the full study takes about an hour).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

from _common import RESULTS, print_table, provenance_header

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


def panel_times(quick: bool) -> list[dict[str, object]]:
    """Redraw times of notebook 08's panel: a new query head (the layer's selection is kept:
    a warm move) and a new rule or layer (its selection is computed: a cold move)."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np

    from hsr_lab.widgets.budgets import budget_panel

    panel = budget_panel(quick=quick)
    rows = []
    for control, values in (("head", [1, 2, 3, 4, 5, 6, 7, 8, 0]),
                            ("method", ["streaming", "h2o", "snapkv", "quest", "scalar_b",
                                        "magicpig", "double_sparsity", "top_p", "top_k"]),
                            ("layer", [20, 25, 5, 10])):
        times = []
        for value in values:
            start = time.perf_counter()
            panel.controls[control].value = value
            times.append(time.perf_counter() - start)
            assert panel.message is None, panel.message
        rows.append({"control": control, "moves": len(times),
                     "median_ms": 1e3 * float(np.median(times)),
                     "max_ms": 1e3 * float(np.max(times))})
    return rows


def _computed_timing(wall: float, timing: str) -> str:
    """The timing of the run that computed the study: "" if this call took over a minute (its
    own line says it), else the paragraph kept in the last ``results/budgets.md`` (a rerun
    only reads the cache)."""
    old = RESULTS / "budgets.md"
    if wall > 60 or not old.exists():
        return ""
    for paragraph in old.read_text().split("\n\n"):
        if paragraph.startswith("When the runs were computed"):
            return paragraph.removeprefix("When the runs were computed: ")
        if paragraph.startswith("wall ") and float(paragraph.split()[1]) > 60:
            return paragraph
    return ""


def write_heads(study: B.BudgetStudy) -> object:
    """results/budgets_heads.csv: one row per (text, rule, budget, layer, query head)."""
    import csv

    path = RESULTS / "budgets_heads.csv"
    keys = ("kept", "scored", "tau", "err", "empty")
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["text", "method", "label", "layer", "head", "kept_share",
                         "scored_share", "tau", "rel_l2", "empty_rows"])
        for r in study.results:
            for layer in range(r.kept.shape[0]):
                for head in range(r.kept.shape[1]):
                    writer.writerow([r.text, r.method, r.label, layer, head,
                                     *(f"{float(getattr(r, k)[layer, head]):.5g}"
                                       for k in keys)])
    return path


def _panel_lines(rows: list[dict[str, object]]) -> list[str]:
    if not rows:
        return []
    return ["## Panel redraws (`--panel`)", "", "| control | moves | median ms | max ms |",
            "|---|---|---|---|", *[f"| {r['control']} | {r['moves']} | {r['median_ms']:.0f} | "
                                  f"{r['max_ms']:.0f} |" for r in rows], ""]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the quick setting; no files")
    parser.add_argument("--force", action="store_true", help="recompute cached runs")
    parser.add_argument("--panel", action="store_true", help="also time notebook 08's panel")
    args = parser.parse_args()
    header = provenance_header(seed=0)
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
    timing = (f"wall {wall:.0f} s, CPU {cpu:.0f} s for this call (runs already in the cache are "
              f"read, not recomputed); the runs took {runs:.0f} s of wall time when computed, over "
              f"{study.setting.workers} worker processes x {study.setting.blas_threads} BLAS "
              f"thread; peak memory {own:.0f} MB (main) and {child:.0f} MB (largest worker)")
    print(timing)
    for line in sentences:
        print(line)
    panel = panel_times(args.quick) if args.panel else []
    if panel:
        print_table(panel)
    if args.quick:
        return 0
    computed = _computed_timing(wall, timing)
    paths = [*B.write_csv(study, RESULTS), write_heads(study)]
    command = "python benchmarks/study_budgets.py" + (" --force" if args.force else "")
    (RESULTS / "budgets.md").write_text("\n".join([
        *(f"- {line.removeprefix('# ')}" for line in header.splitlines()), "",
        f"Command: `{command}` (then `python -m hsr_lab figures "
        "--only budgets_quality budgets_work budgets_layers`).", "", timing + ".", "",
        *([computed if computed.startswith("When") else
           f"When the runs were computed: {computed}", ""] if computed else []),
        f"Setting: {study.setting}", "", "Files: " + ", ".join(p.name for p in paths), "",
        "## Verdict sentences (computed by `budget_verdict.verdicts`)", "",
        *[f"- {line}" for line in sentences], "", *_panel_lines(panel)]))
    print(RESULTS / "budgets.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
