"""ReLU attention with the KV cache in an HSR structure, against the dense computation.

Decoding: one step is one query row over a cache of n keys. ``Decoder.attend`` with the default
backend "auto" (``hsr.plan.decode``: the dense kernel over a small cache, else the HSR
structure whose blocks ``hsr.plan`` planned, then the exact row over the reported keys), and
with the explicit kd-trees (backend "numpy", and "compiled" where Numba is installed), against
``Decoder.attend_dense`` (``dense.py`` on one row: all n scores with one matvec, the check of
the scores near b, ReLU, normalise, weighted sum).
Gaussian keys and values (std 1), unit-norm Gaussian queries, alpha = 1,
b = paper_threshold(n, sigma_a) with sigma_a = ||q|| / sqrt(d), so that about n^{4/5} keys are
activated. The methods are timed side by side (interleaved), query by query, in one run.

Causal prefill: ``relu_attention(..., causal=True)`` with method="hsr" (keys split by position,
``attention/positions.py``; backend "auto" (``hsr.plan.prefill``), the NumPy kd-tree for
d <= 4 and the compiled one for d <= 8) against method="dense", interleaved.

Both tables show auto's choice against the best: ``best`` names the fastest variant of the
cell and ``auto_over_best`` is auto's time over it (1 where auto ran the best kernel; above
1.2 a missed win), ``auto_kernel`` what auto ran and ``auto_why`` its reason
(``AttentionStats.plan``).

    python benchmarks/bench_attention.py            # n = 2^10, 2^12 .. 2^22 (tens of minutes)
    python benchmarks/bench_attention.py --quick    # n = 2^10 .. 2^12, a smoke run (not saved)
    python benchmarks/bench_attention.py --prefill-only --out attention_prefill
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time

import numpy as np
from _common import (
    RESULTS,
    SPREAD_NOTE,
    csv_header,
    gaussian_keys,
    markdown_header,
    print_table,
    provenance_header,
    timing,
    unit_queries,
)

from hsr_lab.attention import Decoder, relu_attention
from hsr_lab.hsr import compiled
from hsr_lab.theory import paper_threshold, score_sigma

DECODE_DIMS = (2, 4, 8, 16, 32, 64, 128)
PREFILL_DIMS = (2, 4, 8, 64)
TREE_MAX_D = 8  # the explicit kd-tree is timed up to this d (beyond, its build alone is slow)
PREFILL_TREE_MAX_D = 4  # the NumPy kd-tree's prefill up to this d, the compiled one's to 8
PREFILL_COLUMNS = ("n", "d", "k_mean", "dense_s", "dense_iqr_s", "auto_s", "auto_iqr_s",
                   "numpy_s", "numpy_iqr_s", "compiled_s", "compiled_iqr_s",
                   "dense_over_auto", "dense_over_numpy", "dense_over_compiled", "best",
                   "auto_over_best", "auto_kernel", "auto_why", "products_share_numpy")
DECODE_COLUMNS = ("n", "d", "k", "auto_ms", "auto_iqr_ms", "tree_ms", "tree_iqr_ms",
                  "compiled_ms", "compiled_iqr_ms", "dense_ms", "dense_iqr_ms",
                  "dense_over_auto", "dense_over_tree", "dense_over_compiled", "best",
                  "auto_over_best", "auto_kernel", "auto_why", "build_s", "note")


def interleaved(fns: dict[str, object], repeats: int) -> dict[str, list[float]]:
    """Seconds of each call of each function, timed side by side: every round calls each once
    (the order reversed every other round), so that a busy machine slows them alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            fns[name]()  # type: ignore[operator]
            times[name].append(time.perf_counter() - start)
    return times


def threshold(n: int, d: int) -> float:
    """b = sigma_a sqrt(0.4 ln n), sigma_a = ||q|| / sqrt(d) for unit queries and std-1 keys."""
    return float(paper_threshold(n, score_sigma(1.0, 1.0, d)))


