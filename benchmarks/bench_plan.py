"""The planner's block rules, measured: where the kd-tree starts to beat the scan on lone queries.

``hsr.plan.MIN_N`` scans blocks below it without a race. Per (dtype, d, n): Gaussian keys, unit
queries at t = sqrt(0.4 ln n), one BLAS thread; ``tree_us`` is a lone query of ``hsr.TREE``
(compiled where Numba is installed) with its answer sorted as ``HSR.query`` returns it,
``scan_us`` the scan's (``BruteForce``, ids already ascending): each round answers the cell's
queries once with each, interleaved, and a column gives the median time per query over the
rounds with its interquartile range (``_iqr_us``); ``scan_over_tree`` (of the medians) > 1 where
the tree wins; ``auto`` is what ``HSR(backend="auto")`` chose for
the block (its rule or its race) and ``why``.

    python benchmarks/bench_plan.py            # n = 2^11 .. 2^17; d = 2, 4, 8; both dtypes
    python benchmarks/bench_plan.py --quick    # a smoke run (not saved)
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from _common import (
    SPREAD_NOTE,
    print_table,
    provenance_header,
    timing,
    unit_queries,
    write_results,
)

from hsr_lab import HSR
from hsr_lab.hsr import TREE, BruteForce, plan
from hsr_lab.hsr.csr import ascending
from hsr_lab.theory import paper_threshold


def interleaved(fns: dict[str, object], rounds: int) -> dict[str, list[float]]:
    """Seconds of each call of each function over rounds, the order reversed every other
    round."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(rounds):
        for name in list(fns) if r % 2 == 0 else list(fns)[::-1]:
            start = time.perf_counter()
            fns[name]()  # type: ignore[operator]
            times[name].append(time.perf_counter() - start)
    return times


def cell(n: int, d: int, dtype: str, queries: int, rounds: int, seed: int) -> dict[str, object]:
    """Tree against scan on the same keys and queries, and auto's decision."""
    K = np.random.default_rng(seed).standard_normal((n, d), dtype=np.float32).astype(dtype)
    t = float(paper_threshold(n))
    Q = unit_queries(queries, d, seed + 1)
    ids = np.arange(n)
    leaf = HSR(K[:1]).leaf_size  # the default of this dtype
    tree, scan = TREE(K, ids, leaf), BruteForce(K, ids, leaf)

    def tree_answers() -> None:
        for q in Q:
            ascending(tree.query(q, t)[0], n)

    def scan_answers() -> None:
        for q in Q:
            scan.query(q, t)

    calls = interleaved({"tree": tree_answers, "scan": scan_answers}, rounds)
    (decision,) = HSR(K).plan.decisions.values()  # type: ignore[union-attr]
    row: dict[str, object] = {"dtype": dtype, "d": d, "n": f"2^{int(np.log2(n))}"}
    for name, secs in calls.items():  # per query: a round's seconds over its queries
        row.update(timing(name, np.asarray(secs) / queries, "us"))
    row.update(scan_over_tree=float(np.median(calls["scan"]) / np.median(calls["tree"])),
               auto=decision.kernel, why=decision.why.split(" (")[0])
    return row



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 2^11, 2^12; d = 2")
    parser.add_argument("--log2n", type=int, nargs="+", default=list(range(11, 18)))
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sizes, dims = ([11, 12], [2]) if args.quick else (args.log2n, args.dims)
    queries, rounds = (2, 3) if args.quick else (8, 9)
    header = provenance_header(args.seed, argv)
    print(header)
    rows: list[dict[str, object]] = []
    for dtype in ("float32", "float64"):
        for d in dims:
            for log2n in sizes:
                rows.append(cell(2**log2n, d, dtype, queries, rounds, args.seed))
                print_table(rows[-1:], header=len(rows) == 1)
    notes = (f"Lone queries: {queries} unit queries per round, {rounds} interleaved rounds; "
             "*_us: a round's time over its queries, median over the rounds. tree = hsr.TREE "
             f"({TREE.name})'s query, answer sorted (csr.ascending); scan = BruteForce's; "
             "auto = HSR(backend='auto').plan for the block; plan.MIN_N = "
             f"2^{plan.MIN_N.bit_length() - 1}. {SPREAD_NOTE}")
    if not args.quick:
        print("wrote", *write_results("plan", rows, header, notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
