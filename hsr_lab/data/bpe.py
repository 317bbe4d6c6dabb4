"""Byte-level BPE (GPT-2 style) in plain Python: the tokenizer of SmolLM2, read from its GGUF.

Text becomes token ids in four steps:

1. control tokens written in the text (``<|im_end|>``, ...) are cut out and kept whole;
2. pre-tokenisation (llama.cpp's "smollm" rule, as the model's own tokenizer): every digit
   stands alone, and the rest is split by GPT-2's pattern
   ``'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+``;
3. each piece's UTF-8 bytes are written as printable characters (GPT-2's byte map: a space is
   ``Ġ``, a newline ``Ċ``);
4. BPE: repeatedly merge the adjacent pair with the lowest merge rank (the leftmost among
   equal ranks) until none is left; each remaining symbol is a token of the vocabulary.
   As in the reference implementations (Hugging Face ``tokenizers``' word-level BPE), the
   candidate pairs wait in a heap keyed on (rank, position), and a pair that changed since it
   was pushed is skipped when popped: O(B log B) for a piece of B bytes, not O(B^2).

This is the rule of the model's own ``tokenizer.json`` (Digits, then ByteLevel) and of llama.cpp.
transformers, building a tokenizer from the GGUF, leaves out the digit rule; that changes only
white space right before a digit (``":\\n\\n1"`` gives ``ĊĊ 1`` here, ``Ċ Ċ 1`` there).
``tests/test_smollm2.py`` checks the ids against transformers' tokenizer from the same file,
with the digit rule put back. Needs the ``regex`` package (``\\p{L}`` is not in ``re``).
"""

from __future__ import annotations

import functools
import heapq
import itertools
import numbers
from collections.abc import Iterator, Sequence

import numpy as np

from hsr_lab import optional

GPT2_PATTERN = (r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+"
                r"|\s+(?!\S)|\s+")
