"""Half-space reporting measured against the peers: faiss, ball-tree reductions, Quest pages.

Per (data, n, d): every structure is built once on the same keys; per threshold kind it answers
the same unit-norm Gaussian queries. Data: "gaussian" (i.i.d. N(0, 1)), "clustered" (a mixture
of 300 Gaussians) and "anisotropic" (three directions with 10x the spread, randomly rotated).
Thresholds: "paper" t = sqrt(0.4 ln n) * scale (scale = RMS key coordinate) and "top1%" (the
99th percentile of the query's own scores). Every method is exact: each answer is checked
against the scan and any difference stops the run (recall and precision must be 1).

    python benchmarks/bench_peers.py --quick             # a smoke run
    python benchmarks/bench_peers.py --max-log2n 18      # n = 2^14, 2^16, 2^18
    python benchmarks/bench_peers.py                     # n = 2^14 .. 2^20 (long)
    python benchmarks/bench_peers.py --min-log2n 20 --dims 2 3 4 8 --out peers_large
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import numpy as np
from _common import (
    BLAS_THREADS,
    SPREAD_NOTE,
    print_table,
    provenance_header,
    timing,
    unit_queries,
    write_results,
)

from hsr_lab import HSR
from hsr_lab.peers import BallReduction, FaissFlat, QuestPages
from hsr_lab.theory import paper_threshold

DIMS = (2, 3, 4, 8, 16, 32, 64, 128)
DATA = ("gaussian", "clustered", "anisotropic")
OURS = ("auto", "numpy", "brute")
PEERS = ("faiss-flat", "sklearn-ball", "sklearn-kd", "scipy-ckd", "quest")


def make_keys(kind: str, n: int, d: int, seed: int) -> np.ndarray:
    """n keys in R^d of one of the DATA kinds."""
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        return rng.standard_normal((n, d))
    if kind == "clustered":
        centers = rng.standard_normal((300, d))
        spread = rng.uniform(0.05, 0.3, 300)
        which = rng.integers(0, 300, n)
        return centers[which] + spread[which, None] * rng.standard_normal((n, d))
    scales = np.where(np.arange(d) < 3, 10.0, 1.0)
    rotation, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return (rng.standard_normal((n, d)) * scales) @ rotation


def builders(keys: np.ndarray) -> dict[str, Callable[[], object]]:
    """Every method, as a function that builds it over the keys."""
    out: dict[str, Callable[[], object]] = {
        name: (lambda b=name: HSR(keys, backend=b)) for name in OURS}
    out["faiss-flat"] = lambda: FaissFlat(keys)
    for kind in ("sklearn-ball", "sklearn-kd", "scipy-ckd"):
        out[kind] = lambda k=kind: BallReduction(keys, kind=k)
    out["quest"] = lambda: QuestPages(keys)
    return out


def query_times(indexes: dict[str, object], queries: list[tuple[np.ndarray, float]],
                repeats: int) -> dict[str, list[float]]:
    """Per method, the seconds of every timed call, all queries together.

    The methods take turns on each query (in a new random order every round, after one
    untimed call each), so that a busy shared machine, and whatever state the method run just
    before leaves behind (allocator, caches), slows them alike; methods slower than 20 ms a
    query run once.
    """
    calls: dict[str, list[float]] = {name: [] for name in indexes}
    order = np.random.default_rng(0)
    for q, t in queries:
        samples: dict[str, list[float]] = {name: [] for name in indexes}
        for _ in range(repeats):
            for name in order.permutation(list(indexes)):
                index = indexes[name]
                if len(samples[name]) and samples[name][0] > 0.02:
                    continue
                start = time.perf_counter()
                index.query(q, t)
                samples[name].append(time.perf_counter() - start)
        for name, values in samples.items():
            calls[name] += values
    return calls


def check_exact(name: str, index: object, queries: list[tuple[np.ndarray, float]],
                truth: list[np.ndarray], where: str) -> None:
    """Recall and precision 1 against the scan, or stop the run."""
    for (q, t), expected in zip(queries, truth, strict=True):
        got = index.query(q, t)
        if not np.array_equal(got, expected):
            missing = len(np.setdiff1d(expected, got))
            raise AssertionError(f"{name} is not exact at {where}: recall "
                                 f"{1 - missing / max(1, len(expected)):.6f}, "
                                 f"{len(got)} reported, {len(expected)} expected")


def bench_keys(kind: str, n: int, d: int, repeats: int, n_queries: int, seed: int,
               skip: set[str]) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Time every method on one key set; rows for both threshold kinds and the build rows."""
    keys = make_keys(kind, n, d, seed)
    scale = float(np.sqrt((keys**2).mean()))
    dirs = unit_queries(n_queries, d, seed + 1)
    thresholds = {"paper": [float(paper_threshold(n, scale))] * n_queries,
                  "top1%": [float(np.quantile(keys @ q, 0.99)) for q in dirs]}
    query_sets = {name: list(zip(dirs, ts, strict=True)) for name, ts in thresholds.items()}
    truth = {name: [np.flatnonzero(keys @ q >= t) for q, t in qs]
             for name, qs in query_sets.items()}
    indexes, build_rows, auto_kind = {}, [], ""
    for method, build in builders(keys).items():
        if method in skip:
            continue
        start = time.perf_counter()
        indexes[method] = index = build()
        build_s = time.perf_counter() - start
        if method == "auto":
            auto_kind = "+".join(sorted({b.name for b in index.blocks}))
        build_rows.append({"data": kind, "n": f"2^{int(np.log2(n))}", "d": d, "method": method,
                           "build_s": build_s, "mem_over_keys": index.nbytes / keys.nbytes})
        for name, qs in query_sets.items():  # warms the index up, too
            check_exact(method, index, qs, truth[name], f"{kind} n={n} d={d} {name}")
    calls = {name: query_times(indexes, qs, repeats) for name, qs in query_sets.items()}
    rows = []
    for name, per_method in calls.items():
        row: dict[str, object] = {"data": kind, "n": f"2^{int(np.log2(n))}", "d": d,
                                  "threshold": name,
                                  "k": int(np.median([len(e) for e in truth[name]])),
                                  "auto_uses": auto_kind}
        for m in (*OURS, *PEERS):  # nan: skipped
            row.update(timing(m, per_method[m]) if m in per_method
                       else {f"{m}_ms": np.nan, f"{m}_iqr_ms": np.nan})
        ts = {m: float(np.median(s)) for m, s in per_method.items()}
        others = {m: s for m, s in ts.items() if m != "auto"}
        best = min(others, key=others.get)
        row["fastest_other"] = best
        row["auto_over_fastest_other"] = ts["auto"] / others[best]
        row["auto_over_best_of_tree_scan"] = ts["auto"] / min(ts.get("numpy", np.inf),
                                                              ts["brute"])
        rows.append(row)
    return rows, build_rows


