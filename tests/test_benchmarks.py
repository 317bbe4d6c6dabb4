"""Every benchmark script runs in its quick mode, prints a table and leaves the results alone.

The speed claims themselves live in the scripts' full runs (``make bench``), never in tests:
this only checks that ``make bench`` will not crash, and that a smoke run (``--quick``) never
overwrites the committed tables of a full run. The scripts run from a copy of ``benchmarks/``
so that a failure cannot touch the real ``benchmarks/results/``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(path.name for path in BENCHMARKS.glob("bench_*.py"))


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
    assert lines[0].startswith("# ") and "cores" in lines[0]  # the machine header
    assert len(lines) >= 3, run.stdout  # a table header and at least one row
    assert _digests(copy / "results") == before, "a --quick run rewrote benchmarks/results"
