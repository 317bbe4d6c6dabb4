"""Small byte LMs trained with the paper's ReLU^alpha attention, and their softmax twin, in NumPy.

Four models that differ only in the attention rule (``train/``; ``train/README.md`` has the run)
ship as package data in ``relu_lms/``, each trained with two seeds (``SEEDS``: the seed sets
the initialisation, the batch order and the calibration batch): float16 weights (b in
float32), 3.3 M parameters, 6.6 MB each. Llama-style, like SmolLM2 scaled down: 4 layers,
width 256, 4 heads of d = 64, SwiGLU width 704, byte vocabulary (256, tied with the output
layer), context 2048, trained on the Python standard library's source (``pystdlib``).
With x_0 = E[bytes]:

    h = RMSNorm(x) = x / sqrt(mean(x^2) + 1e-5) * g
    q_h = R_t W_Q,h h,  k_h = R_t W_K,h h,  v_h = W_V,h h     (R_t: RoPE, pairs (i, i + 32))
    S_h = q_h K_h^T / sqrt(64)                                 (causal: key j <= row t)
    softmax: A = exp(S_h);   ReLU^alpha: A = ReLU(S_h - b_h)^alpha  (b_h a scalar per head)
    x' = x + concat_h(D^{-1} A V_h) W_O^T,   D = diag(A 1)     (D_tt = 0: a zero row)
    x'' = x' + (SiLU(h' W_gate^T) * (h' W_up^T)) W_down^T,     h' = RMSNorm(x')

and the next-byte logits are RMSNorm(x_4) E^T. Computed in float64 from the float16 weights;
``tests/test_relu_lm.py`` checks hidden states, Q, K, V and logits against ``train/model.py``.

    from hsr_lab.data import relu_lm
    lm = relu_lm.load("relu2_learned")               # seed 0; load(..., seed=1): the other run
    tr = relu_lm.run(lm, relu_lm.encode("def f(x):\\n    return x"))   # tr.Q: (4, 4, n, 64)
"""

from __future__ import annotations

import functools
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import special

VARIANTS = ("softmax", "relu2_learned", "relu2_paper", "relu1_learned")
LABELS = {"softmax": "softmax", "relu2_learned": "ReLU², learned b",
          "relu2_paper": "ReLU², paper's b", "relu1_learned": "ReLU, learned b"}
SEEDS = (0, 1)  # the training seeds shipped for every variant
WEIGHTS_DIR = Path(__file__).with_name("relu_lms")
_CONFIG_KEYS = ("vocab", "d_model", "n_layers", "n_heads", "head_dim", "ffn", "context",
                "rope_base", "rms_eps", "attention", "alpha", "threshold", "paper_c")
_ROWS = 512  # query rows per block of the causal attention: (H, 512, n) scores at a time


@dataclass(frozen=True, eq=False)
class ReluLM:
    """One trained model: its config, float64 weights (read-only), b per layer and head (an
    (L, H) array; None for softmax), the run's metadata and training log."""

    name: str
    config: dict
    weights: dict[str, np.ndarray]
    b: np.ndarray | None
    meta: dict
    log: tuple[dict, ...]

    @property
    def relu(self) -> bool:
        return self.config["attention"] == "relu"

    @property
    def alpha(self) -> int:
        return int(self.config["alpha"])

    @property
    def seed(self) -> int:
        """The training seed (``--seed`` of the run; 0 when the run did not name one)."""
        argv = list(self.meta.get("argv", ()))
        return int(argv[argv.index("--seed") + 1]) if "--seed" in argv[:-1] else 0

    def __repr__(self) -> str:
        c = self.config
        rule = (f"ReLU^{c['alpha']} ({c['threshold']} b)" if self.relu else "softmax")
        return (f"ReluLM({self.name!r}: {rule}, {c['n_layers']} layers x {c['n_heads']} heads "
                f"of d={c['head_dim']}, width {c['d_model']}, context {c['context']}, "
                f"{self.meta.get('steps_done', '?')} steps, seed {self.seed})")