def _write(rows: list[dict[str, object]], build_rows: list[dict[str, object]],
           header: str, out: str) -> None:
    """Write results/<out>.{csv,md} and results/<out>_build.{csv,md}."""
    notes = ("Median of every timed call over 5 unit-norm Gaussian queries, the methods "
             "taking turns in random order (one run when a query takes > 20 ms). *_ms: query time; "
             "auto_over_*: auto's time divided by the other's (< 1: auto is faster). "
             "Every method returned exactly the scan's "
             "answer (recall = precision = 1). numpy_ms is nan where the kd-tree was "
             "skipped (d > 32, n > 2^16). Build times and memory: <this name>_build.md. "
             f"BLAS and faiss threads: {BLAS_THREADS}. {SPREAD_NOTE}")
    paths = write_results(out, rows, header, notes)
    paths += write_results(f"{out}_build", build_rows, header,
                           "Build seconds and memory (bytes held / bytes of the float64 "
                           "keys; faiss and the ball trees count their key copies only).")
    print("wrote", *paths)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small n, few dims and repeats")
    parser.add_argument("--min-log2n", type=int, default=14)
    parser.add_argument("--max-log2n", type=int, default=20)
    parser.add_argument("--out", default="peers", help="results/<out>.{csv,md}")
    parser.add_argument("--dims", type=int, nargs="+", default=list(DIMS))
    parser.add_argument("--data", nargs="+", default=list(DATA), choices=DATA)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    try:
        import faiss

        faiss.omp_set_num_threads(BLAS_THREADS)  # the same thread budget as the BLAS scan
    except ImportError:
        pass
    lo, hi = (10, 12) if args.quick else (args.min_log2n, args.max_log2n)
    dims = [2, 8, 64] if args.quick else args.dims
    repeats, n_queries = (3, 3) if args.quick else (args.repeats, 5)
    header = provenance_header(args.seed, argv)
    print(header)
    rows, build_rows = [], []
    for log2n in range(lo, hi + 1, 2):
        for d in dims:
            for kind in args.data:
                # The kd-tree at d > 32 takes minutes to build for a query slower than the scan.
                skip = {"numpy"} if d > 32 and log2n > 16 else set()
                cell, builds = bench_keys(kind, 2**log2n, d, repeats, n_queries, args.seed,
                                          skip)
                rows += cell
                build_rows += builds
                print_table(cell, header=len(rows) == len(cell))
        if not args.quick:  # after every n, so that a long run leaves results behind
            _write(rows, build_rows, header, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
