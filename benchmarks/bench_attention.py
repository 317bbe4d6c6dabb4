"""ReLU attention with the KV cache in an HSR structure, against the dense computation.

Decoding: one step is one query row over a cache of n keys. HSR: the half-space query (NumPy
kd-tree) plus the exact row over the k reported keys (``Decoder.attend``). Dense: the scores of
all n keys with one matvec, the check of the scores near b that the HSR row makes too
(``attention.scores.settle``), ReLU, normalise, weighted sum (``Decoder.attend_dense``, which is
``dense.py`` on one row). Scan: the
dense scan ``K q >= sqrt(d) b`` followed by the same exact row over the k keys it finds (the
``brute`` backend: what ``backend="auto"`` does for blocks under ``hsr.auto.MIN_N`` keys or
wider than ``hsr.auto.MAX_D``).
Gaussian keys and values (std 1), unit-norm Gaussian queries, alpha = 1,
b = paper_threshold(n, sigma_a) with sigma_a = ||q|| / sqrt(d), so that about n^{4/5} keys are
activated. Times are medians of ``--repeats`` calls after a warm-up, per query, then the
median over the queries; the three methods are timed side by side, query by query, in one run.

Causal prefill: ``relu_attention(..., causal=True)`` with method="hsr" (one static HSR over
the n keys, every row asked at once with ``HSR.query_many``, the keys j > i it reports dropped;
backend "auto", and the NumPy kd-tree for d <= 4) against method="dense".

    python benchmarks/bench_attention.py            # n = 2^14 .. 2^22 (tens of minutes)
    python benchmarks/bench_attention.py --quick    # n = 2^12 .. 2^14, a smoke run (not saved)
    python benchmarks/bench_attention.py --prefill-only --out attention_prefill
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time

import numpy as np
from _common import RESULTS, gaussian_keys, machine_header, median_time, print_table, unit_queries

from hsr_lab.attention import Decoder, relu_attention
from hsr_lab.theory import paper_threshold, score_sigma

DECODE_DIMS = (2, 4, 8, 64)
PREFILL_DIMS = (2, 4, 64)
PREFILL_TREE_MAX_D = 4  # the kd-tree prefill above this is hopeless (see the decoding table)
PREFILL_COLUMNS = ("n", "d", "k_mean", "dense_s", "auto_s", "numpy_s", "dense_over_auto",
                   "dense_over_numpy", "products_share_auto", "products_share_numpy")
DECODE_COLUMNS = ("n", "d", "k", "hsr_ms", "scan_ms", "dense_ms", "dense_over_hsr",
                  "dense_over_scan", "build_s", "append_ms", "nodes_visited_share",
                  "scored_share", "note")


def threshold(n: int, d: int) -> float:
    """b = sigma_a sqrt(0.4 ln n), sigma_a = ||q|| / sqrt(d) for unit queries and std-1 keys."""
    return float(paper_threshold(n, score_sigma(1.0, 1.0, d)))


def tree_nodes(decoder: Decoder) -> int:
    """Nodes in the kd-trees of the decoder's HSR structure."""
    return sum(len(getattr(block, "start", ())) for block in decoder.hsr.blocks)  # type: ignore


