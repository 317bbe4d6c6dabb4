"""Byte-level BPE (GPT-2 style) in plain Python: the tokenizer of SmolLM2, read from its GGUF.

Text becomes token ids in four steps:

1. control tokens written in the text (``<|im_end|>``, ...) are cut out and kept whole;
2. pre-tokenisation (llama.cpp's "smollm" rule, as the model's own tokenizer): every digit
   stands alone, and the rest is split by GPT-2's pattern
   ``'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+``;
3. each piece's UTF-8 bytes are written as printable characters (GPT-2's byte map: a space is
   ``Ġ``, a newline ``Ċ``);
4. BPE: repeatedly merge the adjacent pair with the lowest merge rank until none is left;
   each remaining symbol is a token of the vocabulary.

This is the rule of the model's own ``tokenizer.json`` (Digits, then ByteLevel) and of llama.cpp.
transformers, building a tokenizer from the GGUF, leaves out the digit rule; that changes only
white space right before a digit (``":\\n\\n1"`` gives ``ĊĊ 1`` here, ``Ċ Ċ 1`` there).
``tests/test_smollm2.py`` checks the ids against transformers' tokenizer from the same file,
with the digit rule put back. Needs the ``regex`` package (``\\p{L}`` is not in ``re``).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence

from hsr_lab import optional

GPT2_PATTERN = (r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+"
                r"|\s+(?!\S)|\s+")


@functools.cache
def byte_to_char() -> dict[int, str]:
    """GPT-2's map of the 256 bytes to printable characters (printable Latin-1 maps to itself;
    the others to chr(256), chr(257), ... in byte order)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in keep}
    extra = (b for b in range(256) if b not in table)
    table |= {b: chr(256 + i) for i, b in enumerate(extra)}
    return dict(sorted(table.items()))


class ByteLevelBPE:
    """Encode text to ids and decode ids to text with a vocabulary and a ranked merge list."""

    def __init__(self, tokens: Sequence[str], merges: Sequence[str],
                 control: Sequence[str] = ()) -> None:
        regex = optional.require("regex", "real", "the SmolLM2 tokenizer (Unicode classes)")
        self.tokens = list(tokens)
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        self.ranks = {tuple(m.split(" ")): r for r, m in enumerate(merges)}
        self.control = tuple(control)
        self._pieces = regex.compile(GPT2_PATTERN)
        self._digit = regex.compile(r"(\p{N})")
        alternatives = "|".join(regex.escape(c) for c in sorted(control, key=len, reverse=True))
        self._control = regex.compile(f"({alternatives})") if control else None
        self._char_to_byte = {c: b for b, c in byte_to_char().items()}
        self._cache: dict[str, tuple[int, ...]] = {}

    def __repr__(self) -> str:
        return (f"ByteLevelBPE({len(self.tokens)} tokens, {len(self.ranks)} merges, "
                f"{len(self.control)} control tokens)")

    def pre_tokenize(self, text: str) -> list[str]:
        """Split text into the pieces that BPE works on separately (steps 1 and 2)."""
        out: list[str] = []
        chunks = self._control.split(text) if self._control else [text]
        for chunk in chunks:
            if chunk in self.ids and chunk in self.control:
                out.append(chunk)
                continue
            for part in self._digit.split(chunk):
                out.extend(self._pieces.findall(part))
        return out

    def bpe(self, piece: str) -> tuple[int, ...]:
        """The ids of one pre-tokenised piece (steps 3 and 4), memoised."""
        if piece in self._cache:
            return self._cache[piece]
        if piece in self.control:
            return (self.ids[piece],)
        table = byte_to_char()
        symbols = [table[b] for b in piece.encode("utf-8")]
        while len(symbols) > 1:
            pairs = itertools.pairwise(symbols)
            best = min(pairs, key=lambda p: self.ranks.get(p, len(self.ranks)))
            if best not in self.ranks:
                break
            symbols = _merge(symbols, best)
        ids = tuple(self.ids[s] for s in symbols)
        self._cache[piece] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no BOS is added: the model's tokenizer adds none)."""
        return [i for piece in self.pre_tokenize(text) for i in self.bpe(piece)]

    def token_bytes(self, i: int) -> bytes:
        """The bytes that token ``i`` stands for."""
        token = self.tokens[i]
        if token in self.control:
            return token.encode("utf-8")
        return bytes(self._char_to_byte[c] for c in token)

    def decode(self, ids: Sequence[int]) -> str:
        """The text of a sequence of ids (invalid UTF-8 is replaced by U+FFFD)."""
        return b"".join(self.token_bytes(int(i)) for i in ids).decode("utf-8", "replace")


def _merge(symbols: list[str], pair: tuple[str, str]) -> list[str]:
    """Replace every non-overlapping occurrence of ``pair``, left to right, by its union."""
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(pair[0] + pair[1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out
