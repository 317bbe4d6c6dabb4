"""The numbers that README's "Results so far" quotes, read from the tables in ``results/``.

After a full pass (``make bench``) the README's numbers are those of the tables before it; this
prints, for each quoted quantity, its table, its cell and its value in every table that holds
it, so that the README can be brought up to date by reading down the list. It measures
nothing. ``make bench`` prints it at the end of a full pass.

    python benchmarks/readme_numbers.py
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
HEADLINE = ("hsr_float32", "hsr_targets_float32")  # the alternating protocol, two runs
N = "2^22"

# (what the README says, tables, the cell as column=value filters, the column quoted)
QUOTED: tuple[tuple[str, tuple[str, ...], dict[str, str], str], ...] = (
    *((f"compiled walk / float32 scan, d = {d}", HEADLINE, {"n": N, "d": d}, "compiled_speedup")
      for d in ("2", "3", "4", "8", "16", "32", "64")),
    *((f"NumPy walk / float32 scan, d = {d}", HEADLINE, {"n": N, "d": d}, "tree_speedup")
      for d in ("2", "3", "4", "8", "16", "32", "64")),
    *((f"warm blocks: compiled / scan, d = {d}", ("hsr",), {"n": N, "d": d},
       "compiled_speedup_vs_brute") for d in ("2", "8", "16", "64")),
    *((f"warm blocks: NumPy / scan, d = {d}", ("hsr",), {"n": N, "d": d},
       "numpy_speedup_vs_brute") for d in ("8", "16", "64")),
    *((f"float32 scan ms, d = {d}", HEADLINE, {"n": N, "d": d}, "scan_ms") for d in "248"),
    ("build s, d = 4", HEADLINE, {"n": N, "d": "4"}, "build_tree_s"),
    *((f"compiled index / keys, d = {d}", HEADLINE, {"n": N, "d": d}, "compiled_mem")
      for d in "234"),
    *((f"NumPy index / keys, d = {d}", HEADLINE, {"n": N, "d": d}, "index_mem") for d in "234"),
    *((f"float64: NumPy walk / scan, d = {d}", ("hsr_float64",), {"n": N, "d": d},
       "tree_speedup") for d in "234"),
    *((f"float64: compiled walk / scan, d = {d}", ("hsr_float64",), {"n": N, "d": d},
       "compiled_speedup") for d in "234"),
    *((f"decode: dense / {m}, d = {d}", ("attention",), {"regime": "decode", "n": N, "d": d},
       f"dense_over_{m}") for d in "24" for m in ("auto", "tree")),
    *((f"decode: dense / compiled, n = 2^14, d = {d}", ("attention",),
       {"regime": "decode", "n": "2^14", "d": d}, "dense_over_compiled") for d in "24"),
    *((f"prefill: dense / {m}, n = 2^16, d = {d}", ("attention",),
       {"regime": "prefill", "n": "2^16", "d": d}, f"dense_over_{m}")
      for d in "24" for m in ("auto", "numpy")),
    *((f"prefill: products share, n = 2^16, d = {d}", ("attention",),
       {"regime": "prefill", "n": "2^16", "d": d}, "products_share_numpy") for d in "24"),
    *((f"prefill: dense / compiled, n = {n}, d = {d}", ("attention",),
       {"regime": "prefill", "n": n, "d": d}, "dense_over_compiled")
      for n in ("2^10", "2^12") for d in "24"),
    *((f"sorted answer / walk, d = {d}", ("sort_float32", *HEADLINE), {"n": N, "d": d}, c)
      for d in "234" for c in ("call_over_walk", "batch_call_over_walk")),
    *((f"{c}, d = {d}", ("sort_float32", *HEADLINE), {"n": N, "d": d}, c)
      for d in "234" for c in ("walk_ms", "sort_ms", "write_ms")),
    *((f"ties: {case}", ("ties",), {"case": case}, "tie_over_baseline")
      for case in ("zero_rows", "causal_padding", "integer_relu", "integer_softmax",
                   "hsr_brute", "hsr_numpy", "hsr_compiled")),
    *((f"keys n = 2^20, d = 64, {kind}: {c}", ("keys",), {"n": "2^20", "d": "64", "keys": kind},
       c) for kind in ("isotropic", "anisotropic", "low-rank") for c in ("speedup", "work_share")),
)


def rows(table: str) -> list[dict[str, str]]:
    """The rows of results/<table>.csv, past its provenance lines ([] if it is missing)."""
    path = RESULTS / f"{table}.csv"
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(line for line in fh if not line.startswith("#")))


def value(table: str, cell: dict[str, str], column: str) -> str:
    """The column's value in the table's row matching ``cell``, to 3 digits ('-': none)."""
    for row in rows(table):
        if all(row.get(key) == want for key, want in cell.items()):
            if column not in row:  # a table from before the column was added
                return "-"
            try:
                return f"{float(row.get(column) or 'nan'):.3g}"
            except ValueError:
                return row.get(column) or "-"
    return "-"


def ranges() -> list[str]:
    """Faiss against the scan over every cell of hsr_float32 (lone queries and batches)."""
    table = rows("hsr_float32")
    out = []
    for label in ("", "batch_"):
        ratios = [float(r[f"{label}faiss_ms"]) / float(r[f"{label}scan_ms"]) for r in table
                  if r.get(f"{label}faiss_ms") not in (None, "", "nan")]
        if ratios:
            out.append(f"faiss / scan ({'batches' if label else 'lone queries'}), hsr_float32: "
                       f"{min(ratios):.3g}-{max(ratios):.3g}")
    return out


def main() -> int:
    for label, tables, cell, column in QUOTED:
        values = ", ".join(f"{t} {value(t, cell, column)}" for t in tables)
        print(f"{label:45s} {column:24s} {values}")
    print(*ranges(), sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