# ----------------------------------------------------------------------------- loading
def weights_path(variant: str, seed: int = 0) -> Path:
    """The shipped weights file of one variant (``VARIANTS``) and training seed (``SEEDS``):
    ``<variant>.npz`` for seed 0, ``<variant>_seed<seed>.npz`` for the others."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}; got {variant!r}")
    if isinstance(seed, bool) or seed not in SEEDS:
        raise ValueError(f"seed must be one of {SEEDS}; got {seed!r}")
    return WEIGHTS_DIR / (f"{variant}.npz" if seed == 0 else f"{variant}_seed{seed}.npz")


def expected_shapes(config: dict) -> dict[str, tuple[tuple[int, ...], str]]:
    """Every array the weights file must hold: name -> (shape, dtype)."""
    D, F, H = config["d_model"], config["ffn"], config["n_heads"]
    shapes = {"embed": ((config["vocab"], D), "float16"), "final_norm": ((D,), "float16")}
    for i in range(config["n_layers"]):
        p = f"layers.{i}."
        shapes.update({p + "attn_norm": ((D,), "float16"), p + "mlp_norm": ((D,), "float16"),
                       p + "wq": ((D, D), "float16"), p + "wk": ((D, D), "float16"),
                       p + "wv": ((D, D), "float16"), p + "wo": ((D, D), "float16"),
                       p + "w_gate": ((F, D), "float16"), p + "w_up": ((F, D), "float16"),
                       p + "w_down": ((D, F), "float16")})
        if config["attention"] == "relu":
            shapes[p + "b"] = ((H,), "float32")
    return shapes


def _config(raw: object, path: Path) -> dict:
    config = json.loads(str(raw))
    missing = [k for k in _CONFIG_KEYS if k not in config]
    if missing:
        raise ValueError(f"{path}: the config lacks {missing}")
    if config["attention"] not in ("softmax", "relu") or (
            config["n_heads"] * config["head_dim"] != config["d_model"]):
        raise ValueError(f"{path}: config is not a model of train/model.py: {config}")
    return config


def _read(path: Path) -> tuple[dict, dict[str, np.ndarray], dict]:
    """The config, the arrays and the metadata of a weights file, or a ValueError naming it."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise ValueError(f"{path} is not a readable weights file (.npz): {err}") from err
    for key in ("config", "meta"):
        if key not in arrays:
            raise ValueError(f"{path} holds no {key!r} entry: not a weights file of train/")
    return _config(arrays.pop("config"), path), arrays, json.loads(str(arrays.pop("meta")))


def _check(arrays: dict[str, np.ndarray], config: dict, path: Path) -> None:
    want = expected_shapes(config)
    extra, missing = sorted(set(arrays) - set(want)), sorted(set(want) - set(arrays))
    if extra or missing:
        raise ValueError(f"{path}: missing arrays {missing}, unexpected arrays {extra}")
    for name, (shape, dtype) in want.items():
        arr = arrays[name]
        if arr.shape != shape or arr.dtype != dtype:
            raise ValueError(f"{path}: {name} must be {dtype} of shape {shape}; got "
                             f"{arr.dtype} of shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{path}: {name} holds a non-finite value")


def _log(path: Path) -> tuple[dict, ...]:
    log = path.with_suffix(".jsonl")
    return tuple(json.loads(line) for line in log.read_text().splitlines()) if log.is_file(
        ) else ()


def load(variant: str | Path, seed: int = 0) -> ReluLM:
    """A shipped model by variant name (``VARIANTS``) and training seed (``SEEDS``), or the
    model of a weights file written by ``train/`` (a Path; seed must then be left at 0).

    Raises ValueError naming the file if it is truncated, not an .npz, or holds an array of
    the wrong shape or dtype."""
    if isinstance(variant, Path):
        if seed != 0:
            raise ValueError(f"seed names a shipped model; give a Path alone, got seed={seed!r}")
        return _load(variant.resolve())
    return _load(weights_path(variant, seed).resolve())


@functools.lru_cache(maxsize=len(VARIANTS) * len(SEEDS))
def _load(path: Path) -> ReluLM:
    config, arrays, meta = _read(path)
    _check(arrays, config, path)
    weights = {}
    for name, arr in arrays.items():
        if not name.endswith(".b"):
            weights[name] = arr.astype(np.float64)
            weights[name].flags.writeable = False
    b = None
    if config["attention"] == "relu":
        b = np.stack([arrays[f"layers.{i}.b"] for i in range(config["n_layers"])]
                     ).astype(np.float64)
        b.flags.writeable = False
    return ReluLM(meta.get("variant", path.stem), config, weights, b, meta, _log(path))


def encode(text: str | bytes) -> np.ndarray:
    """Byte ids of a text (UTF-8): the models' tokens."""
    if isinstance(text, str):
        text = text.encode()
    if not isinstance(text, bytes) or not text:
        raise ValueError(f"text must be a non-empty str or bytes; got {text!r:.40}")
    return np.frombuffer(text, dtype=np.uint8).astype(np.int64)


# ----------------------------------------------------------------------------- the model
def rms_norm(x: np.ndarray, g: np.ndarray, eps: float) -> np.ndarray:
    """RMSNorm(x) = x / sqrt(mean(x^2) + eps) * g over the last axis."""
    return x / np.sqrt(np.mean(np.square(x), axis=-1, keepdims=True) + eps) * g