def decode_cell(n: int, d: int, args: argparse.Namespace, seed: int) -> dict[str, object]:
    """One (n, d) cell: build, check, then time ``attend`` (backend "auto", the default; and
    the explicit kd-tree for d <= TREE_MAX_D) against ``attend_dense``, side by side."""
    row: dict[str, object] = dict.fromkeys(DECODE_COLUMNS, "-")
    row.update(n=f"2^{int(np.log2(n))}", d=d, note="")
    if n * d * 8 > args.max_bytes:
        row["note"] = f"skipped: keys take {n * d * 8 / 2**30:.2f} GiB > --max-bytes"
        return row
    keys, values = gaussian_keys(n, d, seed), gaussian_keys(n, d, seed + 1)
    b = threshold(n, d)
    start = time.perf_counter()
    decoders = {"auto": Decoder(d, alpha=1, b=b, keys=keys, values=values)}
    row["build_s"] = time.perf_counter() - start
    if d <= TREE_MAX_D:
        decoders["tree"] = Decoder(d, alpha=1, b=b, keys=keys, values=values, backend="numpy")
        if compiled.AVAILABLE:
            decoders["compiled"] = Decoder(d, alpha=1, b=b, keys=keys, values=values,
                                           backend="compiled")
    del keys, values
    dense = decoders["auto"]
    times: dict[str, list[float]] = {name: [] for name in (*decoders, "dense")}
    found, kernels = [], set()
    for q in unit_queries(args.queries, d, seed + 2):
        expected, dense_stats = dense.attend_dense(q)
        for name, decoder in decoders.items():
            out, stats = decoder.attend(q)
            if not np.allclose(out, expected, rtol=1e-10, atol=1e-13):  # exactness, loudly
                raise AssertionError(f"{name} row differs from the dense row at n={n}, d={d}")
            assert stats.activated[0] == dense_stats.activated[0]
            if name == "auto":
                kernels.add(stats.kernel)
                why = stats.plan.why
        found.append(int(dense_stats.activated[0]))
        steps = {name: (lambda dec=dec, q=q: dec.attend(q)) for name, dec in decoders.items()}
        steps["dense"] = lambda q=q: dense.attend_dense(q)
        for name, secs in interleaved(steps, args.repeats).items():
            times[name] += secs  # every call of every query
    for name, secs in times.items():
        row.update(timing(name, secs))
    ms = {name: 1e3 * float(np.median(t)) for name, t in times.items()}
    row.update(k=int(np.median(found)), dense_over_auto=ms["dense"] / ms["auto"],
               auto_kernel="/".join(sorted(kernels)), auto_why=why, **versus_best(ms))
    for name in ("tree", "compiled"):
        if name in ms:
            row[f"dense_over_{name}"] = ms["dense"] / ms[name]
    return row


def prefill_cell(n: int, d: int, seed: int) -> dict[str, object]:
    """Causal prefill of n queries: method="hsr" (backend auto, and the NumPy and compiled
    kd-trees for d <= PREFILL_TREE_MAX_D) against method="dense", each checked against dense,
    then timed side by side."""
    keys, values = gaussian_keys(n, d, seed), gaussian_keys(n, d, seed + 1)
    queries = unit_queries(n, d, seed + 2)
    b = threshold(n, d)
    variants = {"dense": ("dense", "auto"), "auto": ("hsr", "auto")}
    if d <= PREFILL_TREE_MAX_D:
        variants["numpy"] = ("hsr", "numpy")
    if d <= TREE_MAX_D and compiled.AVAILABLE:
        variants["compiled"] = ("hsr", "compiled")
    row: dict[str, object] = dict.fromkeys(PREFILL_COLUMNS, "-")
    row.update(n=f"2^{int(np.log2(n))}", d=d)
    runs = {}
    for name, (method, backend) in variants.items():  # dense first: the others' oracle
        def run(method=method, backend=backend):
            return relu_attention(queries, keys, values, 1, b, causal=True, method=method,
                                  backend=backend, return_stats=True)
        runs[name] = run
        out, stats = run()
        if name == "dense":
            expected, dense_stats = out, stats
            row["k_mean"] = dense_stats.total_activated / n
        elif not np.allclose(out, expected, rtol=1e-10, atol=1e-13):
            raise AssertionError(f"causal {name} differs from dense at n={n}, d={d}")
        if name == "auto":
            row["auto_kernel"], row["auto_why"] = stats.kernel, stats.plan.why
        if name == "numpy":
            row["products_share_numpy"] = (stats.total_inner_products
                                           / dense_stats.total_inner_products)
    calls = interleaved(runs, prefill_rounds(n))
    for name, secs in calls.items():
        row.update(timing(name, secs, unit="s"))
    row.update(versus_best({name: float(np.median(secs)) for name, secs in calls.items()}))
    for name in ("auto", "numpy", "compiled"):
        if name in variants:
            row[f"dense_over_{name}"] = row["dense_s"] / row[f"{name}_s"]  # type: ignore
    return row