def decode_cell(n: int, d: int, args: argparse.Namespace, seed: int) -> dict[str, object]:
    """One (n, d) cell: build, check, then time the HSR, scan and dense steps side by side."""
    row: dict[str, object] = dict.fromkeys(DECODE_COLUMNS, "-")
    row.update(n=f"2^{int(np.log2(n))}", d=d)
    if n * d * 8 > args.max_bytes:
        row["note"] = f"skipped: keys take {n * d * 8 / 2**30:.1f} GiB > --max-bytes"
        return row
    keys, values = gaussian_keys(n, d, seed), gaussian_keys(n, d, seed + 1)
    b = threshold(n, d)
    start = time.perf_counter()
    hsr = Decoder(d, alpha=1, b=b, keys=keys, values=values, backend="numpy")
    build = time.perf_counter() - start
    scan = Decoder(d, alpha=1, b=b, keys=keys, values=values, backend="brute")
    del keys, values
    times: dict[str, list[float]] = {"hsr": [], "scan": [], "dense": []}
    found, visited, scored = [], [], []
    for q in unit_queries(args.queries, d, seed + 2):
        out, stats = hsr.attend(q)
        expected, dense_stats = hsr.attend_dense(q)
        if not np.allclose(out, expected, rtol=1e-10, atol=1e-13):  # exactness, loudly
            raise AssertionError(f"HSR row differs from the dense row at n={n}, d={d}")
        assert stats.activated[0] == dense_stats.activated[0]
        found.append(int(stats.activated[0]))
        visited.append(int(stats.nodes_visited[0]))
        scored.append(int(stats.inner_products[0]))
        for name, step in (("hsr", hsr.attend), ("scan", scan.attend),
                           ("dense", hsr.attend_dense)):
            times[name].append(median_time(lambda s=step, q=q: s(q), args.repeats))
    ms = {name: 1e3 * float(np.median(t)) for name, t in times.items()}
    row.update(k=int(np.median(found)), hsr_ms=ms["hsr"], scan_ms=ms["scan"],
               dense_ms=ms["dense"], dense_over_hsr=ms["dense"] / ms["hsr"],
               dense_over_scan=ms["dense"] / ms["scan"], build_s=build,
               append_ms=1e3 * append_time(hsr, d, seed + 3),
               nodes_visited_share=float(np.median(visited)) / tree_nodes(hsr),
               scored_share=float(np.median(scored)) / n, note="")
    return row


def append_time(decoder: Decoder, d: int, seed: int, count: int = 64) -> float:
    """Median seconds of ``append`` (HSR.add of one key) over ``count`` keys, after one first
    append that doubles the cache arrays (an O(n) copy that n appends share)."""
    new = gaussian_keys(count + 1, d, seed)
    decoder.append(new[0], new[0])
    times = []
    for k in new[1:]:
        start = time.perf_counter()
        decoder.append(k, k)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def prefill_cell(n: int, d: int, seed: int) -> dict[str, object]:
    """Causal prefill of n queries: method="hsr" (backend auto, and the NumPy kd-tree for
    d <= 4) against method="dense", each checked against dense, then timed."""
    keys, values = gaussian_keys(n, d, seed), gaussian_keys(n, d, seed + 1)
    queries = unit_queries(n, d, seed + 2)
    b = threshold(n, d)
    repeats = 3 if n <= 2**12 else 1
    variants = {"dense": ("dense", "auto"), "auto": ("hsr", "auto")}
    if d <= PREFILL_TREE_MAX_D:
        variants["numpy"] = ("hsr", "numpy")
    row: dict[str, object] = dict.fromkeys(PREFILL_COLUMNS, "-")
    row.update(n=f"2^{int(np.log2(n))}", d=d)
    for name, (method, backend) in variants.items():  # dense first: the others' oracle
        def run(method=method, backend=backend):
            return relu_attention(queries, keys, values, 1, b, causal=True, method=method,
                                  backend=backend, return_stats=True)
        out, stats = run()
        if name == "dense":
            expected, dense_stats = out, stats
            row["k_mean"] = dense_stats.total_activated / n
        elif not np.allclose(out, expected, rtol=1e-10, atol=1e-13):
            raise AssertionError(f"causal {name} differs from dense at n={n}, d={d}")
        row[f"{name}_s"] = median_time(run, repeats, warmup=0)
        if name != "dense":
            row[f"products_share_{name}"] = (stats.total_inner_products
                                             / dense_stats.total_inner_products)
    for name in ("auto", "numpy"):
        if name in variants:
            row[f"dense_over_{name}"] = row["dense_s"] / row[f"{name}_s"]  # type: ignore
    return row


