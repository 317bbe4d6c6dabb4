"""Running a masker: over whole (small) matrices, and as a layer's attention in a model.

``select(masker, Q, K)`` asks the masker for every row of a causal prefix and returns one
``Selection`` over all n rows (for tests, notebooks, panels). ``masked_attention(layer, V,
masker)`` is attention with the masker's kept keys, block by block, in Q's dtype (float32 for
SmolLM2), with what it cost and how far it is from dense:

    o_i     = sum_j p_ij v_j                                  (dense, p = softmax_j(s_ij))
    o_hat_i = sum_{j in K_i} w_ij e^{s_ij} v_j / sum_{j in K_i} w_ij e^{s_ij}

    tau_i = TV(p_i, p_hat_i) = 1/2 sum_j |p_ij - p_hat_ij|  = sum_{j not in K_i} p_ij   (w = 1)

For a subset (w = 1) o_i - o_hat_i = tau_i (mu_tail - mu_head), with mu_head and mu_tail the
p-weighted means of v over the kept and the dropped keys (notebook 08 derives it), so
||o_i - o_hat_i|| = tau_i ||mu_tail - mu_head||.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._core import Layer, Masker, Selection, causal_fill, check_int, make_layer

BLOCK = 256  # query rows per block: (H, 256, n) scores at a time


def _groups(kv_head: tuple[int, ...]) -> list[tuple[int, slice | list[int]]]:
    """(g, heads reading KV head g), heads as a slice where they are consecutive (a view)."""
    out = []
    for g in sorted(set(kv_head)):
        heads = [h for h, k in enumerate(kv_head) if k == g]
        run = heads == list(range(heads[0], heads[-1] + 1))
        out.append((g, slice(heads[0], heads[-1] + 1) if run else heads))
    return out


def block_scores(layer: Layer, start: int, end: int) -> np.ndarray:
    """S = Q K^T / sqrt(d) for rows start..end-1 against keys 0..end-1, -inf above the
    diagonal: (H, r, end), Q's dtype. Query heads sharing a KV head share one product."""
    Q, K = layer.Q, layer.K
    H, r, d = Q.shape[0], end - start, Q.shape[2]
    S = np.empty((H, r, end), np.result_type(Q.dtype, K.dtype))
    for g, heads in _groups(layer.kv_head):
        q = Q[heads, start:end].reshape(-1, d)
        if isinstance(heads, slice):  # write the product straight into S
            np.matmul(q, K[g, :end].T, out=S[heads].reshape(-1, end))
        else:
            S[heads] = (q @ K[g, :end].T).reshape(-1, r, end)
    S *= S.dtype.type(1 / np.sqrt(d))  # 1/8 exactly at d = 64
    return causal_fill(S, start)  # only the block's own keys can lie in the future


