"""Where a single query of the NumPy kd-tree spends its time: a profile per step of the walk.

float32 Gaussian keys, unit queries, t = sqrt(0.4 ln n), one BLAS thread (as in
``bench_float32.py``). Each query runs right after the float32 scan ``K @ q >= t`` (timed too),
so that, as in the benchmark, the tree's data are not left in the cache by the previous query.
Per step of the walk (``NumpyKDTree._step``: the levels it takes, the frontier, the (query, node)
pairs it tests and those the reference visits) and per phase of the report (scoring the open
leaves, gathering the ids), the median time with its interquartile range (``time_us``,
``time_iqr_us``), and the NumPy calls it makes (functions and
methods seen by ``sys.setprofile``; operators such as ``<`` or ``@`` are not counted), so that
the time per call can be read next to the work.

    python benchmarks/profile_walk.py --out profile_walk   # n = 2^22, d = 2, 3, 4; written
    python benchmarks/profile_walk.py --quick              # a smoke run (never written)
    python benchmarks/profile_walk.py --log2n 20 --dims 3 --leaf-size 256
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from collections.abc import Callable

import numpy as np
from _common import (
    SPREAD_NOTE,
    print_table,
    provenance_header,
    timing,
    unit_queries,
    write_results,
)

from hsr_lab.hsr import DEFAULT_LEAF_SIZE32, NumpyKDTree
from hsr_lab.theory import paper_threshold


class _Recorder:
    """Wraps methods of one tree: each call's seconds (while ``counting`` is off) or C calls
    (while it is on), keyed by phase name; steps are named by their rank in the walk."""

    def __init__(self, tree: NumpyKDTree) -> None:
        self.tree, self.calls, self.counting = tree, 0, False
        self.seconds: dict[str, list[float]] = defaultdict(list)
        self.c_calls: dict[str, list[int]] = defaultdict(list)
        self.work: dict[str, list[str]] = defaultdict(list)
        self._depth = self._rank = 0
        tree._step = self._wrap("step", tree._step)
        tree._scan = self._wrap("scan", tree._scan)
        tree._walk = self._wrap("walk", tree._walk)
        tree._report = self._wrap("report", tree._report)

    def _wrap(self, name: str, method: Callable) -> Callable:
        def timed(*args: object) -> object:
            if name == "walk":
                self._depth = self._rank = 0
            label, calls = name, self.calls
            if name == "step":
                self._rank += 1
                label = f"step {self._rank}"
            start = time.perf_counter()
            out = method(*args)
            seconds = time.perf_counter() - start
            if self.counting:
                self.c_calls[label].append(self.calls - calls)
                return out
            self.seconds[label].append(seconds)
            if name == "step":
                pairs, span = args[0], args[1]
                self.work[label].append(
                    f"levels {self._depth}-{self._depth + span}: frontier {len(pairs)}, tested "
                    f"{len(out[0][0])}, visited {int(np.count_nonzero(out[0][1]))}")
                self._depth += span + 1
            if name == "scan":
                self.work[label].append(f"leaves {len(args[3])}, rows "
                                        f"{len(args[3]) * self.tree._leaf_width}")
            return out
        return timed

    def count(self, frame: object, event: str, arg: object) -> None:
        """A ``sys.setprofile`` hook counting C calls."""
        if event == "c_call":
            self.calls += 1


def profile(n: int, d: int, leaf_size: int, n_queries: int, rounds: int, seed: int
            ) -> list[dict[str, object]]:
    """Rows of the profile of one (n, d): the scan, the whole query, and each phase."""
    K = np.random.default_rng(seed).standard_normal((n, d), dtype=np.float32)
    t = float(paper_threshold(n))
    tree = NumpyKDTree(K, np.arange(n), leaf_size)
    Q = unit_queries(n_queries, d, seed + 1)
    rec = _Recorder(tree)
    scan, query = [], []
    for q in Q:
        for r in range(rounds + 1):
            start = time.perf_counter()
            np.flatnonzero(K @ q.astype(np.float32) >= t)
            middle = time.perf_counter()
            rec.counting = r == 0  # calls in the first round, times in the others
            sys.setprofile(rec.count if rec.counting else None)
            _, stats = tree.query(q, t)
            sys.setprofile(None)
            end = time.perf_counter()
            if r > 0:
                scan.append(middle - start)
                query.append(end - middle)
    rows = [{"d": d, "phase": "scan K @ q >= t", **_us(scan), "numpy_calls": 0, "work": ""},
            {"d": d, "phase": "tree.query", **_us(query), "numpy_calls": 0,
             "work": f"visited {stats.nodes_visited}, products {stats.inner_products}, "
                     f"ids {stats.points_reported}"}]
    for label, seconds in rec.seconds.items():  # work: the first query's (steps vary)
        rows.append({"d": d, "phase": label, **_us(seconds),
                     "numpy_calls": int(np.median(rec.c_calls[label])),
                     "work": rec.work[label][0] if rec.work[label] else ""})
    return rows


def _us(seconds: list[float]) -> dict[str, float]:
    """``time_us`` and ``time_iqr_us`` of the timed calls, to 0.1 us."""
    return {key: round(value, 1) for key, value in timing("time", seconds, "us").items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log2n", type=int, default=22)
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--leaf-size", type=int, default=DEFAULT_LEAF_SIZE32)
    parser.add_argument("--queries", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write results/<out>.{csv,md}")
    parser.add_argument("--quick", action="store_true",
                        help="n = 2^14, d = 2, 2 queries x 3 rounds; writes nothing")
    args = parser.parse_args(argv)
    if args.quick:
        args.log2n, args.dims, args.queries, args.rounds = 14, [2], 2, 3
    header = provenance_header(args.seed, argv)
    print(header)
    rows = []
    for d in args.dims:
        rows += profile(2**args.log2n, d, args.leaf_size, args.queries, args.rounds, args.seed)
    print_table(rows)
    if args.out and not args.quick:
        notes = (f"n = 2^{args.log2n}, leaf_size = {args.leaf_size}, median over "
                 f"{args.queries} queries x {args.rounds} rounds, each query right after the "
                 "scan. Steps are timed inside tree.query (walk = all steps; report = scan of "
                 "the open leaves and the ids). numpy_calls: NumPy functions and methods called "
                 f"(operators not counted). {SPREAD_NOTE}")
        write_results(args.out, rows, header, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