CACHED_PIECE = 64  # pieces up to this many characters are memoised (words, not random runs)
CACHE_SIZE = 2**16  # memoised pieces at most; the memo starts afresh when full


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
        # bytes without a token of their own (SmolLM2: 21, such as 0x04 and the lead byte 0xf1
        # of U+40000..U+7FFFF); the model's tokenizer drops them silently, encode refuses them
        self.no_token = frozenset(b for b, c in byte_to_char().items() if c not in self.ids)
        # at least the bytes of the longest token: a piece of B bytes is >= B / _longest tokens
        self._longest = max((len(t.encode("utf-8")) for t in self.tokens), default=1)

    def __repr__(self) -> str:
        return (f"ByteLevelBPE({len(self.tokens)} tokens, {len(self.ranks)} merges, "
                f"{len(self.control)} control tokens)")

    def pre_tokenize(self, text: str) -> list[str]:
        """Split text into the pieces that BPE works on separately (steps 1 and 2)."""
        return list(self._iter_pieces(valid_text("text", text)))

    def _iter_pieces(self, text: str) -> Iterator[str]:
        chunks = self._control.split(text) if self._control else [text]
        for chunk in chunks:
            if chunk in self.ids and chunk in self.control:
                yield chunk
                continue
            for part in self._digit.split(chunk):
                for match in self._pieces.finditer(part):
                    yield match.group()

    def bpe(self, piece: str) -> tuple[int, ...]:
        """The ids of one pre-tokenised piece (steps 3 and 4), memoised for short pieces."""
        if piece in self._cache:
            return self._cache[piece]
        if piece in self.control:
            return (self.ids[piece],)
        raw = piece.encode("utf-8")
        if self.no_token and not self.no_token.isdisjoint(raw):
            raise NoTokenError(f"piece {piece!r} holds a byte that has no token")
        table = byte_to_char()
        symbols = merge_pairs([table[b] for b in raw], self.ranks)
        ids = tuple(self.ids[s] for s in symbols)
        if len(piece) <= CACHED_PIECE:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[piece] = ids
        return ids

    def encode(self, text: str, max_tokens: int | None = None) -> list[int]:
        """Token ids of ``text`` (no BOS is added: the model's tokenizer adds none).

        With ``max_tokens``, a text of more tokens raises a ValueError as soon as that is
        known: a piece of B bytes is at least ceil(B / longest token) tokens, so a long text is
        refused before BPE reaches its end. A character with a byte in ``no_token`` is
        refused, naming its position (the model's own tokenizer would drop the byte)."""
        text = valid_text("text", text)
        try:
            return self._encode(text, max_tokens)
        except NoTokenError:
            raise self._no_token_error(text) from None

    def _encode(self, text: str, max_tokens: int | None) -> list[int]:
        if max_tokens is None:
            return [i for piece in self._iter_pieces(text) for i in self.bpe(piece)]
        ids: list[int] = []
        for piece in self._iter_pieces(text):
            least = -(-len(piece.encode("utf-8")) // self._longest)  # ceil(B / longest)
            if len(ids) + least > max_tokens:  # too long, known without this piece's BPE
                break
            ids.extend(self.bpe(piece))
            if len(ids) > max_tokens:
                break
        else:
            return ids
        raise ValueError(f"text is more than max_tokens={max_tokens} tokens; shorten the text")

    def _no_token_error(self, text: str) -> ValueError:
        """Where ``text`` holds a byte without a token (searched only once one was met)."""
        for position, char in enumerate(text):
            missing = sorted(self.no_token.intersection(char.encode("utf-8")))
            if missing:
                return ValueError(f"text holds {char!r} at position {position}, whose UTF-8 "
                                  f"byte 0x{missing[0]:02x} has no token in the vocabulary "
                                  "(the model's own tokenizer drops such bytes); remove it")
        return ValueError("text holds a byte without a token")  # not reached

    def token_bytes(self, i: int) -> bytes:
        """The bytes that token ``i`` stands for."""
        token = self.tokens[self._token_id("i", i)]
        if token in self.control:
            return token.encode("utf-8")
        return bytes(self._char_to_byte[c] for c in token)

    def decode(self, ids: Sequence[int]) -> str:
        """The text of a sequence of ids (invalid UTF-8 is replaced by U+FFFD)."""
        if isinstance(ids, str | bytes) or not isinstance(ids, Sequence | np.ndarray):
            raise TypeError(f"ids must be a sequence of token ids (ints); got {ids!r:.80}")
        for i in ids:
            self._token_id("ids", i)
        return b"".join(self.token_bytes(i) for i in ids).decode("utf-8", "replace")

    def _token_id(self, name: str, i: object) -> int:
        """``i`` as a token id: an integer in 0..len(tokens) - 1 (no bool, float or negative)."""
        if isinstance(i, bool | np.bool_) or not isinstance(i, numbers.Integral):
            raise TypeError(f"{name} must hold integer token ids; got {i!r}")
        if not 0 <= i < len(self.tokens):
            raise ValueError(f"{name} must hold token ids in 0..{len(self.tokens) - 1}; got {i}")
        return int(i)


class NoTokenError(ValueError):
    """A piece holds a byte that has no token of its own (``ByteLevelBPE.no_token``)."""


def valid_text(name: str, text: object) -> str:
    """``text`` if it is a str that UTF-8 can encode; otherwise an error that says where not.

    Python strings may hold lone surrogates (U+D800..U+DFFF, e.g. from ``surrogateescape``),
    which have no UTF-8 form."""
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str; got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"{name} holds a lone surrogate {text[err.start]!r} at position "
                         f"{err.start}, which has no UTF-8 form (and no token); remove it or "
                         "decode the source with errors='replace'") from None
    return text


def merge_pairs(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """BPE on one piece: merge the adjacent pair of lowest rank, the leftmost among equal
    ranks, until no adjacent pair has a rank.

    A heap holds (rank, position) of candidate pairs; ``after``/``before`` link the symbols
    still alive. A merge at i joins symbol i with the next one and pushes the two new pairs
    around it; a popped entry whose pair is gone (its symbols merged since) no longer has its
    rank at its position and is skipped. Each merge pushes at most two entries: O(B log B).
    """
    B = len(symbols)
    sym: list[str | None] = list(symbols)
    after, before = list(range(1, B + 1)), list(range(-1, B - 1))  # B: none after, -1: before
    heap = [(ranks[p], i) for i, p in enumerate(itertools.pairwise(symbols)) if p in ranks]
    heapq.heapify(heap)

    def push(i: int, j: int) -> None:
        rank = ranks.get((sym[i], sym[j]))  # type: ignore[arg-type]
        if rank is not None:
            heapq.heappush(heap, (rank, i))

    while heap:
        rank, i = heapq.heappop(heap)
        j = after[i]
        if sym[i] is None or j == B or ranks.get((sym[i], sym[j])) != rank:  # type: ignore
            continue  # stale: a rank names one pair, and this pair is no longer at i
        sym[i], sym[j] = sym[i] + sym[j], None  # type: ignore[operator]
        after[i] = k = after[j]
        if k < B:
            before[k] = i
            push(i, k)
        if before[i] >= 0:
            push(before[i], i)
    return [s for s in sym if s is not None]
