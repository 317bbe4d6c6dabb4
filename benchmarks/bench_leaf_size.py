"""Leaf sizes for the walk that uses them: the compiled kd-tree (``hsr.TREE`` where Numba is
installed, what ``backend="auto"`` builds) at several leaf sizes.

Per (n, d, dtype, leaf size): Gaussian keys, unit queries at t = sqrt(0.4 ln n), one BLAS
thread. ``query_us``: a lone query as ``HSR.query`` answers it (ids ascending), the leaf sizes
timed in interleaved rounds, the median of every call (every query, every round);
``batch_ms``: ``query_many`` of ``BATCH`` rows (``sort=False``, as attention asks), the same;
each with its interquartile range beside it (``_iqr_us``, ``_iqr_ms``); ``mem``: index bytes
over key bytes. The best leaf size
of each (n, d, dtype) is marked in ``best_query`` and ``best_batch``; ``over_best`` columns
give each size's median over the best median of its cell.

A second table (``leaf_size_prefill``) times causal ReLU prefill through the same tree
(``relu_attention(..., causal=True, method="hsr")``) with its structures' leaves
(``attention.scores.BATCH_LEAF_SIZE``, set here for the measurement) at each size.

    python benchmarks/bench_leaf_size.py             # n = 2^20, 2^22; d = 2, 3, 4, 8
    python benchmarks/bench_leaf_size.py --quick     # a smoke run (not saved)
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
from hsr_lab.attention import batch, positions, relu_attention
from hsr_lab.hsr import TREE
from hsr_lab.theory import paper_threshold, score_sigma

LEAVES = (16, 32, 64, 128, 256)
BATCH = 64


def interleaved(fns: dict[int, object], rounds: int) -> dict[int, list[float]]:
    """Seconds of each call of each function over rounds, the order reversed every other
    round."""
    times: dict[int, list[float]] = {key: [] for key in fns}
    keys = list(fns)
    for r in range(rounds):
        for key in keys if r % 2 == 0 else keys[::-1]:
            start = time.perf_counter()
            fns[key]()  # type: ignore[operator]
            times[key].append(time.perf_counter() - start)
    return times


def cell(n: int, d: int, dtype: str, queries: int, rounds: int, seed: int
         ) -> list[dict[str, object]]:
    """Every leaf size on the same keys and queries."""
    K = np.random.default_rng(seed).standard_normal((n, d), dtype=np.float32).astype(dtype)
    t = float(paper_threshold(n))
    Q = unit_queries(max(queries, BATCH), d, seed + 1)
    trees = {leaf: HSR(K, backend=TREE.name, leaf_size=leaf) for leaf in LEAVES}
    want = trees[LEAVES[0]].query(Q[0], t)
    for leaf, hsr in trees.items():
        if not np.array_equal(hsr.query(Q[0], t), want):
            raise AssertionError(f"leaf {leaf} disagrees at n={n}, d={d}")
    lone: dict[int, list[float]] = {leaf: [] for leaf in LEAVES}
    for q in Q[:queries]:
        for leaf, secs in interleaved({leaf: (lambda h=h, q=q: h.query(q, t))
                                       for leaf, h in trees.items()}, rounds).items():
            lone[leaf] += secs
    batches = interleaved({leaf: (lambda h=h: h.query_many(Q[:BATCH], t, sort=False))
                           for leaf, h in trees.items()}, max(3, rounds // 2))
    one = {leaf: float(np.median(v)) for leaf, v in lone.items()}
    many = {leaf: float(np.median(v)) for leaf, v in batches.items()}
    rows = []
    for leaf, hsr in trees.items():
        rows.append({"n": f"2^{int(np.log2(n))}", "d": d, "dtype": dtype, "leaf": leaf,
                     **timing("query", lone[leaf], "us"),
                     "query_over_best": one[leaf] / min(one.values()),
                     **timing("batch", batches[leaf]),
                     "batch_over_best": many[leaf] / min(many.values()),
                     "mem": hsr.nbytes / K.nbytes,
                     "best_query": "*" if one[leaf] == min(one.values()) else "",
                     "best_batch": "*" if many[leaf] == min(many.values()) else ""})
    return rows


def prefill_cell(n: int, d: int, rounds: int, seed: int) -> list[dict[str, object]]:
    """Causal prefill through hsr.TREE with the structures' leaves at each size."""
    rng = np.random.default_rng(seed)
    K, V = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    Q = unit_queries(n, d, seed + 1)
    b = float(paper_threshold(n, score_sigma(1.0, 1.0, d)))

    def run(leaf: int) -> None:
        batch.BATCH_LEAF_SIZE = positions.BATCH_LEAF_SIZE = leaf
        relu_attention(Q, K, V, 1, b, causal=True, method="hsr", backend=TREE.name)

    saved = positions.BATCH_LEAF_SIZE
    try:
        calls = interleaved({leaf: (lambda leaf=leaf: run(leaf)) for leaf in LEAVES}, rounds)
    finally:
        batch.BATCH_LEAF_SIZE = positions.BATCH_LEAF_SIZE = saved
    sec = {leaf: float(np.median(v)) for leaf, v in calls.items()}
    return [{"n": f"2^{int(np.log2(n))}", "d": d, "leaf": leaf,
             **timing("prefill", calls[leaf], "s"), "over_best": sec[leaf] / min(sec.values()),
             "best": "*" if sec[leaf] == min(sec.values()) else ""} for leaf in LEAVES]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 2^14, d = 2, few rounds")
    parser.add_argument("--log2n", type=int, nargs="+", default=[20, 22])
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 3, 4, 8])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sizes, dims = ([14], [2]) if args.quick else (args.log2n, args.dims)
    queries, rounds = (2, 3) if args.quick else (7, 10)
    header = provenance_header(args.seed, argv)
    print(header)
    rows: list[dict[str, object]] = []
    for dtype in args.dtypes:
        for log2n in sizes:
            for d in dims:
                new = cell(2**log2n, d, dtype, queries, rounds, args.seed)
                print_table(new, header=not rows)
                rows += new
    prefill: list[dict[str, object]] = []
    for log2n in [12] if args.quick else [14, 16]:
        for d in [2] if args.quick else [2, 4]:
            new = prefill_cell(2**log2n, d, 1 if args.quick or log2n > 14 else 3, args.seed)
            print_table(new, header=not prefill)
            prefill += new
    notes = (f"The kd-tree auto builds ({TREE.name}) at leaf sizes {list(LEAVES)}. query_us: "
             f"HSR.query (ids ascending), the median of every call over {queries} unit "
             f"queries x {rounds} interleaved rounds; batch_ms: query_many of {BATCH} rows, "
             f"sort=False, {max(3, rounds // 2)} rounds; mem: HSR.nbytes / key bytes. "
             f"{SPREAD_NOTE}")
    if not args.quick:
        print("wrote", *write_results("leaf_size", rows, header, notes))
        print("wrote", *write_results("leaf_size_prefill", prefill, header, (
            "Causal ReLU prefill, relu_attention(causal=True, method='hsr', backend="
            f"'{TREE.name}'), with scores.BATCH_LEAF_SIZE set to each leaf size; median of "
            f"interleaved rounds (3 at n = 2^14, 1 at 2^16). {SPREAD_NOTE}")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