def write(decode: list[dict[str, object]], prefill: list[dict[str, object]], header: str,
          notes: str, name: str = "attention") -> None:
    """results/<name>.csv (both tables, a ``regime`` column) and results/<name>.md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    tables = {regime: rows for regime, rows in (("decode", decode), ("prefill", prefill))
              if rows}
    keys = ["regime", *dict.fromkeys(k for rows in tables.values() for r in rows for k in r)]
    with open(RESULTS / f"{name}.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys, restval="")
        writer.writeheader()
        for regime, rows in tables.items():
            writer.writerows({"regime": regime, **r} for r in rows)
    lines = [header.lstrip("# "), "", notes]
    for regime, rows in tables.items():
        cols = list(dict.fromkeys(k for r in rows for k in r))
        lines += ["", f"## {regime}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")


def _fmt(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


NOTES = """Decoding: hsr = HSR query (NumPy kd-tree) + exact row over the k activated keys;
scan = dense scan K q >= sqrt(d) b + the same exact row (the brute backend); dense = all n
scores, ReLU, normalise, weighted sum. Every HSR row is checked against the dense row.
Times: median over the queries of the median of the repeats. build = the NumPy kd-tree over
the cache. nodes_visited_share = tree nodes tested / nodes in the trees; scored_share = inner
products (leaf points scored by the query + the exact row) / n. append_ms = median of 64
Decoder.append calls (HSR.add of one key).
Prefill: causal relu_attention, method="dense" against method="hsr": one static HSR over the
n keys asked for every row at once (HSR.query_many), the keys j > i it reports dropped before
the exact rows. backend="auto" times 64 of the batch's rows on the kd-tree and on the scan and
keeps the faster (d <= 16; the scan reports from all n keys: twice the products of dense);
numpy = the NumPy kd-tree (d <= 4).
products_share = inner products of the HSR method (the query's, keys j > i included, and the
exact rows') / those of dense (n(n+1)/2). One run each from n = 2^14 on, median of 3 below."""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 2^12 .. 2^14, prefill 2^10")
    parser.add_argument("--max-log2n", type=int, default=None, help="largest log2 n of decoding")
    parser.add_argument("--max-bytes", type=float, default=1.5e9,
                        help="skip decoding cells whose keys take more bytes (default 1.5e9)")
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per query")
    parser.add_argument("--queries", type=int, default=5, help="different queries per cell")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prefill-only", action="store_true", help="skip the decoding table")
    parser.add_argument("--out", default="attention",
                        help="write results/<OUT>.csv and .md (default: attention)")
    args = parser.parse_args(argv)
    low, high = (12, 14) if args.quick else (14, 22)
    high = min(high, args.max_log2n) if args.max_log2n else high
    if args.prefill_only:
        high = low - 1
    prefill_sizes = [2**10] if args.quick else [2**10, 2**12, 2**14, 2**16]
    header = f"{machine_header()} | load average {os.getloadavg()[0]:.2f} at the start"
    print(header, flush=True)
    decode = []
    for i, log2n in enumerate(range(low, high + 1)):
        for d in DECODE_DIMS:
            decode.append(decode_cell(2**log2n, d, args, args.seed + 10 * i))
            print_table(decode[-1:], header=len(decode) == 1)
    prefill = []
    for n in prefill_sizes:
        for d in PREFILL_DIMS:
            prefill.append(prefill_cell(n, d, args.seed + n))
            print_table(prefill[-1:], header=len(prefill) == 1)
    load = f"Load average {os.getloadavg()[0]:.2f} at the end (2 cores are shared: noisy)."
    if not args.quick:  # a smoke run leaves the committed tables alone, as the other scripts do
        write(decode, prefill, header, f"{NOTES}\n{load}", args.out)
        print(f"wrote {RESULTS / (args.out + '.csv')} and {RESULTS / (args.out + '.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
