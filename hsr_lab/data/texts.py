"""Texts of two kinds for SmolLM2, all shipped with Python: English prose and Python source.

- ``"long"``: the help texts of the language reference (``long_text.long_passage``: English
  with a little code), the text of notebook 07.
- ``"python"``: the source of the standard library's ``argparse`` module (code, comments
  and docstrings).
- ``calibration_text``: text for fixing a method's parameters, kept apart from both: the
  *last* pydoc topics (the evaluation text is the first ones) and the source of ``textwrap``.

Each is cut at a white space to at most ``max_tokens`` SmolLM2 tokens. Deterministic for a
given Python (the stdlib's files are the source); nothing is downloaded.
"""

from __future__ import annotations

import re

import numpy as np

from hsr_lab.data import long_text, smollm2
from hsr_lab.data.smollm2 import MAX_POSITIONS

TEXTS = ("long", "python")


def _check_tokens(max_tokens: object) -> int:
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int | np.integer) \
            or not 1 <= max_tokens <= MAX_POSITIONS:
        raise ValueError(f"max_tokens must be an int in 1..{MAX_POSITIONS}; got {max_tokens!r}")
    return int(max_tokens)


def _head(text: str, max_tokens: int) -> str:
    """The longest prefix of ``text`` ending before a white space with <= max_tokens tokens."""
    tok = smollm2.load_tokenizer()
    prefix = tok.decode(tok.encode(text[:8 * max_tokens])[:max_tokens])
    while True:
        cut = max((m.start() for m in re.finditer(r"\s+", prefix)), default=0)
        prefix = prefix[:cut] if cut else prefix
        if len(tok.encode(prefix)) <= max_tokens or not cut:
            return prefix


def _module_source(name: str) -> str:
    module = __import__(name)
    with open(module.__file__, encoding="utf-8") as fh:
        return fh.read()


def python_source(max_tokens: int = 4096) -> str:
    """The start of the standard library's ``argparse.py``, at most ``max_tokens`` tokens."""
    return _head(_module_source("argparse"), _check_tokens(max_tokens))


def text(kind: str, max_tokens: int = 4096, seed: int = 0) -> str:
    """The evaluation text ``kind`` ("long" or "python") cut to ``max_tokens`` tokens."""
    max_tokens = _check_tokens(max_tokens)
    if kind == "long":
        return long_text.long_passage(max_tokens, seed)
    if kind == "python":
        return python_source(max_tokens)
    raise ValueError(f"unknown text {kind!r}; known: {', '.join(TEXTS)}")


def calibration_text(max_tokens: int = 2048, seed: int = 0) -> str:
    """Half prose, half code, disjoint from both evaluation texts: the last pydoc topics in
    the order of ``seed`` and the start of ``textwrap.py``."""
    max_tokens = _check_tokens(max_tokens)
    prose = long_text.source_text(seed)
    tail = prose[-6 * max_tokens:]  # the last topics; the evaluation text is the first ones
    tail = tail[tail.index("\n\n") + 2:] if "\n\n" in tail else tail
    half = max(max_tokens // 2 - 1, 1)
    return _head(tail, half) + "\n\n" + _head(_module_source("textwrap"), half)