def softmax_block(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """E = exp(S - max_j S) and P = E / sum_j E, row by row (future keys: 0)."""
    E, D = _exp_block(S)
    return E, E / D[..., None]


def _exp_block(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """E = exp(S - max_j S) (a new array) and D = sum_j E."""
    E = np.subtract(S, S.max(axis=-1, keepdims=True))
    np.exp(E, out=E)
    return E, E.sum(axis=-1)


def select(masker: Masker, Q: object, K: object, kv_head: object = None, index: int = 0,
           n_layers: int = 1, block: int = BLOCK) -> Selection:
    """The masker's selection for every row of the causal prefix Q (H, n, d), K (G, n, d),
    as one ``Selection`` of shape (H, n, n). Scores in Q's dtype (float64 for lists)."""
    layer = make_layer(Q, K, kv_head, index, n_layers)
    block = check_int("block", block)
    H, n = layer.Q.shape[:2]
    keep, scored = np.zeros((H, n, n), bool), np.zeros((H, n))
    weights = None
    masker.begin(layer)
    for start in range(0, n, block):
        end = min(start + block, n)
        S = block_scores(layer, start, end)
        sel = masker.block(start, S, softmax_block(S)[1])
        keep[:, start:end, :end], scored[:, start:end] = sel.keep, sel.scored
        if sel.weights is not None:
            weights = np.ones((H, n, n)) if weights is None else weights
            weights[:, start:end, :end] = sel.weights
    return Selection(0, keep, None if weights is None else np.where(keep, weights, 0.0), scored)


@dataclass(frozen=True, eq=False)
class LayerStats:
    """Sums over one layer's rows, per query head (divide by ``rows`` for means).

    kept, scored: kept keys and keys scored, summed over rows; visible: sum_i (i + 1);
    tau: summed TV distance between dense and sparse rows; err: summed relative L2 error
    ||o_i - o_hat_i|| / ||o_i|| over the ``err_rows`` rows where it is measured; empty: rows
    that kept nothing (their output is 0).
    """

    rows: int
    visible: float
    kept: np.ndarray
    scored: np.ndarray
    tau: np.ndarray
    err: np.ndarray
    err_rows: int
    empty: np.ndarray

    def __repr__(self) -> str:
        return (f"LayerStats({self.rows} rows: kept {self.kept.mean() / self.visible:.3f} of "
                f"the visible keys, scored {self.scored.mean() / self.visible:.3f}, mean tau "
                f"{self.tau.mean() / self.rows:.3f}, mean relative L2 error "
                f"{self.err.mean() / max(self.err_rows, 1):.3f})")


def masked_attention(layer: Layer, V: np.ndarray, masker: Masker, block: int = BLOCK,
                     err_every: int = 8) -> tuple[np.ndarray, LayerStats]:
    """Attention of every row over the masker's kept keys, (H, n, d_v), and its ``LayerStats``.

    V: (G, n, d_v). The relative L2 error against dense attention is measured on every
    ``err_every``-th row (rows err_every - 1, 2 err_every - 1, ...), tau on every row."""
    H, n = layer.Q.shape[:2]
    out = np.empty((H, n, V.shape[-1]), np.result_type(layer.Q.dtype, V.dtype))
    sums = {k: np.zeros(H) for k in ("kept", "scored", "tau", "err", "empty")}
    err_rows = 0
    masker.begin(layer)
    for start in range(0, n, block):
        end = min(start + block, n)
        S = block_scores(layer, start, end)
        E, D = _exp_block(S)
        P = E / D[..., None] if masker.uses_probabilities else None
        sel = masker.block(start, S, P)
        picked = np.arange(start, end)[(np.arange(start, end) + 1) % err_every == 0] - start
        if len(picked):  # dense outputs of the rows where the error is measured
            dense = _attend(E[:, picked], V, layer.kv_head, end) / D[:, picked, None]
        if sel.weights is not None:
            sums["tau"] += _tv(E, D, sel).sum(axis=-1)
        W = np.multiply(E, sel.keep, out=E)  # E is not needed after this
        if sel.weights is None:  # tau = dropped mass, from the same sums as D
            sums["tau"] += _dropped(D, W).sum(axis=-1)
        else:
            W *= sel.weights.astype(W.dtype, copy=False)
        Dk = W.sum(axis=-1)
        empty = Dk == 0
        out[:, start:end] = _attend(W, V, layer.kv_head, end) / np.where(empty, 1, Dk)[..., None]
        if len(picked):
            diff = np.linalg.norm(dense - out[:, start + picked], axis=-1)
            sums["err"] += (diff / np.maximum(np.linalg.norm(dense, axis=-1), 1e-30)).sum(-1)
            err_rows += len(picked)
        sums["kept"] += sel.kept.sum(axis=-1)
        sums["scored"] += sel.scored.sum(axis=-1)
        sums["empty"] += empty.sum(axis=-1)
    visible = float(n * (n + 1) / 2)
    return out, LayerStats(n, visible, err_rows=err_rows, **sums)


def _attend(W: np.ndarray, V: np.ndarray, kv_head: tuple[int, ...], end: int) -> np.ndarray:
    """W (H, r, end) @ V[kv_head[h], :end] for each head, one product per KV head."""
    H, r = W.shape[:2]
    out = np.empty((H, r, V.shape[-1]), np.result_type(W.dtype, V.dtype))
    for g, heads in _groups(kv_head):
        w = W[heads].reshape(-1, end)  # a view where the heads are consecutive
        out[heads] = (w @ V[g, :end]).reshape(-1, r, V.shape[-1])
    return out


def _dropped(D: np.ndarray, W: np.ndarray) -> np.ndarray:
    """The dropped mass tau_i = (D_i - sum_j W_ij) / D_i of a subset (W = E on kept keys):
    0 exactly when every key is kept (the same sum, in the same order)."""
    return np.maximum(D.astype(np.float64) - W.sum(axis=-1), 0.0) / D


def _tv(E: np.ndarray, D: np.ndarray, sel: Selection) -> np.ndarray:
    """TV(p_i, p_hat_i) = 1/2 sum_j |p_ij - p_hat_ij| per (head, row), for weighted rules."""
    W = E * sel.keep * sel.weights.astype(E.dtype, copy=False)
    Dw = W.sum(axis=-1)
    P_hat = W / np.where(Dw == 0, 1, Dw)[..., None]
    return 0.5 * np.abs(E / D[..., None] - P_hat).sum(axis=-1, dtype=np.float64)
