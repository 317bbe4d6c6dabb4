"""What every masker shares: the budget, the layer it reads, the selection it returns.

A masker is a selection rule for causal attention. For one layer it reads the causal prefix,
queries Q (H, n, d) and keys K (G, n, d) with query head h reading KV head ``kv_head[h]``,
and for each row i (query i) keeps a set K_i of keys j <= i. Rows are handed to it in
consecutive blocks, rows start .. start + r - 1, with the block's scores

    S[h, i, j] = <q_{h,i}, k_{g,j}> / sqrt(d)   for j <= i,   -inf for j > i   (H, r, e)

and dense probabilities P = softmax_j(S) (e = start + r: the block sees keys 0 .. e - 1).
It answers with a ``Selection``: the kept keys as a boolean mask, optional estimator weights
(MagicPIG's 1/p), and the keys it scored per row to choose them, in key-equivalents (one
d-dimensional inner product each), the work the rule pays on top of attending.

The attention it stands for renormalises over the kept keys:

    o_hat_i = sum_{j in K_i} w_ij exp(s_ij) v_j / sum_{j in K_i} w_ij exp(s_ij),   w_ij = 1
              unless the rule has weights;  a row that keeps nothing gives o_hat_i = 0.

Budgets are per row: ``Budget(f, floor)`` keeps k_i = min(i + 1, max(floor, ceil(f (i + 1))))
keys in row i, a share f of its prefix with a floor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

FLOOR = 16  # keys a budgeted row keeps at least (all of them in the first 16 rows)


# ----------------------------------------------------------------------------- budget
@dataclass(frozen=True)
class Budget:
    """Kept keys per row: k_i = min(i + 1, max(floor, ceil(fraction (i + 1))))."""

    fraction: float
    floor: int = FLOOR

    def __post_init__(self) -> None:
        f = self.fraction
        if isinstance(f, bool) or not isinstance(f, int | float | np.number) \
                or not np.isfinite(f) or not 0 < f <= 1:
            raise ValueError(f"budget fraction must be a number in (0, 1] (a share of the "
                             f"prefix, e.g. 1/16); got {f!r}")
        if isinstance(self.floor, bool) or not isinstance(self.floor, int | np.integer) \
                or self.floor < 1:
            raise ValueError(f"budget floor must be an int >= 1; got {self.floor!r}")
        object.__setattr__(self, "fraction", float(f))
        object.__setattr__(self, "floor", int(self.floor))

    def keys(self, rows: np.ndarray) -> np.ndarray:
        """k_i for the rows ``rows`` (0-based positions): int64, 1 <= k_i <= i + 1."""
        seen = np.asarray(rows, np.int64) + 1
        # ceil(f * seen), rounded so that f = 1/16 of 32 is exactly 2, not 3 from 2.0000001
        share = np.ceil(np.round(self.fraction * seen, 9)).astype(np.int64)
        return np.minimum(seen, np.maximum(self.floor, share))

    def mean_share(self, n: int) -> float:
        """sum_i k_i / sum_i (i + 1) over rows 0 .. n - 1: the share of visible entries kept."""
        rows = np.arange(n)
        return float(self.keys(rows).sum() / (rows + 1).sum())

    def __str__(self) -> str:
        inverse = 1 / self.fraction
        frac = f"1/{inverse:.0f}" if abs(inverse - round(inverse)) < 1e-9 else f"{self.fraction:g}"
        return f"{frac} of the prefix (at least {self.floor} keys)"


DEFAULT_BUDGET = Budget(1 / 16)


# ----------------------------------------------------------------------------- layer
@dataclass(frozen=True, eq=False)
class Layer:
    """One attention layer's causal prefix, as a masker reads it.

    Q: (H, n, d) queries; K: (G, n, d) keys (both after RoPE for SmolLM2); kv_head: the KV head
    of each query head; index: the layer's number (Quest and MagicPIG keep some layers dense);
    n_layers: how many layers the model has.
    """

    Q: np.ndarray
    K: np.ndarray
    kv_head: tuple[int, ...]
    index: int = 0
    n_layers: int = 1

    @property
    def n(self) -> int:
        """The number of tokens (rows and keys)."""
        return self.Q.shape[1]

    @property
    def d(self) -> int:
        """The head dimension."""
        return self.Q.shape[2]

    def keys_of(self, h: int) -> np.ndarray:
        """K of the KV head that query head h reads, (n, d)."""
        return self.K[self.kv_head[h]]

    def head_keys(self) -> np.ndarray:
        """K repeated for each query head, (H, n, d) (a view per head, one copy in all)."""
        return self.K[list(self.kv_head)]


def make_layer(Q: object, K: object, kv_head: object = None, index: int = 0,
               n_layers: int = 1) -> Layer:
    """Check Q (H, n, d) and K (G, n, d) (2-D arrays are one head) and build a ``Layer``.

    ``kv_head`` defaults to grouped-query attention with H / G query heads per KV head,
    query head h reading KV head h // (H / G)."""
    Q, K = _heads("Q", Q), _heads("K", K)
    H, n, d = Q.shape
    G = K.shape[0]
    if K.shape[1:] != (n, d):
        raise ValueError(f"K must have shape (G, n, d) = (G, {n}, {d}) to match Q {Q.shape}; "
                         f"got {K.shape}")
    if kv_head is None:
        if H % G:
            raise ValueError(f"Q has {H} heads and K {G}: give kv_head (the KV head of each "
                             "query head), since H is not a multiple of G")
        kv_head = tuple(h // (H // G) for h in range(H))
    kv_head = tuple(int(g) for g in np.asarray(kv_head, np.int64).ravel())
    if len(kv_head) != H or not all(0 <= g < G for g in kv_head):
        raise ValueError(f"kv_head must give, for each of the {H} query heads, a KV head in "
                         f"0..{G - 1}; got {list(kv_head)}")
    return Layer(Q, K, kv_head, int(index), int(n_layers))


def _heads(name: str, value: object) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers; got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or 0 in arr.shape:
        raise ValueError(f"{name} must be a non-empty array of shape (heads, n, d) or (n, d); "
                         f"got shape {np.shape(value)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return arr if arr.dtype.kind == "f" else arr.astype(np.float64)


# ----------------------------------------------------------------------------- selection
@dataclass(frozen=True, eq=False)
class Selection:
    """What a masker keeps for a block of rows start .. start + r - 1 (keys 0 .. e - 1).

    keep: (H, r, e) bool, row i keeps key j; never j > i. weights: (H, r, e) estimator
    weights w_ij on the kept keys (MagicPIG's 1/p_ij), or None for w = 1. scored: (H, r)
    keys scored to choose them (key-equivalents: one d-dimensional inner product each).
    """

    start: int
    keep: np.ndarray
    weights: np.ndarray | None
    scored: np.ndarray

    @property
    def kept(self) -> np.ndarray:
        """(H, r) kept keys per row."""
        return self.keep.sum(axis=-1)

    def ids(self, head: int, row: int) -> np.ndarray:
        """The kept key ids of one row (0-based in the block's rows), sorted."""
        return np.flatnonzero(self.keep[head, row])

    def csr(self, head: int) -> tuple[np.ndarray, np.ndarray]:
        """(indptr, indices) of one head's kept keys: row r keeps indices[indptr[r]:indptr[r+1]]."""
        counts = self.keep[head].sum(axis=-1)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return indptr, np.nonzero(self.keep[head])[1].astype(np.int64)

    def __repr__(self) -> str:
        H, r, e = self.keep.shape
        weighted = ", weighted" if self.weights is not None else ""
        return (f"Selection(rows {self.start}..{self.start + r - 1}, {H} heads, keys < {e}: "
                f"kept {self.kept.mean():.1f} per row, scored {self.scored.mean():.1f}"
                f"{weighted})")


@dataclass(eq=False)
class Masker:
    """Base of every selection rule: ``begin(layer)`` once per layer, then ``block(start, S,
    P)`` for consecutive row blocks from row 0. Subclasses set ``name`` and ``paper``."""

    name = "masker"
    paper = ""
    uses_probabilities = False  # whether block(...) reads P (else it may be given None)
    _layer: Layer | None = field(default=None, init=False, repr=False)
    _next: int = field(default=0, init=False, repr=False)

    def begin(self, layer: Layer) -> None:
        """Start a layer: reset any state and read what the rule needs of the whole layer."""
        self._layer, self._next = layer, 0

    def block(self, start: int, S: np.ndarray, P: np.ndarray) -> Selection:
        """The selection for rows start .. start + r - 1, given their scores and probabilities."""
        if self._layer is None:
            raise RuntimeError(f"{self.name}: call begin(layer) before block(...)")
        if start != self._next:
            raise ValueError(f"{self.name}: blocks must come in order; expected rows from "
                             f"{self._next}, got {start}")
        self._next = start + S.shape[1]
        rows = np.arange(start, start + S.shape[1])
        return self._select(rows, S, P)

    def _select(self, rows: np.ndarray, S: np.ndarray, P: np.ndarray) -> Selection:
        raise NotImplementedError

    @property
    def layer(self) -> Layer:
        """The layer being read."""
        if self._layer is None:
            raise RuntimeError(f"{self.name}: no layer yet; call begin(layer)")
        return self._layer

    def dense_layer(self) -> bool:
        """True where the rule keeps this layer dense (Quest's first 2, MagicPIG's 0 and L/2)."""
        return False


# ----------------------------------------------------------------------------- helpers
def visible(rows: np.ndarray, e: int) -> np.ndarray:
    """(r, e) bool: key j is visible from row i (j <= i)."""
    return np.arange(e)[None, :] <= np.asarray(rows)[:, None]


def full_selection(rows: np.ndarray, H: int, e: int, scored: np.ndarray | None = None
                   ) -> Selection:
    """Keep every visible key (the dense rule); scored defaults to i + 1 per row."""
    keep = np.broadcast_to(visible(rows, e), (H, len(rows), e)).copy()
    if scored is None:
        scored = np.broadcast_to((rows + 1).astype(np.float64), (H, len(rows))).copy()
    return Selection(int(rows[0]), keep, None, scored)


def top_k_mask(X: np.ndarray, k: np.ndarray, available: np.ndarray | None = None
               ) -> np.ndarray:
    """For each row of X (..., r, e), exactly min(k, finite entries) of its largest finite
    entries, as a bool mask; ties at the cut are broken towards the lower index.

    k: (r,) or (..., r) ints. -inf marks entries that may not be kept; ``available``, if
    known, is the number of finite entries per row (saves counting them). Every kept entry is
    >= every dropped finite one (the definition of top-k, whatever the tie-break).
    """
    X = np.asarray(X)
    e = X.shape[-1]
    if available is None:
        available = (X > -np.inf).sum(axis=-1)
    k = np.minimum(np.broadcast_to(np.asarray(k, np.int64), X.shape[:-1]), available)
    k_max = int(k.max(initial=0))
    if k_max == 0:
        return np.zeros(X.shape, bool)
    if k_max >= e:
        top = np.sort(X, axis=-1)
    else:
        top = np.sort(np.partition(X, e - k_max, axis=-1)[..., e - k_max:], axis=-1)
    width = top.shape[-1]
    cut = np.take_along_axis(top, np.clip(width - k, 0, width - 1)[..., None], axis=-1)
    cut[k == 0] = np.inf  # such a row keeps nothing
    keep = X >= cut  # cut is finite where k > 0, so -inf entries are never kept
    extra = keep.sum(axis=-1) - k  # ties at the cut kept beyond k
    if extra.any():
        keep = _drop_ties(X, keep, cut, extra)
    return keep


def causal_fill(X: np.ndarray, start: int) -> np.ndarray:
    """Set X[..., t, start + u] = -inf for u > t (keys after each row of a block that starts
    at row ``start``; X is (..., r, e)) in place, and return X."""
    r = X.shape[-2]
    t, u = np.triu_indices(r, 1)
    X[..., t, start + u] = -np.inf
    return X


def _drop_ties(X: np.ndarray, keep: np.ndarray, cut: np.ndarray, extra: np.ndarray
               ) -> np.ndarray:
    """Drop the ``extra`` highest-index entries equal to the cut from each row that has them."""
    fix = np.nonzero(extra > 0)
    tied = keep[fix] & (X[fix] == cut[fix])  # (rows to fix, e)
    from_end = np.cumsum(tied[:, ::-1], axis=-1)[:, ::-1]  # ties at or after j
    drop = tied & (from_end <= extra[fix][:, None])
    rows = keep[fix]
    rows[drop] = False
    keep[fix] = rows
    return keep


def signed_root(c: float, log_n: np.ndarray | float) -> np.ndarray | float:
    """sign(c) sqrt(|c| ln n): the paper's sqrt(c ln n) for c >= 0, mirrored for c < 0 (a
    threshold below the mean, which a large budget can need)."""
    return math.copysign(1.0, c) * np.sqrt(abs(c) * np.asarray(log_n, np.float64))


def check_number(name: str, value: object, low: float = -math.inf, high: float = math.inf,
                 *, open_low: bool = False) -> float:
    """``value`` as a float in [low, high] ((low, high] with ``open_low``), or a ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number) \
            or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    value = float(value)
    if value > high or value < low or (open_low and value == low):
        side = "(" if open_low else "["
        raise ValueError(f"{name} must be in {side}{low:g}, {high:g}]; got {value!r}")
    return value


def check_int(name: str, value: object, low: int = 1) -> int:
    """``value`` as an int >= low, or a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name} must be an int >= {low}; got {value!r}")
    return int(value)