@functools.lru_cache(maxsize=4)
def rope_tables(n: int, d: int, base: float) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of t * base^(-2i/d), (n, d) each, the d/2 angles repeated twice."""
    inv = 1.0 / base ** (np.arange(0, d, 2, dtype=np.float64) / d)
    angles = np.arange(n, dtype=np.float64)[:, None] * inv
    angles = np.concatenate([angles, angles], axis=-1)
    return np.cos(angles), np.sin(angles)


def rope(x: np.ndarray, base: float) -> np.ndarray:
    """Rotate the pairs (x_i, x_{i+d/2}) of x (H, n, d) by the angle t base^(-2i/d)."""
    n, d = x.shape[-2:]
    cos, sin = rope_tables(n, d, base)
    rotated = np.concatenate([-x[..., d // 2:], x[..., : d // 2]], axis=-1)
    return x * cos + rotated * sin


def attention(Q: np.ndarray, K: np.ndarray, V: np.ndarray, lm: ReluLM, layer: int
              ) -> np.ndarray:
    """D^{-1} A V per head, causal, with the model's rule: A = exp(S) or ReLU(S - b_h)^alpha,
    S = Q K^T / sqrt(d); a ReLU row with D = 0 is a zero row. Q, K, V: (H, n, d)."""
    n, d = Q.shape[1:]
    out = np.empty_like(Q)
    for r0 in range(0, n, _ROWS):
        r1 = min(n, r0 + _ROWS)
        S = Q[:, r0:r1] @ np.swapaxes(K[:, :r1], -1, -2) / np.sqrt(d)  # (H, rows, r1)
        future = np.arange(r1)[None, :] > np.arange(r0, r1)[:, None]
        if lm.relu:
            A = np.maximum(S - lm.b[layer][:, None, None], 0.0)
            A[:, future] = 0.0
            A = A**lm.alpha
        else:
            S[:, future] = -np.inf
            A = np.exp(S - S.max(axis=-1, keepdims=True))
        D = A.sum(axis=-1, keepdims=True)
        out[:, r0:r1] = (A @ V[:, :r1]) / np.where(D > 0, D, 1.0)
    return out


def project_qkv(h: np.ndarray, lm: ReluLM, layer: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Q, K (after RoPE) and V, each (H, n, d), from the normed stream h (n, d_model)."""
    c, w = lm.config, lm.weights
    p = f"layers.{layer}."

    def heads(name: str) -> np.ndarray:
        return (h @ w[p + name].T).reshape(len(h), c["n_heads"], c["head_dim"]).transpose(1, 0,
                                                                                            2)
    return rope(heads("wq"), c["rope_base"]), rope(heads("wk"), c["rope_base"]), heads("wv")


def block(x: np.ndarray, lm: ReluLM, layer: int
          ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """One layer: x'' from x, and this layer's (Q, K, V)."""
    c, w, p = lm.config, lm.weights, f"layers.{layer}."
    Q, K, V = project_qkv(rms_norm(x, w[p + "attn_norm"], c["rms_eps"]), lm, layer)
    heads = attention(Q, K, V, lm, layer)
    x = x + heads.transpose(1, 0, 2).reshape(len(x), c["d_model"]) @ w[p + "wo"].T
    h = rms_norm(x, w[p + "mlp_norm"], c["rms_eps"])
    gate = h @ w[p + "w_gate"].T
    return x + (gate * special.expit(gate) * (h @ w[p + "w_up"].T)) @ w[p + "w_down"].T, (Q, K,
                                                                                         V)


@dataclass(frozen=True, eq=False)
class Trace:
    """One byte sequence through a model; float64 arrays.

    hidden: (L + 1, n, d_model), the residual stream entering each layer, then the last one.
    Q, K (post-RoPE), V: (L, H, n, d). logits: (n, 256), next-byte logits at every position.
    """

    ids: np.ndarray
    hidden: np.ndarray
    Q: np.ndarray
    K: np.ndarray
    V: np.ndarray
    logits: np.ndarray

    def bits_per_byte(self) -> float:
        """Mean -log2 p(byte t+1 | bytes <= t) over the sequence's n - 1 predictions."""
        z = self.logits[:-1]
        logp = z - special.logsumexp(z, axis=-1, keepdims=True)
        return float(-logp[np.arange(len(z)), self.ids[1:]].mean() / np.log(2))


def run(lm: ReluLM, ids: object) -> Trace:
    """The forward pass over byte ids (ints in 0..255, at most the context length)."""
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.size < 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be a 1-D array of ints; got {ids.dtype} of shape {ids.shape}")
    if ids.min() < 0 or ids.max() >= lm.config["vocab"] or ids.size > lm.config["context"]:
        raise ValueError(f"ids must be bytes (0..{lm.config['vocab'] - 1}), at most "
                         f"{lm.config['context']} of them; got {ids.size} in "
                         f"{ids.min()}..{ids.max()}")
    c, w = lm.config, lm.weights
    x = w["embed"][ids]
    hidden, qkv = [x], []
    for layer in range(c["n_layers"]):
        x, arrays = block(x, lm, layer)
        hidden.append(x)
        qkv.append(arrays)
    logits = rms_norm(x, w["final_norm"], c["rms_eps"]) @ w["embed"].T
    Q, K, V = (np.stack([a[i] for a in qkv]) for i in range(3))
    return Trace(ids.astype(np.int64), np.stack(hidden), Q, K, V, logits)
