"""Every benchmark script runs in its quick mode, prints a table and leaves the results alone;
the tables carry their provenance and a spread beside every median time.

The speed claims themselves live in the scripts' full runs (``make bench``), never in tests:
this only checks that ``make bench`` will not crash, and that a smoke run (``--quick``) never
overwrites the committed tables of a full run. The scripts run from a copy of ``benchmarks/``
so that a failure cannot touch the real ``benchmarks/results/``.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _module(name: str):
    """benchmarks/<name>.py as a module (the scripts import each other from their folder)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


RUN_ALL = _module("run_all")
SCRIPTS = RUN_ALL.scripts()  # every script that `make bench` runs (studies with --studies)
STUDIES = {run.script for run in RUN_ALL.STUDIES}  # measure quality, not time: no spread column


def _digests(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.iterdir()) if path.is_file()}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_runs_quick_and_leaves_the_results_alone(script, tmp_path):
    copy = tmp_path / "benchmarks"
    shutil.copytree(BENCHMARKS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = _digests(copy / "results")
    env = {**os.environ, "HSR_LAB_CACHE_DIR": str(tmp_path / "cache"), "MPLBACKEND": "Agg"}
    run = subprocess.run([sys.executable, script, "--quick"], cwd=copy, env=env,
                         capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert lines[0].startswith("# machine: ") and "cores" in lines[0]
    assert _header_keys(lines) == list(HEADER_KEYS), run.stdout[:2000]
    assert len(lines) >= len(HEADER_KEYS) + 2, run.stdout  # a table header and a row
    assert script in STUDIES or "_iqr_" in run.stdout, "no spread column beside the medians"
    assert _digests(copy / "results") == before, "a --quick run rewrote benchmarks/results"


# ---------------------------------------------------------------- provenance and spread

HEADER_KEYS = ("machine", "command", "commit", "versions", "BLAS", "seed", "date")


def _common():
    """benchmarks/_common.py as a module (the scripts import it from their own folder)."""
    return _module("_common")


def _header_keys(lines: list[str]) -> list[str]:
    keys = []
    for line in lines:
        if not line.startswith("# "):
            break
        keys.append(line[2:].split(":", 1)[0])
    return keys


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_benchmark_writes_the_provenance_header(script):
    source = (BENCHMARKS / script).read_text()
    assert "provenance_header(" in source and "machine_header(" not in source


def test_make_bench_runs_every_script_and_writes_every_table():
    assert RUN_ALL.uncovered() == []  # every bench_*.py (and profile_walk.py) has a run
    assert {p.name for p in BENCHMARKS.glob("bench_*.py")} <= set(SCRIPTS)
    written = {table for run in (*RUN_ALL.RUNS, *RUN_ALL.STUDIES) for table in run.tables} | {
        RUN_ALL.SUMMARY}
    committed = {p.stem for p in (BENCHMARKS / "results").iterdir() if p.suffix in (".csv", ".md")}
    assert committed <= written, f"tables no run of run_all.py rewrites: {committed - written}"
    for run in RUN_ALL.RUNS:  # each run's --out (if any) names the tables it is said to write
        if "--out" in run.args:
            out = run.args[run.args.index("--out") + 1]
            assert all(table.startswith(out) for table in run.tables), run
    assert [r.tables for r in RUN_ALL.selected(["keys", "ties"])] == [("keys",), ("ties",)]
    with pytest.raises(SystemExit, match="no run writes"):
        RUN_ALL.selected(["keys", "no_such_table"])


def test_the_readme_numbers_are_read_from_the_tables(capsys):
    quoted = _module("readme_numbers")
    assert quoted.main() == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) >= len(quoted.QUOTED)
    assert quoted.value("no_such_table", {"n": "2^22"}, "scan_ms") == "-"
    tables = {t for _, names, _, _ in quoted.QUOTED for t in names}
    written = {table for run in RUN_ALL.RUNS for table in run.tables}
    assert tables <= written  # every quoted table is one that `make bench` rewrites


def test_timing_is_the_median_and_interquartile_range_of_the_calls():
    common = _common()
    calls = [0.004, 0.001, 0.003, 0.002, 0.010]
    q25, q50, q75 = np.percentile(calls, [25, 50, 75])
    got = common.timing("scan", calls)
    assert list(got) == ["scan_ms", "scan_iqr_ms"]  # the spread right beside the median
    assert got["scan_ms"] == pytest.approx(1e3 * q50)
    assert got["scan_iqr_ms"] == pytest.approx(1e3 * (q75 - q25))
    assert common.timing("x", calls, unit="s") == {"x_s": pytest.approx(q50),
                                                   "x_iqr_s": pytest.approx(q75 - q25)}
    assert common.timing("one", [0.5]) == {"one_ms": 500.0, "one_iqr_ms": pytest.approx(np.nan,
                                                                               nan_ok=True)}
    assert common.timing("two", [0.5, 0.5])["two_iqr_ms"] == 0.0  # measured, and no spread
    for bad in ([], [[0.1, 0.2]]):
        with pytest.raises(ValueError, match="seconds"):
            common.timing("x", bad)
    assert common.timing("x", calls, unit="us")["x_us"] == pytest.approx(1e6 * q50)
    with pytest.raises(ValueError, match="unit"):
        common.timing("x", calls, unit="ns")
    assert len(common.time_calls(lambda: None, repeats=4)) == 4


def test_provenance_header_and_tables_carry_the_run(tmp_path, monkeypatch):
    common = _common()
    monkeypatch.setattr(sys, "argv", ["bench_probe.py"])
    header = common.provenance_header(7, ["--dims", "2 3"])
    lines = header.splitlines()
    assert _header_keys(lines) == list(HEADER_KEYS) and len(lines) == len(HEADER_KEYS)
    fields = dict(line[2:].split(": ", 1) for line in lines)
    assert "cores" in fields["machine"] and fields["seed"] == "7"
    assert fields["command"] == "python benchmarks/bench_probe.py --dims '2 3'"
    assert fields["commit"]  # a commit, or the version outside git
    for package in ("python", "numpy", "scipy", "numba"):
        assert f"{package} " in fields["versions"]
    assert "thread" in fields["BLAS"] and ":" in fields["BLAS"]
    assert common.provenance_header(None, []).splitlines()[5] == "# seed: none"
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    rows = [{"n": "2^10", "scan_ms": 1.5, "scan_iqr_ms": 0.25}]
    csv_path, md_path = common.write_results("probe", rows, header, "some notes")
    csv_lines = csv_path.read_text().splitlines()
    assert csv_lines[:len(lines)] == lines and csv_lines[len(lines)] == "n,scan_ms,scan_iqr_ms"
    with open(csv_path, newline="") as fh:
        table = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    assert table == [{"n": "2^10", "scan_ms": "1.5", "scan_iqr_ms": "0.25"}]
    md = md_path.read_text().splitlines()
    assert md[:len(lines)] == [f"- {line[2:]}" for line in lines]
    assert "some notes" in md and "| n | scan_ms | scan_iqr_ms |" in md


@pytest.mark.timeout(600)
def test_a_small_full_run_writes_provenance_and_spreads_that_the_figure_reads(tmp_path):
    copy = tmp_path / "benchmarks"
    shutil.copytree(BENCHMARKS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "HSR_LAB_CACHE_DIR": str(tmp_path / "cache"), "MPLBACKEND": "Agg"}
    args = ["--min-log2n", "10", "--max-log2n", "12", "--dims", "2", "16", "--seed", "3"]
    run = subprocess.run([sys.executable, "bench_hsr.py", *args], cwd=copy, env=env,
                         capture_output=True, text=True, timeout=580)
    assert run.returncode == 0, run.stderr[-3000:]
    for name in ("hsr", "hsr_churn"):
        lines = (copy / "results" / f"{name}.csv").read_text().splitlines()
        assert _header_keys(lines) == list(HEADER_KEYS)
        assert f"# command: python benchmarks/bench_hsr.py {' '.join(args)}" in lines
        assert "# seed: 3" in lines
        columns = lines[len(HEADER_KEYS)].split(",")
        medians = [c for c in columns if c.endswith("_ms") and not c.endswith("_iqr_ms")]
        assert medians
        for column in medians:  # the spread right beside every median
            assert columns[columns.index(column) + 1] == column.replace("_ms", "_iqr_ms")
        md = (copy / "results" / f"{name}.md").read_text()
        assert md.startswith("- machine: ") and "interquartile range" in md
    from hsr_lab.figures import REGISTRY

    fig = REGISTRY["wallclock"].func(results_dir=copy / "results")  # reads past the header
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels[:2] == ["$n = 2^{10}$: NumPy walk", "$n = 2^{12}$: NumPy walk"], labels
    import matplotlib.pyplot as plt

    plt.close(fig)
