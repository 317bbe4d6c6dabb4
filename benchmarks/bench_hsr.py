"""Half-space reporting: the NumPy and compiled kd-trees and the pure-Python twin against the scan.

Gaussian keys stored in one dtype (float32 by default, the dtype of users' embeddings and
caches; ``--dtype float64`` for the other), unit-norm queries, the paper's threshold
t = sqrt(0.4 ln n) (so about n^{4/5} keys are reported). Per (n, d): k, median query time of
brute (the scan ``K @ a >= t`` in the keys' dtype), numpy, compiled (the same tree walked by
Numba-compiled loops, where Numba is installed) and reference (only up to n = 2^16), each with
its interquartile range, build time, index memory / key memory, and the speed-up ratios.

Each method is timed in its own block of repeats, query by query, so its caches stay warm: the
secondary protocol. The headline ratios come from ``bench_float32.py``, which times the
methods alternately (each query starts with what the method before it left in the caches).

A second table checks that updates stay amortised after a churn: delete every point, add
50,000 back, then 200 single deletes, timed against the same deletes on a fresh structure.

    python benchmarks/bench_hsr.py            # the full grid, n = 2^14 .. 2^22 (minutes)
    python benchmarks/bench_hsr.py --quick    # a smoke run
    python benchmarks/bench_hsr.py --dtype float64 --out hsr_float64_grid
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from _common import (
    SPREAD_NOTE,
    gaussian_keys,
    print_table,
    provenance_header,
    time_calls,
    timing,
    unit_queries,
    write_results,
)

from hsr_lab import HSR
from hsr_lab.hsr import compiled
from hsr_lab.hsr.brute import l1_reach, scan
from hsr_lab.theory import paper_threshold

DIMS = (2, 3, 4, 8, 16, 64)
BACKENDS = ("brute", "numpy", "compiled", "reference")
REFERENCE_MAX_N = 2**16


def exact(keys: np.ndarray, q: np.ndarray, t: float) -> np.ndarray:
    """The keys with ``<q, k> >= t`` exactly (``hsr.numerics``): ``brute.scan``, the scan the
    tests check against fractions (in the keys' dtype, a chunk at a time)."""
    return scan(keys, q, t, l1_reach(keys), float(np.abs(keys).max()))


def bench_cell(n: int, d: int, repeats: int, n_queries: int, seed: int,
               dtype: str = "float32") -> dict[str, object]:
    """Time one (n, d) cell: every backend on the same keys and the same queries."""
    keys = gaussian_keys(n, d, seed).astype(dtype)
    queries = unit_queries(n_queries, d, seed + 1)
    t = float(paper_threshold(n))
    columns = ["n", "d", "dtype", "k", "build_brute_s", "build_numpy_s", "build_compiled_s",
               "build_reference_s", *(f"{b}{s}" for b in BACKENDS for s in ("_ms", "_iqr_ms")),
               "numpy_speedup_vs_brute", "compiled_speedup_vs_brute",
               "numpy_speedup_vs_reference", "index_mem_over_keys", "compiled_mem_over_keys"]
    row: dict[str, object] = dict.fromkeys(columns, float("nan"))
    row.update(n=f"2^{int(np.log2(n))}", d=d, dtype=dtype)
    structures = {}
    for backend in BACKENDS:
        if ((backend == "reference" and n > REFERENCE_MAX_N)
                or (backend == "compiled" and not compiled.AVAILABLE)):
            continue
        start = time.perf_counter()
        structures[backend] = HSR(keys, backend=backend)
        row[f"build_{backend}_s"] = time.perf_counter() - start
    expected = [exact(keys, q, t) for q in queries]
    row["k"] = int(np.median([len(e) for e in expected]))
    times = {}
    for backend, hsr in structures.items():
        for q, e in zip(queries, expected, strict=True):  # exactness, loudly
            if not np.array_equal(hsr.query(q, t), e):
                raise AssertionError(f"{backend} disagrees with the scan at n={n}, d={d}")
        reps = repeats if backend != "reference" else max(3, repeats // 5)
        calls = [s for q in queries for s in time_calls(lambda h=hsr, q=q: h.query(q, t), reps)]
        row.update(timing(backend, calls))
        times[backend] = float(row[f"{backend}_ms"])
    row["numpy_speedup_vs_brute"] = times["brute"] / times["numpy"]
    if "compiled" in times:
        row["compiled_speedup_vs_brute"] = times["brute"] / times["compiled"]
        row["compiled_mem_over_keys"] = structures["compiled"].nbytes / keys.nbytes
    if "reference" in times:
        row["numpy_speedup_vs_reference"] = times["reference"] / times["numpy"]
    row["index_mem_over_keys"] = structures["numpy"].nbytes / keys.nbytes
    return row


CHURN_N, CHURN_DELETES = 50_000, 200


def bench_churn(backend: str, d: int, seed: int, repeats: int = 5) -> dict[str, object]:
    """200 single deletes on a fresh HSR of 50,000 points and on one that lost every point and
    got 50,000 back (medians over ``repeats`` rounds, the two side by side in each): the second
    must cost about the same, with no rebuild per delete."""
    keys = gaussian_keys(CHURN_N, d, seed)

    def deletes(hsr: HSR, ids: np.ndarray) -> float:
        start = time.perf_counter()
        for i in ids[:CHURN_DELETES]:
            hsr.delete([i])
        return time.perf_counter() - start

    fresh_s, churned_s = [], []
    for _ in range(repeats):
        fresh = HSR(keys, backend=backend)
        fresh_s.append(deletes(fresh, np.arange(CHURN_N)))
        churned = HSR(keys, backend=backend)
        churned.delete(np.arange(CHURN_N))
        churned_s.append(deletes(churned, churned.add(keys)))
    row: dict[str, object] = {"backend": backend, "n": CHURN_N, "d": d,
                              "deletes": CHURN_DELETES}
    row.update(timing("fresh", fresh_s) | timing("after_churn", churned_s))
    row["churn_over_fresh"] = float(np.median(churned_s) / np.median(fresh_s))
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small n, few repeats")
    parser.add_argument("--min-log2n", type=int, default=14)
    parser.add_argument("--max-log2n", type=int, default=22)
    parser.add_argument("--dims", type=int, nargs="+", default=list(DIMS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--out", default="hsr", help="results/<out>.{csv,md}")
    args = parser.parse_args(argv)
    lo, hi = (10, 12) if args.quick else (args.min_log2n, args.max_log2n)
    repeats, n_queries = (3, 3) if args.quick else (15, 5)
    header = provenance_header(args.seed, argv)
    print(header)
    rows = []
    for log2n in range(lo, hi + 1, 2):
        for d in args.dims:
            rows.append(bench_cell(2**log2n, d, repeats, n_queries, args.seed, args.dtype))
            print_table(rows[-1:], header=len(rows) == 1)
    print()
    print_table(rows)
    notes = (f"{args.dtype} keys; brute = the {args.dtype} scan. Each method timed in its own "
             f"block of {repeats} repeats per query (the reference backend: a fifth, at least 3; "
             "warm caches: the secondary protocol; "
             "bench_float32.py times them alternately), over "
             f"{n_queries} unit-norm queries; *_ms is the median of all those calls. t = "
             "sqrt(0.4 ln n). speedup = brute time / numpy (or compiled) time (higher is "
             "better). Index memory counts every array the tree holds, its copy of the keys "
             f"included. {SPREAD_NOTE}")
    churn = [bench_churn(backend, 2, args.seed) for backend in ("numpy", "brute")]
    print()
    print_table(churn)
    if not args.quick:
        paths = write_results(args.out, rows, header, notes)
        paths += write_results("hsr_churn", churn, header, (
            f"{CHURN_DELETES} single deletes, on a fresh HSR of {CHURN_N} Gaussian points and on "
            f"one whose points were all deleted and {CHURN_N} added back, medians over 5 rounds; "
            f"ratio near 1 = amortised. {SPREAD_NOTE}"))
        print("wrote", *paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
