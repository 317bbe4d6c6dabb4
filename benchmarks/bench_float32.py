"""Keys in their own dtype: the kd-tree and "auto" against the scan a user would write.

Per (n, d) and key dtype (float32, float64): Gaussian keys stored in that dtype, unit queries,
t = sqrt(0.4 ln n), one BLAS thread everywhere (faiss's OpenMP too). Methods, timed side by
side in one run (interleaved in balanced orders, ``balanced_orders``; the headline protocol:
each method starts a query with what the method before it left in the caches). Every ``_ms``
column is the median of all timed calls of the cell (every query, every round), with their
interquartile range beside it (``_iqr_ms``):

- ``scan``: ``np.flatnonzero(K @ q >= t)`` in the keys' dtype (for a batch, ``Q K^T >= t`` in
  chunks of columns), the baseline;
- ``faiss``: ``IndexFlatIP.range_search`` on the float32 keys (float32 tables only; timed
  raw, without the exact filter a caller would add, so the comparison is conservative);
- ``tree``: ``HSR(K, backend="numpy")``, the NumPy walk; ``compiled``:
  ``HSR(K, backend="compiled")``, the same tree walked by Numba-compiled loops (where Numba is
  installed); ``auto``: ``HSR(K, backend="auto")``, which races ``hsr.TREE`` (the compiled
  tree where Numba is installed) against the scans.

Single queries and batches of ``BATCH`` rows (``query_many``). ``auto_over_best`` is auto's
time over the fastest of the others (the target: <= 1.1); ``tree_speedup`` is scan time
over tree time, ``compiled_speedup`` the same for the compiled walk (the targets, for float32
at n = 2^22: >= 10 at d = 2, 8 at d = 3 and 6 at d = 4, and a build of at most 3 s at d = 4).
``copy_scan`` is the plain scan again, over auto's own copy of the keys: a diagnostic, not a
method (two copies of the same keys can scan at different speeds, by where their memory lies,
so ``auto_over_copy_scan`` separates auto's own overhead from that). ``auto_plan`` is what auto
chose (``HSR.plan``) for lone queries and for the batch.

Where the sorted answer's time goes (compiled tree, where Numba is installed): ``walk_ms`` is
the tree's own query (ids in tree order), ``sort_ms`` the sort of its answer into ascending ids
(``csr.ascending``), ``call_ms`` the whole ``HSR.query`` (ascending ids), ``write_ms`` the cost
of writing the k ids once (a copy of the answer: the floor any exact reporting query pays), and
``call_over_walk`` = call / walk (the target: at most 1.25 at n = 2^22, d <= 4). The same for
the batch: ``batch_walk_ms`` (``query_many(sort=False)``), ``batch_call_ms`` (ascending rows)
and ``batch_call_over_walk``. ``index_mem`` is
``HSR(backend="numpy").nbytes`` (the tree's copy of the keys, ids and nodes) over the keys'
bytes, ``compiled_mem`` the same for the compiled tree (24-bit ids; the target: <= 1.5 for
float32 keys). Every answer of tree and auto is checked against the float64 evaluation on the
stored values before timing.

    python benchmarks/bench_float32.py                   # n = 2^18, 2^20, 2^22; d = 2 .. 128
    python benchmarks/bench_float32.py --quick           # a smoke run
    python benchmarks/bench_float32.py --log2n 22 --dims 2 3 4 --dtypes float32 --out hsr_targets
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

# faiss's OpenMP threads must not spin after a call: on a shared machine the spinning steals the
# core from whatever is timed next. Set before anything loads an OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
from hsr_lab.hsr import compiled
from hsr_lab.hsr.brute import l1_reach, scan
from hsr_lab.hsr.csr import ascending
from hsr_lab.optional import available
from hsr_lab.theory import paper_threshold

DIMS = (2, 3, 4, 8, 16, 32, 64, 128)
BATCH = 64
TARGETS = {2: 10.0, 3: 8.0, 4: 6.0}  # float32 tree speed-up over the float32 scan, n = 2^22
MEMORY_TARGET = 1.5  # float32 index bytes over key bytes
BUILD_TARGET_S = 3.0  # float32 tree build at d = 4, n = 2^22
AUTO_TARGET = 1.1
SORT_TARGET = 1.25  # the sorted answer over the walk alone, n = 2^22, d <= 4
WARM_QUERIES = 3  # lone queries every method answers before timing (caches, first calls)
TREE_MAX_BYTES = 2**30  # no tree (build buffers ~4x the keys) over keys larger than this
CELL_MAX_BYTES = 5 * 2**30  # cells whose keys, auto's copy and faiss's copy exceed this: skipped
_CHUNK = 1 << 21  # score entries of one batch-scan chunk


def scan_many(K: np.ndarray, Q: np.ndarray, t: float) -> list[np.ndarray]:
    """The plain batch scan ``Q K^T >= t`` in K's dtype, by column chunks: (rows, cols) of each
    chunk (``flatnonzero`` and a divmod: ``np.nonzero`` of a 2-D mask is several times slower)."""
    Qd = Q.astype(K.dtype)
    step = max(1, _CHUNK // len(Q))
    return [np.divmod(np.flatnonzero(Qd @ K[s:s + step].T >= t), min(step, len(K) - s))
            for s in range(0, len(K), step)]


def exact(K: np.ndarray, q: np.ndarray, t: float) -> np.ndarray:
    """The keys with ``<q, k> >= t`` exactly (``hsr.numerics``): ``brute.scan``, the scan the
    tests check against fractions (in the keys' dtype, a chunk at a time)."""
    return scan(K, q, t, l1_reach(K), float(np.abs(K).max()))


def balanced_orders(k: int) -> list[list[int]]:
    """Orders of k methods in which every method directly follows every other one equally
    often (a Williams design: k rounds for even k, 2k for odd k). Rotating one order does not
    do this: with scan, faiss, auto, tree rotated and reversed, auto followed faiss in 6 of 8
    calls, and a call right after faiss's measured about 25% slower whatever it was."""
    first, lo, hi = [0], 1, k - 1
    while len(first) < k:
        first.append(lo)
        lo += 1
        if len(first) < k:
            first.append(hi)
            hi -= 1
    orders = [[(i + r) % k for i in first] for r in range(k)]
    return orders + [order[::-1] for order in orders] if k % 2 else orders


def interleaved(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Seconds of each call of each function, all of them called once per round, in the rounds'
    ``balanced_orders`` (so that no method follows any one other more often than the rest)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    orders = balanced_orders(len(names))
    for r in range(rounds):
        for i in orders[r % len(orders)]:
            start = time.perf_counter()
            fns[names[i]]()
            times[names[i]].append(time.perf_counter() - start)
    return times


def faiss_index(K: np.ndarray) -> object | None:
    """A faiss IndexFlatIP over float32 keys (one thread), or None where faiss is missing."""
    if K.dtype != np.float32 or not available("faiss"):
        return None
    import faiss

    faiss.omp_set_num_threads(1)
    index = faiss.IndexFlatIP(K.shape[1])
    index.add(K)
    return index


def build(keys: np.ndarray, backend: str) -> tuple[HSR, float]:
    start = time.perf_counter()
    hsr = HSR(keys, backend=backend)
    return hsr, time.perf_counter() - start


def fits(n: int, d: int, dtype: type) -> bool:
    """Whether a cell's keys, auto's copy of them and faiss's float32 copy fit the budget."""
    key_bytes = n * d * np.dtype(dtype).itemsize
    return 2 * key_bytes + (n * d * 4 if dtype == np.float32 else 0) <= CELL_MAX_BYTES


def bench_cell(n: int, d: int, dtype: type, n_queries: int, rounds: int, seed: int
               ) -> dict[str, object]:
    """Every method on the same keys and queries: single queries, then batches of BATCH."""
    K = np.random.default_rng(seed).standard_normal((n, d), dtype=np.float32).astype(dtype)
    t = float(paper_threshold(n))
    Q = unit_queries(max(n_queries, BATCH, WARM_QUERIES), d, seed + 1)
    structures = {"auto": build(K, "auto")}
    if K.nbytes <= TREE_MAX_BYTES:
        structures["tree"] = build(K, "numpy")
        if compiled.AVAILABLE:
            structures["compiled"] = build(K, "compiled")
    for name, (hsr, _) in structures.items():  # exactness, loudly, before any timing
        for q in Q[:2]:
            if not np.array_equal(hsr.query(q, t), exact(K, q, t)):
                raise AssertionError(f"{name} disagrees with the exact scan at n={n}, d={d}")
    index = faiss_index(K)
    t32 = float(np.float32(t))
    single: dict[str, Callable[[np.ndarray], object]] = {
        "scan": lambda q: np.flatnonzero(K @ q.astype(K.dtype) >= t)}
    batch: dict[str, Callable[[np.ndarray], object]] = {"scan": lambda A: scan_many(K, A, t)}
    if index is not None:
        single["faiss"] = lambda q: index.range_search(q[None, :].astype(np.float32), t32)
        batch["faiss"] = lambda A: index.range_search(A.astype(np.float32), t32)
    for name, (hsr, _) in structures.items():
        single[name] = lambda q, h=hsr: h.query(q, t)
        batch[name] = lambda A, h=hsr: h.query_many(A, t, sort=False)
    auto_hsr = structures["auto"][0]
    if len(auto_hsr.blocks) == 1:  # a diagnostic, not a method: the plain scan over auto's copy
        auto_keys = auto_hsr.blocks[0].points
        single["copy_scan"] = lambda q: np.flatnonzero(auto_keys @ q.astype(K.dtype) >= t)
    A = Q[:BATCH]
    for q in Q[:WARM_QUERIES]:  # warm-up, every method alike, lone queries first
        for fn in single.values():
            fn(q)
    first_batch = time.perf_counter()
    batch["auto"](A)  # auto's first batch of this size: its race, then the answer
    first_batch = time.perf_counter() - first_batch
    for fn in batch.values():  # warm-up
        fn(A)
    calls: dict[str, list[float]] = {name: [] for name in single}  # every query's calls
    for q in Q[:n_queries]:
        for name, secs in interleaved({m: (lambda f=f, q=q: f(q)) for m, f in single.items()},
                                      rounds).items():
            calls[name] += secs
    many_calls = interleaved({m: (lambda f=f: f(A)) for m, f in batch.items()},
                             max(4, rounds // 2))
    one = {name: float(np.median(v)) for name, v in calls.items()}
    many = {name: float(np.median(v)) for name, v in many_calls.items()}
    row: dict[str, object] = {"n": f"2^{int(np.log2(n))}", "d": d,
                              "dtype": np.dtype(dtype).name,
                              "k": int(np.median([len(exact(K, q, t)) for q in Q[:3]]))}
    for label, got, samples in (("", one, calls), ("batch_", many, many_calls)):
        for name in ("scan", "faiss", "tree", "compiled", "auto"):
            row.update(_timing_or_nan(f"{label}{name}", samples.get(name)))
        best = min(v for name, v in got.items() if name not in ("auto", "copy_scan"))
        row[f"{label}auto_over_best"] = got["auto"] / best
    row.update(_timing_or_nan("copy_scan", calls.get("copy_scan")))
    row["auto_over_copy_scan"] = one["auto"] / one.get("copy_scan", float("nan"))
    row["auto_first_batch_ms"] = 1e3 * first_batch  # its race included
    row["auto_plan"] = "; ".join(f"{key.split(',')[0]}: {d.kernel}"
                                 for key, d in auto_hsr.plan.decisions.items())
    row.update(sort_parts(structures, Q[:n_queries], A, t, rounds))
    for name in ("tree", "compiled"):
        row[f"{name}_speedup"] = one["scan"] / one[name] if name in one else float("nan")
    row["build_tree_s"] = structures["tree"][1] if "tree" in structures else float("nan")
    row["build_auto_s"] = structures["auto"][1]
    for name, column in (("tree", "index_mem"), ("compiled", "compiled_mem")):
        row[column] = (structures[name][0].nbytes / K.nbytes if name in structures
                       else float("nan"))
    row["auto_blocks"] = "+".join(sorted({b.name for b in structures["auto"][0].blocks}))
    return row


def _timing_or_nan(name: str, seconds: list[float] | None) -> dict[str, float]:
    """``timing(name, seconds)``, or NaN for both columns where the method did not run."""
    if seconds is None:
        return {f"{name}_ms": float("nan"), f"{name}_iqr_ms": float("nan")}
    return timing(name, seconds)


def sort_parts(structures: dict[str, tuple[HSR, float]], Q: np.ndarray, A: np.ndarray,
               t: float, rounds: int) -> dict[str, float]:
    """Where the compiled tree's sorted answer spends its time (NaN without Numba): its walk,
    the sort, the whole call and writing the ids once, alone and for the batch A."""
    parts = dict.fromkeys(("walk_ms", "walk_iqr_ms", "sort_ms", "sort_iqr_ms", "call_ms",
                           "call_iqr_ms", "write_ms", "write_iqr_ms", "call_over_walk",
                           "batch_walk_ms", "batch_walk_iqr_ms", "batch_call_ms",
                           "batch_call_iqr_ms", "batch_call_over_walk"), float("nan"))
    if "compiled" not in structures:
        return parts
    hsr = structures["compiled"][0]
    (tree,) = hsr.blocks
    times: dict[str, list[float]] = {name: [] for name in ("walk", "sort", "call", "write")}
    for q in Q:
        found = tree.query(q, t)[0]
        for name, sec in interleaved({"walk": lambda q=q: tree.query(q, t),
                                      "sort": lambda f=found: ascending(f, hsr._n_ids),
                                      "call": lambda q=q: hsr.query(q, t),
                                      "write": lambda f=found: f.copy()}, rounds).items():
            times[name] += sec
    for name, sec in times.items():
        parts.update(timing(name, sec))
    parts["call_over_walk"] = parts["call_ms"] / parts["walk_ms"]
    many = interleaved({"walk": lambda: hsr.query_many(A, t, sort=False),
                        "call": lambda: hsr.query_many(A, t)}, max(4, rounds // 2))
    parts.update(timing("batch_walk", many["walk"]) | timing("batch_call", many["call"]))
    parts["batch_call_over_walk"] = float(np.median(many["call"]) / np.median(many["walk"]))
    return parts


def verdicts(rows: list[dict[str, object]]) -> list[str]:
    """The targets, each marked met or missed (never lowered)."""
    out = []
    for row in rows:
        d, big, f32 = int(row["d"]), row["n"] == "2^22", row["dtype"] == "float32"
        if f32 and big and d in TARGETS:
            for name in ("tree", "compiled"):
                speedup = float(row[f"{name}_speedup"])
                ok = speedup >= TARGETS[d]
                out.append(f"{'met   ' if ok else 'MISSED'} {name} >= {TARGETS[d]:g}x the "
                           f"float32 scan at d = {d}: {speedup:.2f}x")
        if f32 and not np.isnan(float(row["compiled_mem"])):
            ok = float(row["compiled_mem"]) <= MEMORY_TARGET
            out.append(f"{'met   ' if ok else 'MISSED'} compiled index <= {MEMORY_TARGET:g}x "
                       f"the keys (n = {row['n']}, d = {d}): {float(row['compiled_mem']):.3f}x")
        if big and d in TARGETS and not np.isnan(float(row["call_over_walk"])):
            for label in ("", "batch_"):
                ratio = float(row[f"{label}call_over_walk"])
                ok = ratio <= SORT_TARGET
                out.append(f"{'met   ' if ok else 'MISSED'} ascending ids <= {SORT_TARGET:g}x "
                           f"the walk ({label or 'single '}{row['dtype']}, d = {d}): "
                           f"{ratio:.2f}x")
        if f32 and big and d == 4:
            ok = float(row["build_tree_s"]) <= BUILD_TARGET_S
            out.append(f"{'met   ' if ok else 'MISSED'} build <= {BUILD_TARGET_S:g} s at d = 4: "
                       f"{float(row['build_tree_s']):.2f} s")
        for label in ("", "batch_"):
            ratio = float(row[f"{label}auto_over_best"])
            if ratio > AUTO_TARGET:
                out.append(f"MISSED auto <= {AUTO_TARGET}x best ({label or 'single'} "
                           f"{row['dtype']} n = {row['n']}, d = {d}): {ratio:.2f}x")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small n, few repeats")
    parser.add_argument("--log2n", type=int, nargs="+", default=[18, 20, 22])
    parser.add_argument("--dims", type=int, nargs="+", default=list(DIMS))
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="hsr", help="results/<out>_<dtype>.{csv,md}")
    parser.add_argument("--rounds", type=int, default=12,
                        help="interleaved rounds per query (a multiple of the methods, 2x for "
                             "an odd number, lets every method follow every other one alike: "
                             "12 for the six float32 single-query ones)")
    args = parser.parse_args(argv)
    sizes = [12] if args.quick else args.log2n
    dims = [2, 8] if args.quick else args.dims
    n_queries, rounds = (2, 3) if args.quick else (7, args.rounds)
    header = provenance_header(args.seed, argv)
    print(header)
    paths = []
    for dtype in args.dtypes:
        rows = []
        for log2n in sizes:
            for d in dims:
                if not fits(2**log2n, d, np.dtype(dtype).type):
                    print(f"skipped {dtype} n = 2^{log2n}, d = {d}: over the memory budget")
                    continue
                rows.append(bench_cell(2**log2n, d, np.dtype(dtype).type, n_queries, rounds,
                                       args.seed))
                print_table(rows[-1:], header=len(rows) == 1)
        print()
        print_table(rows)
        print(*verdicts(rows), sep="\n")
        notes = (f"{dtype} keys. Single queries: the median of every call over {n_queries} "
                 f"unit queries x {rounds} interleaved rounds (every method answers "
                 f"{WARM_QUERIES} lone queries first); batches: {BATCH} rows per call, "
                 f"{max(4, rounds // 2)} rounds (auto_first_batch_ms: auto's first, its batch "
                 "race included; one call, no spread). "
                 "walk/sort/call/write: the compiled tree's own query, the sort of its answer "
                 "(csr.ascending), HSR.query (ascending ids), a copy of the k ids (the floor "
                 "of any reporting query); call_over_walk = call / walk (target <= 1.25), "
                 "batch_* the same for query_many of the batch (sort=False and ascending). "
                 "auto_plan: HSR.plan's decisions. "
                 "scan = np.flatnonzero(K @ q >= t) in the keys' dtype; faiss = raw "
                 "IndexFlatIP.range_search (float32 only, no exact filter); tree = "
                 "HSR(backend='numpy'); compiled = HSR(backend='compiled') (Numba); auto = "
                 "HSR(backend='auto'). auto_over_best = auto / "
                 "fastest other method (target <= 1.1). copy_scan = the same plain scan over "
                 "auto's own copy of the keys (a diagnostic, not a method: two copies of the "
                 "same keys can scan at different speeds, by where their memory lies); "
                 "auto_over_copy_scan = auto / copy_scan. Cells whose keys plus auto's and "
                 f"faiss's copies exceed {CELL_MAX_BYTES / 2**30:g} GiB are skipped. "
                 "tree_speedup = scan / tree, compiled_speedup = scan / compiled. index_mem "
                 "= tree bytes / key bytes, compiled_mem the same for the compiled tree. "
                 "nan: not run (no faiss for float64 keys; no tree "
                 f"over keys larger than {TREE_MAX_BYTES / 2**30:g} GiB, for memory). "
                 f"{SPREAD_NOTE}")
        if not args.quick:
            paths += write_results(f"{args.out}_{dtype}", rows, header, notes)
    if paths:
        print("wrote", *paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
