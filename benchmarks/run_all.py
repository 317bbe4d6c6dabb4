"""Every benchmark table in ``results/``, regenerated: ``make bench`` runs this file.

``RUNS`` lists each command with the tables it writes; together they write every table in
``results/`` and run every benchmark script of this folder (``tests/test_benchmarks.py`` checks
both). A full pass takes about two hours (110 minutes estimated) on the 2-core machine of the
committed tables. Each run's ``minutes`` is an estimate from the sizes of its last table: its
cells' median times times the calls the script makes, plus builds, plus a margin for imports,
key generation and checks. (For the float32 run that sum gives 26 minutes before the margin;
the README reports 30 for it.) Run the pass on a quiet machine, from a committed checkout (else
every table's commit reads ``-dirty``), and commit ``results/`` afterwards;
``results/run_all.md`` records how long each run took, and ``readme_numbers.py`` then prints
the numbers that README's results quote, read from the new tables.

    python benchmarks/run_all.py                  # every run in RUNS; rewrites results/
    python benchmarks/run_all.py --quick          # every script once with --quick; writes nothing
    python benchmarks/run_all.py --only keys ties # the runs that write these tables
    python benchmarks/run_all.py --list           # the commands, their tables, the estimates
    python benchmarks/run_all.py --studies        # also the studies (notebook 08's, ~45 min)
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


@dataclass(frozen=True)
class Run:
    """One command of the full pass: ``python benchmarks/<script> <args>``."""

    script: str
    args: tuple[str, ...]
    tables: tuple[str, ...]  # results/<table>.{csv,md} that it writes
    minutes: float  # estimated wall time on the committed tables' 2-core machine

    @property
    def command(self) -> str:
        return shlex.join(["python", f"benchmarks/{self.script}", *self.args])


# The headline protocol first (alternating methods; README "Results so far"), so that a pass
# cut short leaves the numbers the README leads with.
RUNS: tuple[Run, ...] = (
    Run("bench_float32.py", ("--dtypes", "float32"), ("hsr_float32",), 35),
    Run("bench_float32.py", ("--log2n", "22", "--dims", "2", "3", "4", "--dtypes", "float32",
                             "--out", "hsr_targets"), ("hsr_targets_float32",), 3),
    Run("bench_float32.py", ("--log2n", "22", "--dims", "2", "3", "4", "--dtypes", "float32",
                             "--rounds", "8", "--out", "sort"), ("sort_float32",), 4),
    Run("bench_float32.py", ("--dtypes", "float64", "--log2n", "22", "--dims", "2", "3", "4",
                             "8", "16", "32", "64"), ("hsr_float64",), 8),
    Run("bench_hsr.py", ("--min-log2n", "18"), ("hsr", "hsr_churn"), 5),
    Run("bench_attention.py", ("--max-bytes", "3e8", "--repeats", "7"), ("attention",), 10),
    Run("bench_keys.py", (), ("keys",), 3),
    Run("bench_peers.py", ("--max-log2n", "18"), ("peers", "peers_build"), 20),
    Run("bench_peers.py", ("--min-log2n", "20", "--dims", "2", "3", "4", "8", "--out",
                           "peers_large"), ("peers_large", "peers_large_build"), 8),
    Run("bench_leaf_size.py", (), ("leaf_size", "leaf_size_prefill"), 7),
    Run("bench_plan.py", (), ("plan",), 1),
    Run("bench_ties.py", (), ("ties",), 1),
    Run("bench_data.py", (), ("data_bpe", "data_gguf"), 2),
    Run("bench_widgets.py", (), ("widgets",), 2),
    Run("profile_walk.py", ("--out", "profile_walk"), ("profile_walk",), 1),
)
# Studies: long computations whose tables live in results/ too, run only with --studies (their
# runs are cached, so a second pass reads them back in a minute).
STUDIES: tuple[Run, ...] = (
    Run("study_budgets.py", (), ("budgets", "budgets_layers", "budgets_heads"), 45),
)
SUMMARY = "run_all"  # results/run_all.md: the last full pass, each run's wall time


def scripts() -> list[str]:
    """Each script of RUNS and STUDIES once, in order of first appearance."""
    return list(dict.fromkeys(run.script for run in (*RUNS, *STUDIES)))


def uncovered() -> list[str]:
    """Benchmark scripts of this folder that no run in RUNS calls (should be none)."""
    found = {p.name for p in HERE.glob("bench_*.py")} | {"profile_walk.py"}
    return sorted(found - set(scripts()))


def selected(only: list[str] | None, studies: bool = False) -> list[Run]:
    """The runs that write any of the tables ``only`` (all of RUNS if None, and STUDIES too
    if ``studies``); ``only`` may name a study's tables."""
    if only is None:
        return [*RUNS, *(STUDIES if studies else ())]
    known = {table for run in (*RUNS, *STUDIES) for table in run.tables}
    unknown = sorted(set(only) - known)
    if unknown:
        raise SystemExit(f"--only: no run writes {', '.join(unknown)}; tables: "
                         f"{', '.join(sorted(known))}")
    return [run for run in (*RUNS, *STUDIES) if set(run.tables) & set(only)]


