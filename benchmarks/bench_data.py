"""Real-model data: the SmolLM2 tokenizer's BPE and the checked loading of its GGUF file.

Table 1, BPE on one piece of n random ASCII letters (no space, so one pre-tokenised piece):
the heap merge loop (``bpe.merge_pairs``, what the tokenizer runs) against the loop that
rescans every pair for each merge (the baseline below, O(n^2)), their ratio, and the time to
refuse the text with ``max_tokens=10``.

Table 2, the GGUF file: our checking parser (``gguf_file.read_gguf``), the SHA-256 of the
whole file, both together (``smollm2.open_gguf``, what loading runs once per process), and
``gguf.GGUFReader`` on the same file.

    python benchmarks/bench_data.py           # n = 2^11 .. 2^15 (about a minute)
    python benchmarks/bench_data.py --quick   # a smoke run
"""

from __future__ import annotations

import argparse
import itertools
import os
import string
import sys
import time

import numpy as np
from _common import print_table, provenance_header, time_calls, timing, write_results

from hsr_lab.data import smollm2
from hsr_lab.data.bpe import byte_to_char, merge_pairs
from hsr_lab.data.digest import check_sha256
from hsr_lab.data.gguf_file import read_gguf


def rescanning_bpe(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """The baseline: find the lowest-ranked pair by a scan, merge all its occurrences, again."""
    while len(symbols) > 1:
        best = min(itertools.pairwise(symbols), key=lambda p: ranks.get(p, len(ranks)))
        if best not in ranks:
            break
        out, i = [], 0
        while i < len(symbols):
            if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                out.append(best[0] + best[1])
                i += 2
            else:
                out.append(symbols[i])
                i += 1
        symbols = out
    return symbols


def bpe_row(n: int, repeats: int) -> dict[str, object]:
    tok = smollm2.load_tokenizer()
    text = "".join(np.random.default_rng(n).choice(list(string.ascii_letters), n))
    table = byte_to_char()
    symbols = [table[b] for b in text.encode()]
    assert merge_pairs(symbols, tok.ranks) == rescanning_bpe(symbols, tok.ranks)
    heap = timing("heap", time_calls(lambda: merge_pairs(symbols, tok.ranks), repeats))
    rescan = timing("rescan", time_calls(lambda: rescanning_bpe(symbols, tok.ranks), 1, 0))
    refuse = timing("refuse_at_10", time_calls(lambda: _refused(tok, text), repeats))
    return (dict(n=n, tokens=len(merge_pairs(symbols, tok.ranks))) | heap | rescan
            | {"rescan_over_heap": rescan["rescan_ms"] / heap["heap_ms"]} | refuse)


def _refused(tok, text: str) -> None:
    try:
        tok.encode(text, max_tokens=10)
    except ValueError:
        return
    raise AssertionError("a text of more than 10 tokens was accepted")


def gguf_row(repeats: int) -> dict[str, object]:
    path = smollm2.gguf_path()
    row = (dict(file=path.name, MB=path.stat().st_size / 1e6)
           | timing("parse", time_calls(lambda: read_gguf(path), repeats), "s")
           | timing("sha256", time_calls(lambda: check_sha256(path, smollm2.GGUF_SHA256),
                                         repeats), "s")
           | timing("open_gguf", time_calls(lambda: smollm2.open_gguf(path), repeats), "s"))
    try:
        import gguf
    except ImportError:
        return row | {"GGUFReader_s": float("nan"), "GGUFReader_over_open_gguf": float("nan")}
    start = time.perf_counter()
    gguf.GGUFReader(str(path))
    reader = time.perf_counter() - start  # one call: it takes seconds
    return row | {"GGUFReader_s": reader, "GGUFReader_over_open_gguf": reader / row["open_gguf_s"]}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: small n, no files")
    args = parser.parse_args(argv)
    header = provenance_header(None, argv)
    print(header)
    try:
        smollm2.gguf_path()
    except ImportError as err:
        print("n  skipped\n-  " + str(err).replace("\n", " "))
        return 0
    sizes = [2**9, 2**10] if args.quick else [2**11, 2**12, 2**13, 2**14, 2**15]
    repeats = 2 if args.quick else 5
    bpe = [bpe_row(n, repeats) for n in sizes]
    print_table(bpe)
    files = [gguf_row(repeats)]
    print_table(files)
    if not args.quick:
        notes = ("BPE of one piece of n random letters: heap merge loop vs rescanning every "
                 "pair per merge (one call), medians of 3; refuse_at_10: encode(text, "
                 "max_tokens=10). GGUF: our checking parser, the file's SHA-256, both "
                 "(open_gguf), gguf.GGUFReader (one call). Load average (1 min) at the end: "
                 f"{os.getloadavg()[0]:.1f}.")
        write_results("data_bpe", bpe, header, notes)
        write_results("data_gguf", files, header, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
