"""Structured keys: where the kd-tree wins beyond low dimension, and where it still cannot.

For each kind of keys in ``hsr_lab.experiments.KEY_KINDS`` (isotropic Gaussian, anisotropic
with a spectrum falling from 1 to 0.01, low-rank: a 2-dimensional plane in R^d plus noise of
0.01), each d and each n: the kd-tree (``hsr.TREE``, the compiled walk where Numba is
installed; the ``tree`` column names it) against the dense scan ``K @ a >= t``, timed side by
side on the same keys and the same unit queries (``measure_query_cost``: one BLAS thread for
both, every query timed 3 times, interleaved). The threshold is the per-row rule
t = sqrt(d) b_i, b_i = mu_i + sigma_i sqrt(0.4 ln n), estimated from ``--sample`` keys (1024 by
default) inside every timed call, for the tree and the scan alike: the times include the
threshold's cost, and ``threshold_sample`` records it in the table. Prints the median of all
timed calls of a cell with their interquartile range, the speed-up (scan / tree, of the
medians) and the tree's work (with the sample's inner products) as a share of n.

    python benchmarks/bench_keys.py            # d = 4, 16, 64; n = 2^16, 2^18, 2^20 (minutes)
    python benchmarks/bench_keys.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import sys

from _common import SPREAD_NOTE, print_table, provenance_header, timing, write_results

from hsr_lab.experiments import KEY_KINDS, measure_query_cost
from hsr_lab.experiments.cost import THRESHOLD_SAMPLE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, no results written")
    parser.add_argument("--dims", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--log2n", type=int, nargs="+", default=[16, 18, 20])
    parser.add_argument("--queries", type=int, default=15, help="queries per cell")
    parser.add_argument("--sample", type=int, default=THRESHOLD_SAMPLE,
                        help="keys sampled per row for its threshold, inside the timers")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.dims, args.log2n, args.queries = [4, 64], [12, 14], 5
    header = provenance_header(args.seed, argv)
    print(header)
    rows = []
    for d in args.dims:
        for kind in KEY_KINDS:
            cost = measure_query_cost([2**p for p in args.log2n], d, kind,
                                      n_queries=args.queries, sample=args.sample,
                                      seed=args.seed)
            for i, p in enumerate(args.log2n):
                row = {"keys": kind, "d": d, "n": f"2^{p}", "k": round(float(cost.reported[i])),
                       **timing("scan", cost.scan_calls[i]),
                       **timing("tree", cost.tree_calls[i]),
                       "speedup": float(cost.speedup[i]),
                       "work_share": float(cost.work[i] / cost.n[i]),
                       "threshold_sample": cost.sample, "tree": cost.tree}
                print_table([row], header=not rows)
                rows.append(row)
    if not args.quick:
        print("wrote", *write_results(
            "keys", rows, header,
            "Tree vs scan by kind of keys. speedup = scan_ms / tree_ms (above 1 the tree wins); "
            "work_share = (boxes tested + inner products) / n, the scan's is 1. Both times "
            "include the per-row threshold, estimated from threshold_sample sampled keys. "
            f"{args.queries} queries per cell, each timed 3 times (interleaved). {SPREAD_NOTE}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