def call(script: str, args: list[str]) -> tuple[int, float]:
    """Run one script with this interpreter; its exit status and wall-clock seconds."""
    print(f"\n=== {shlex.join(['python', f'benchmarks/{script}', *args])} ===", flush=True)
    start = time.perf_counter()
    status = subprocess.call([sys.executable, str(HERE / script), *args], cwd=HERE)
    return status, time.perf_counter() - start


def write_summary(done: list[tuple[Run, int, float]], header: str) -> Path:
    """results/run_all.md: the pass's provenance, then each command, its tables and minutes."""
    lines = [*(f"- {line.removeprefix('# ')}" for line in header.splitlines()), "",
             "Wall time of each run of a full pass (`python benchmarks/run_all.py`).", "",
             "| command | tables | exit | minutes | estimated |", "|---|---|---|---|---|"]
    lines += [f"| `{run.command}` | {', '.join(run.tables)} | {status} | {seconds / 60:.1f} | "
              f"{run.minutes:g} |" for run, status, seconds in done]
    total = sum(seconds for _, _, seconds in done) / 60
    lines += ["", f"Total: {total:.0f} minutes (estimated {sum(r.minutes for r, _, _ in done):g})."]
    path = RESULTS / f"{SUMMARY}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="every script once with --quick (a smoke run; writes nothing)")
    parser.add_argument("--only", nargs="+", metavar="TABLE", help="the runs writing these")
    parser.add_argument("--list", action="store_true", help="print the runs and exit")
    parser.add_argument("--studies", action="store_true",
                        help="also the studies (STUDIES: notebook 08's, about 45 minutes)")
    args = parser.parse_args(argv)
    if uncovered():
        raise SystemExit(f"RUNS calls no script {', '.join(uncovered())}: add a run for it")
    if args.list:
        runs = selected(args.only, args.studies)
        for run in runs:
            print(f"{run.minutes:4g} min  {run.command}  -> {', '.join(run.tables)}")
        print(f"{sum(r.minutes for r in runs):4g} min in all (estimated)")
        return 0
    if args.quick:
        studies = {run.script for run in STUDIES} - {run.script for run in RUNS}
        failed = [script for script in scripts() if args.studies or script not in studies
                  if call(script, ["--quick"])[0] != 0]
        print(f"\nquick runs that failed: {', '.join(failed) or 'none'}")
        return 1 if failed else 0
    sys.path.insert(0, str(HERE))
    from _common import provenance_header

    header = provenance_header(None, argv)
    print(header)
    if "-dirty" in header:
        print("note: the checkout differs from its commit; every table will say -dirty")
    done = [(run, *call(run.script, list(run.args)))
            for run in selected(args.only, args.studies)]
    for run, status, seconds in done:
        print(f"{'ok  ' if status == 0 else 'FAIL'} {seconds / 60:6.1f} min  {run.command}")
    if args.only is None:
        print("wrote", write_summary(done, header))
        print("\nThe numbers README's results quote, from the new tables:", flush=True)
        subprocess.call([sys.executable, str(HERE / "readme_numbers.py")], cwd=HERE)
    return 1 if any(status != 0 for _, status, _ in done) else 0


if __name__ == "__main__":
    sys.exit(main())
