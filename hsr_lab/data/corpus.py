"""Reproducible English passages that ship with Python, and their cached Q, K, V.

The passages come from ``pydoc_data.topics.topics``: the help texts of the language reference
(``help("assert")`` prints one), plain English with a little code, present in every CPython.
"""

from __future__ import annotations

import os
import re

import numpy as np

from hsr_lab import cache
from hsr_lab.data.minilm import (
    HEAD_DIM,
    MAX_POSITIONS,
    ExtractedAttention,
    attention_probs,
    extract,
    load_tokenizer,
)

_RULE = re.compile(r"^\s*[*=\-~^]{3,}\s*$", re.M)  # reST underlines of headings


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive int; got {value!r}")
    return int(value)


def _clean(text: str) -> str:
    """Drop heading underlines and collapse all white space to single spaces."""
    return " ".join(_RULE.sub(" ", text).split())


def _fit(text: str, max_tokens: int) -> str | None:
    """The longest prefix of ``text`` ending at a sentence end (else a space) that tokenizes
    to at most ``max_tokens`` tokens with [CLS] and [SEP]; None if there is none."""
    enc = load_tokenizer().encode(text, add_special_tokens=False)
    if len(enc.ids) + 2 <= max_tokens:
        return text
    limit = enc.offsets[max_tokens - 2][0]  # the first character that does not fit
    cut = text.rfind(". ", 0, limit)
    cut = cut + 1 if cut > limit // 2 else text.rfind(" ", 0, limit)
    return text[:cut].rstrip() if cut > 0 else None


def passages(count: int = 4, seed: int = 0, min_tokens: int = 256,
             max_tokens: int = MAX_POSITIONS) -> list[str]:
    """``count`` passages of ``min_tokens`` to ``max_tokens`` tokens ([CLS] and [SEP]
    included), drawn without replacement from the pydoc topics in an order fixed by ``seed``."""
    from pydoc_data.topics import topics

    count, min_tokens = _positive_int("count", count), _positive_int("min_tokens", min_tokens)
    if not isinstance(max_tokens, int) or not min_tokens <= max_tokens <= MAX_POSITIONS:
        raise ValueError(f"max_tokens must be an int in min_tokens..{MAX_POSITIONS} "
                         f"(min_tokens={min_tokens}); got {max_tokens!r}")
    names = sorted(topics)
    order = np.random.default_rng(seed).permutation(len(names))
    out = []
    for i in order:
        text = _fit(_clean(topics[names[i]]), max_tokens)
        if text is None:
            continue
        n = len(load_tokenizer().encode(text, add_special_tokens=False).ids) + 2
        if n >= min_tokens:
            out.append(text)
        if len(out) == count:
            return out
    raise ValueError(f"only {len(out)} pydoc topics have at least min_tokens={min_tokens} "
                     f"tokens; asked for count={count}")


def cached_extractions(count: int = 4, seed: int = 0, min_tokens: int = 256,
                       max_tokens: int = MAX_POSITIONS, force: bool = False,
                       cache_dir: str | os.PathLike[str] | None = None
                       ) -> list[ExtractedAttention]:
    """``extract`` of each of ``passages(count, seed, min_tokens, max_tokens)``, all layers
    and heads, stored with ``hsr_lab.cache.cached`` so the second call only reads a file.

    The cache holds Q, K, V and the hidden states; P = softmax(Q K^T / sqrt(32)) is recomputed
    on load (it is the largest array and follows from Q and K).
    """
    params = dict(count=count, seed=seed, min_tokens=min_tokens, max_tokens=max_tokens,
                  model="all-MiniLM-L6-v2", head_dim=HEAD_DIM)

    def compute() -> dict[str, np.ndarray]:
        arrays = {}
        for i, text in enumerate(passages(count, seed, min_tokens, max_tokens)):
            ex = extract(text, max_tokens=max_tokens)
            arrays |= {f"p{i}_Q": ex.Q, f"p{i}_K": ex.K, f"p{i}_V": ex.V,
                       f"p{i}_hidden": ex.hidden, f"p{i}_tokens": np.array(ex.tokens, dtype=str)}
        return arrays

    data = cache.cached("minilm_qkv", params, compute, force=force, cache_dir=cache_dir)
    return [_from_arrays(data, i) for i in range(count)]


def _from_arrays(data: dict[str, np.ndarray], i: int) -> ExtractedAttention:
    """Rebuild passage i's ``ExtractedAttention`` from the cached arrays."""
    Q, K, V, hidden = (data[f"p{i}_{part}"] for part in ("Q", "K", "V", "hidden"))
    P = attention_probs(Q, K)
    for arr in (Q, K, V, hidden, P):
        arr.flags.writeable = False
    tokens = tuple(data[f"p{i}_tokens"].tolist())
    return ExtractedAttention(tokens, tuple(range(Q.shape[0])), tuple(range(Q.shape[1])),
                              Q, K, V, P, hidden)