def prefill_rounds(n: int) -> int:
    """Interleaved rounds of a prefill cell of n queries: fewer as a call grows."""
    return 5 if n <= 2**12 else 3 if n <= 2**14 else 1


def versus_best(times: dict[str, float]) -> dict[str, object]:
    """The fastest variant of a cell and auto's time over it."""
    best = min(times, key=times.__getitem__)
    return {"best": best, "auto_over_best": times["auto"] / times[best]}


def write(decode: list[dict[str, object]], prefill: list[dict[str, object]], header: str,
          notes: str, name: str = "attention") -> None:
    """results/<name>.csv (both tables, a ``regime`` column) and results/<name>.md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    tables = {regime: rows for regime, rows in (("decode", decode), ("prefill", prefill))
              if rows}
    keys = ["regime", *dict.fromkeys(k for rows in tables.values() for r in rows for k in r)]
    with open(RESULTS / f"{name}.csv", "w", newline="") as fh:
        fh.write(csv_header(header))
        writer = csv.DictWriter(fh, fieldnames=keys, restval="")
        writer.writeheader()
        for regime, rows in tables.items():
            writer.writerows({"regime": regime, **r} for r in rows)
    lines = [*markdown_header(header), "", notes, "", SPREAD_NOTE]
    for regime, rows in tables.items():
        cols = list(dict.fromkeys(k for r in rows for k in r))
        lines += ["", f"## {regime}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")


def _fmt(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


NOTES = """Decoding: one step over a cache of n keys. auto = ``Decoder.attend`` with the default
backend "auto" (hsr.plan.decode: below DECODE_MIN_KEYS keys or n d < DECODE_MIN_WORK the dense
kernel; above, the HSR structure whose blocks hsr.plan planned, kd-tree or scan, then the exact
row over the reported keys); tree = the same with backend "numpy" (the kd-tree always;
d <= 8), compiled = with backend "compiled" (the same tree walked by Numba-compiled loops;
d <= 8); dense = ``attend_dense`` (all n scores, ReLU, normalise, weighted sum).
auto_kernel = the kernel the auto steps report (AttentionStats.kernel). Every HSR row is
checked against the dense row. Times: the median of every timed call of the cell (each
query's repeats, timed side by side, interleaved), its interquartile range beside it.
build_s = the auto Decoder's build.
Prefill: causal relu_attention, method="dense" against method="hsr" (keys split by position,
attention/positions.py): backend "auto" (hsr.plan.prefill: the dense kernel for d > 16 or few
rows; else a race of the kd-tree, hsr.TREE (compiled where Numba is installed), and the dense
kernel on a few rows, medians of 5 rounds with a 10% margin for the tree, where the race costs
at most 5% of the batch, else the tree for d <= 4 and dense above), "numpy" (d <= 4) and
"compiled" (d <= 8), the kd-tree always, timed side by side (interleaved; medians of 5 rounds
at n <= 2^12, 3 at 2^14, one call at 2^16: no interquartile range, nan).
products_share = inner products of the kd-tree path (its queries', its own tiles' and the
exact rows') / those of dense (n(n+1)/2). best: the fastest variant (medians); auto_over_best:
auto / best; auto_why: AttentionStats.plan."""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 2^10 .. 2^12, prefill 2^10")
    parser.add_argument("--step", type=int, default=2, help="log2 n step of decoding")
    parser.add_argument("--max-log2n", type=int, default=None, help="largest log2 n of decoding")
    parser.add_argument("--max-bytes", type=float, default=5.4e8,
                        help="skip decoding cells whose keys take more bytes (default 5.4e8)")
    parser.add_argument("--repeats", type=int, default=9, help="timed calls per query")
    parser.add_argument("--queries", type=int, default=3, help="different queries per cell")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prefill-only", action="store_true", help="skip the decoding table")
    parser.add_argument("--out", default="attention",
                        help="write results/<OUT>.csv and .md (default: attention)")
    args = parser.parse_args(argv)
    low, high = (10, 12) if args.quick else (10, 22)
    high = min(high, args.max_log2n) if args.max_log2n else high
    if args.prefill_only:
        high = low - 1
    prefill_sizes = [2**10] if args.quick else [2**10, 2**12, 2**14, 2**16]
    header = provenance_header(args.seed, argv)
    print(header, flush=True)
    decode = []
    for i, log2n in enumerate(range(low, high + 1, args.step)):
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
