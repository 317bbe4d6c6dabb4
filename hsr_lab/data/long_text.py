"""Long English text that ships with Python, cut to SmolLM2 token budgets, and cached
extractions of it (up to the model's 8192-token context).

The source is ``pydoc_data.topics.topics`` (the help texts of the language reference, about
465,000 characters or 110,000 SmolLM2 tokens, in every CPython), the topics joined in an order
fixed by ``seed``. Offline and reproducible: the same Python gives the same text.

Because the model is causal, the first m tokens of an extraction of n tokens are exactly the
extraction of the first m tokens: one cached 8192-token run serves every prefix length.
"""

from __future__ import annotations

import os
import re

import numpy as np

from hsr_lab import cache
from hsr_lab.data import smollm2
from hsr_lab.data.smollm2 import MAX_POSITIONS, N_HEADS, N_LAYERS, SmolExtraction

_RULE = re.compile(r"^\s*[*=\-~^]{3,}\s*$\n?", re.M)  # reST underlines of headings


def source_text(seed: int = 0) -> str:
    """Every pydoc topic, heading underlines removed, in an order fixed by ``seed``."""
    from pydoc_data.topics import topics

    names = sorted(topics)
    order = np.random.default_rng(seed).permutation(len(names))
    return "\n\n".join(_RULE.sub("", topics[names[i]]).strip() for i in order)


def long_passage(max_tokens: int = MAX_POSITIONS, seed: int = 0) -> str:
    """The longest prefix of ``source_text(seed)`` that ends before a white space and has at
    most ``max_tokens`` SmolLM2 tokens (usually max_tokens or one or two fewer)."""
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int | np.integer) \
            or not 1 <= max_tokens <= MAX_POSITIONS:
        raise ValueError(f"max_tokens must be an int in 1..{MAX_POSITIONS}; got {max_tokens!r}")
    text, tok = source_text(seed), smollm2.load_tokenizer()
    head = text[:8 * max_tokens]  # English averages about 4 characters a token
    prefix = tok.decode(tok.encode(head)[:max_tokens])
    while True:
        cut = max((m.start() for m in re.finditer(r"\s+", prefix)), default=0)
        prefix = prefix[:cut] if cut else prefix
        if len(tok.encode(prefix)) <= max_tokens or not cut:
            return prefix


def cached_extraction(max_tokens: int = MAX_POSITIONS, seed: int = 0, layers: object = None,
                      force: bool = False, cache_dir: str | os.PathLike[str] | None = None,
                      progress: bool = True) -> SmolExtraction:
    """``smollm2.extract(long_passage(max_tokens, seed), layers)`` (all heads), stored with
    ``hsr_lab.cache`` so that the second call only reads a file (about 1 GB at 8192 tokens
    and all 30 layers). The attention probabilities are not stored: use ``.probs(l, h)``."""
    from hsr_lab.data.minilm import as_indices

    layers = as_indices("layers", layers, N_LAYERS)
    params = dict(max_tokens=int(max_tokens), seed=seed, layers=list(layers),
                  model=smollm2.GGUF_NAME)

    def compute() -> dict[str, np.ndarray]:
        ex = smollm2.extract(long_passage(max_tokens, seed), layers, max_tokens=max_tokens,
                             progress=progress)
        arrays = {name: getattr(ex, name) for name in ("ids", "Q", "K", "V", "norms", "peaks")}
        return arrays | ({"logits": ex.logits} if ex.logits is not None else {})

    data = cache.cached("smollm2_qkv", params, compute, force=force, cache_dir=cache_dir)
    return _from_arrays(data, layers)


def _from_arrays(data: dict[str, np.ndarray], layers: tuple[int, ...]) -> SmolExtraction:
    """Rebuild a ``SmolExtraction`` (all 9 heads) from the cached arrays."""
    for arr in data.values():
        arr.flags.writeable = False
    tok = smollm2.load_tokenizer()
    tokens = tuple(tok.token_bytes(int(i)).decode("utf-8", "replace") for i in data["ids"])
    heads = tuple(range(N_HEADS))
    return SmolExtraction(tokens, data["ids"], layers, heads, smollm2.KV_HEAD, data["Q"],
                          data["K"], data["V"], data["norms"], data["peaks"],
                          logits=data.get("logits"))
