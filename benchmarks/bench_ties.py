"""Ties at the threshold cost linear work, in bulk: each case beside its tie-free twin.

Every score exactly at b (attention) or t (HSR) lies inside the rounding band, so it is settled
exactly (``hsr.numerics``, ``hsr.exact``). Zero query rows and rows whose products are exact
need no settling at all; the others are settled by error-free transformations over whole
arrays. Per case, the call with ties and the same call without them (the baseline), the
medians of interleaved rounds with their interquartile ranges, the ratio of the medians, how
many scores sit exactly on the threshold, and how many pairs were settled as exact float scores
(grid), in bulk and by fractions (the compiled walk settles its own pairs in machine code,
uncounted):

- ``zero_rows``: ``relu_attention(zeros((m, 8)), K, V)`` at b = 0 against ``zeros + 1e-3``;
- ``causal_padding``: causal prefill (d = 4), every third query row zero, against none zero;
- ``integer_relu`` / ``integer_softmax``: Q and K in {-1, 0, 1}^4 (about 30% of the scores
  exactly 0 = b) against Gaussian Q and K;
- ``hsr_<backend>``: integer keys in {-3 .. 3}^3 and a query whose t is a key's score (many
  keys on it) against Gaussian keys with t at the same quantile.

    python benchmarks/bench_ties.py            # n = 4096, causal prefill 8193, HSR 2^16
    python benchmarks/bench_ties.py --quick    # a smoke run (not saved)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import numpy as np
from _common import SPREAD_NOTE, print_table, provenance_header, timing, write_results

from hsr_lab import HSR, relu_attention, softmax_attention
from hsr_lab.hsr import exact
from hsr_lab.hsr.compiled import AVAILABLE as NUMBA


def interleaved(tie: Callable[[], object], base: Callable[[], object], rounds: int
                ) -> tuple[list[float], list[float]]:
    """Seconds of each call of the two over rounds, the order reversed every other round."""
    times: dict[str, list[float]] = {"tie": [], "base": []}
    for r in range(rounds):
        for name, fn in ((("tie", tie), ("base", base)) if r % 2 == 0
                         else (("base", base), ("tie", tie))):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times["tie"], times["base"]


def row(case: str, ties: int, tie: Callable[[], object], base: Callable[[], object],
        rounds: int) -> dict[str, object]:
    """One case: the tie call's settling counted once, then both timed side by side."""
    before = exact.SETTLED.copy()
    tie()
    settled = {f"settled_{kind}": exact.SETTLED[kind] - before[kind]
               for kind in ("grid", "bulk", "fractions")}
    tie_s, base_s = interleaved(tie, base, rounds)
    return {"case": case, "ties": ties, **timing("tie", tie_s, "s"),
            **timing("baseline", base_s, "s"),
            "tie_over_baseline": float(np.median(tie_s) / np.median(base_s)), **settled}


def attention_rows(n: int, causal_n: int, rounds: int, rng: np.random.Generator
                   ) -> list[dict[str, object]]:
    """The attention cases: zero rows, causal padding rows, integer data."""
    K, V = rng.standard_normal((n, 8)), rng.standard_normal((n, 8))
    zeros = np.zeros((n // 8, 8))
    out = [row("zero_rows", zeros.shape[0] * n, lambda: relu_attention(zeros, K, V),
               lambda: relu_attention(zeros + 1e-3, K, V), rounds)]
    Qc, Kc, Vc = (rng.standard_normal((causal_n, 4)) for _ in range(3))
    padded = Qc.copy()
    padded[::3] = 0.0
    ties = sum(i + 1 for i in range(0, causal_n, 3))
    out.append(row("causal_padding", ties, lambda: relu_attention(padded, Kc, Vc, causal=True),
                   lambda: relu_attention(Qc, Kc, Vc, causal=True), max(1, rounds // 2)))
    Qi, Ki = (rng.integers(-1, 2, (n, 4)).astype(float) for _ in range(2))
    Qg, Kg = rng.standard_normal((n, 4)), rng.standard_normal((n, 4))
    Vi = V[:, :2]
    ties = int(np.count_nonzero(Qi @ Ki.T == 0))
    out.append(row("integer_relu", ties, lambda: relu_attention(Qi, Ki, Vi),
                   lambda: relu_attention(Qg, Kg, Vi), rounds))
    out.append(row("integer_softmax", ties, lambda: softmax_attention(Qi, Ki, Vi, b=0.0),
                   lambda: softmax_attention(Qg, Kg, Vi, b=0.0), rounds))
    return out


def hsr_rows(n: int, rounds: int, rng: np.random.Generator) -> list[dict[str, object]]:
    """HSR queries with t on a score that many integer keys share, against Gaussian keys."""
    Ki = rng.integers(-3, 4, (n, 3)).astype(float)
    Kg = rng.standard_normal((n, 3))
    a = np.array([1.0, -2.0, 3.0])
    t = float(Ki[0] @ a)
    share = float(np.mean(Ki @ a >= t))
    t_g = float(np.quantile(Kg @ a, 1 - share))
    ties = int(np.count_nonzero(Ki @ a == t))
    out = []
    for backend in ["brute", "numpy"] + (["compiled"] if NUMBA else []):
        hi, hg = HSR(Ki, backend=backend), HSR(Kg, backend=backend)
        out.append(row(f"hsr_{backend}", ties, lambda hi=hi: hi.query(a, t),
                       lambda hg=hg: hg.query(a, t_g), rounds * 4))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, not saved")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    n, causal_n, hsr_n, rounds = ((512, 1025, 2**12, 2) if args.quick
                                  else (4096, 8193, 2**16, args.rounds))
    header = provenance_header(args.seed, argv)
    print(header)
    rng = np.random.default_rng(args.seed)
    rows = attention_rows(n, causal_n, rounds, rng) + hsr_rows(hsr_n, rounds, rng)
    print_table(rows)
    if not args.quick:
        notes = (f"Attention n = {n} (causal prefill n = {causal_n}, {max(1, rounds // 2)} "
                 f"rounds), HSR n = {hsr_n} ({rounds * 4} rounds); otherwise {rounds} "
                 "interleaved rounds, one BLAS thread. tie_over_baseline is the ratio of the "
                 "medians. settled_* count the pairs of one tie call (the compiled walk's own "
                 "settling is not counted). On a machine shared with other work the ratios "
                 f"are the robust part. {SPREAD_NOTE}")
        for path in write_results("ties", rows, header, notes):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
