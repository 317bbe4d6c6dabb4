"""Dense attention, written from the formulas: the reference every HSR result is checked against.

With scores ``S = Q K^T / sqrt(d)`` (``s_ij = <q_i, k_j> / sqrt(d)``):

- ReLU^alpha: ``A = ReLU(S - b)^alpha``, ``D = diag(A 1)``, ``Attn = D^{-1} A V``.
- softmax: ``A = exp(S)``, same ``D`` and ``Attn``; with a threshold b only the "massively
  activated" entries ``s_ij >= b`` are kept (and the sinks and window, see below), and the
  softmax is renormalised over them: ``Attn_hat = D_hat^{-1} A_hat V``.

Causal (query i sees keys 0..i) is a mask on S. Sinks (the first ``sinks`` keys) and the window
(the last ``window`` keys a row sees: i - window + 1 .. i when causal) are always kept; they
change a thresholded softmax, never ReLU^alpha, which is exact whatever is computed densely.

Which entries are kept is decided on the decisive score (``scores.settle_block``): the entries
of S within rounding of b are replaced by the correctly rounded score, so the kept set is the
one every HSR path keeps, to the entry; the values then agree to rounding.

Three numerical choices, all leaving ``D^{-1} A V`` unchanged: softmax subtracts the row max
before ``exp`` and ReLU^alpha divides by the row max before the power, so neither A nor D can
overflow; values near the float limit are scaled by a power of two before ``A V`` and back
after (``scores.value_scale``), so the output, a convex combination of rows of V, stays
finite. A row with no weight at all (``D_ii = 0``) is a zero row and flagged, never NaN.
"""

from __future__ import annotations

import numpy as np

from ._stats import AttentionStats
from .scores import FAR_B, SCORE_BLOCK, max_abs, row_bounds, settle_block, tolerance, value_scale


def relu_power(R: np.ndarray, alpha: int) -> np.ndarray:
    """``(R / max_j R_ij)^alpha`` along the last axis: ReLU^alpha up to the row's factor.

    In place (R is overwritten and returned): every caller passes a fresh temporary, and a
    score block is large enough for one more allocation to cost as much as the arithmetic.
    """
    top = R.max(axis=-1, keepdims=True, initial=0.0)  # R >= 0; an empty gather is fine
    R /= np.where(top > 0, top, 1.0)  # an empty row stays zero
    return np.power(R, alpha, out=R) if alpha > 1 else R


def relu_gap(S: np.ndarray, b: float) -> np.ndarray:
    """``ReLU(S - b)`` in place, halved (both S and b) when ``|b|`` is so large that ``S - b``
    could overflow: the weights are divided by their row max next, so the factor cancels."""
    if abs(b) > FAR_B:
        S *= 0.5
        b *= 0.5
    S -= b
    return np.maximum(S, 0.0, out=S)


def softmax_weights(S: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """``exp(s_ij - max over kept)`` on the kept entries, 0 elsewhere (an empty row stays 0)."""
    top = np.max(S, axis=-1, keepdims=True, where=kept, initial=-np.inf)
    shift = np.where(np.isfinite(top), top, 0.0)
    return np.exp(S - shift, where=kept, out=np.zeros_like(S))


def dropped_mass(S: np.ndarray, visible: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """eps_i = sum_{dropped j} exp(s_ij) / sum_{visible j} exp(s_ij), summed directly (no 1 - x)."""
    top = np.max(S, axis=-1, keepdims=True, where=visible, initial=-np.inf)
    E = np.exp(S - top, where=visible, out=np.zeros_like(S))  # the row max contributes 1
    return E.sum(axis=-1, where=~kept) / E.sum(axis=-1)


def normalise(W: np.ndarray, V: np.ndarray, max_value: float) -> tuple[np.ndarray, np.ndarray]:
    """``D^{-1} W V`` with ``D = diag(W 1)``; rows with ``D_ii = 0`` give zeros. Also D == 0.

    ``max_value`` is max |V|. The product is taken on ``c V`` (``scores.value_scale``: c = 1
    unless V is near the float limit) and clipped to max |V|, which the exact convex
    combination never exceeds, so the output is finite."""
    D = W.sum(axis=-1)
    empty = D == 0
    c = value_scale(max_value, V.shape[0])
    if c == 1.0:
        return (W @ V) / np.where(empty, 1.0, D)[..., None], empty
    out = (W @ (V * c)) / np.where(empty, 1.0, D)[..., None]
    np.clip(out, -max_value * c, max_value * c, out=out)  # before 1/c: no rounding overflows
    return out / c, empty


def _count_rows(X: np.ndarray) -> np.ndarray | int:
    """Non-zero entries per row of a block (one row, a decoding step: the faster whole count)."""
    return np.count_nonzero(X) if len(X) == 1 else np.count_nonzero(X, axis=1)


def _row_blocks(m: int, n: int) -> list[tuple[int, int]]:
    """Row ranges whose score block ``S[r0:r1]`` holds about SCORE_BLOCK entries."""
    step = max(1, SCORE_BLOCK // max(n, 1))
    return [(r0, min(m, r0 + step)) for r0 in range(0, m, step)]


def _seen(r0: int, r1: int, n: int, causal: bool) -> np.ndarray:
    """How many keys each row r0..r1-1 sees: i + 1 when causal, n otherwise (a column)."""
    return np.arange(r0 + 1, r1 + 1)[:, None] if causal else np.full((r1 - r0, 1), n)


def _masks(seen: np.ndarray, n_keys: int, sinks: int, window: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """``visible`` (j < seen_i) and ``forced`` (the sinks and the window of each row)."""
    cols = np.arange(n_keys)
    s0, w0 = row_bounds(seen, sinks, window)
    visible = cols < seen
    forced = visible & ((cols < s0) | (cols >= w0))
    return visible, forced


def _scores(Q: np.ndarray, K: np.ndarray, r0: int, r1: int, causal: bool, b: float | None,
            tol: np.ndarray) -> np.ndarray:
    """``S = Q K^T / sqrt(d)`` for rows r0..r1 (only keys 0..r1-1 when causal), the entries
    within rounding of b settled to their decisive score (``scores.settle_block``)."""
    keys = K[:r1] if causal else K
    S = (keys @ Q[r0])[None] if r1 - r0 == 1 else Q[r0:r1] @ keys.T  # one row: a matvec
    S /= np.sqrt(Q.shape[1])
    if b is not None:
        settle_block(S, b, tol[r0:r1, None], Q, K, r0)
    return S


def _relu_scores(Q: np.ndarray, K: np.ndarray, r0: int, r1: int, causal: bool, b: float,
                 tol: np.ndarray) -> np.ndarray:
    """``ReLU(S - b)`` for rows r0..r1, in place on the score block. The entries within rounding
    of b are settled on ``S - b`` (``settle_block(shift=b)``), which the ReLU needs anyway."""
    S = _scores(Q, K, r0, r1, causal, None, tol)
    if abs(b) > FAR_B:  # nothing is near b
        return relu_gap(S, b)
    S -= b
    settle_block(S, b, tol[r0:r1, None], Q, K, r0, shift=b)
    return np.maximum(S, 0.0, out=S)


def dense_relu(Q: np.ndarray, K: np.ndarray, V: np.ndarray, alpha: int, b: float,
               causal: bool, bounds: tuple[float, float] | None = None
               ) -> tuple[np.ndarray, AttentionStats]:
    """``Attn = D^{-1} A V`` with ``A = ReLU(Q K^T / sqrt(d) - b)^alpha``, computed densely.

    ``bounds``: (max |K|, max |V|) if the caller knows them (else they are measured)."""
    m, n = len(Q), len(K)
    out = np.zeros((m, V.shape[1]))
    activated, empty = np.zeros(m, dtype=np.int64), np.zeros(m, dtype=bool)
    max_key, top = bounds or (max_abs(K), max_abs(V))
    tol = tolerance(Q, max_key)
    for r0, r1 in _row_blocks(m, n):
        R = _relu_scores(Q, K, r0, r1, causal, b, tol)  # ReLU(s_ij - b)
        if causal:  # query i sees keys 0..i: only the diagonal block holds keys j > i
            R[:, r0:r1][np.triu(np.ones((r1 - r0, r1 - r0), dtype=bool), 1)] = 0.0
        activated[r0:r1] = _count_rows(R)
        out[r0:r1], empty[r0:r1] = normalise(relu_power(R, alpha), V[: R.shape[1]], top)
    seen = np.arange(1, m + 1) if causal else np.full(m, n, dtype=np.int64)
    return out, AttentionStats("dense", "relu", activated, seen,
                               np.zeros(m, dtype=np.int64), empty)


def dense_softmax(Q: np.ndarray, K: np.ndarray, V: np.ndarray, b: float | None, causal: bool,
                  sinks: int, window: int, measure_dropped: bool,
                  bounds: tuple[float, float] | None = None
                  ) -> tuple[np.ndarray, AttentionStats]:
    """Softmax of ``Q K^T / sqrt(d)``, kept to ``s_ij >= b`` (plus sinks and window) if b is set.

    Also the dropped mass eps_i of every row (zeros when b is None: nothing is dropped).
    ``bounds``: (max |K|, max |V|) if the caller knows them (else they are measured).
    """
    m, n = len(Q), len(K)
    out = np.zeros((m, V.shape[1]))
    activated, empty = np.zeros(m, dtype=np.int64), np.zeros(m, dtype=bool)
    eps = np.zeros(m)
    max_key, top = bounds or (max_abs(K), max_abs(V))
    tol = tolerance(Q, max_key)
    for r0, r1 in _row_blocks(m, n):
        S = _scores(Q, K, r0, r1, causal, b, tol)
        visible, forced = _masks(_seen(r0, r1, n, causal), S.shape[1], sinks, window)
        kept = visible.copy()
        if b is not None:
            kept &= (S >= b) | forced  # the massively activated entries, sinks and window
            eps[r0:r1] = dropped_mass(S, visible, kept)
        activated[r0:r1] = _count_rows(kept)
        out[r0:r1], empty[r0:r1] = normalise(softmax_weights(S, kept), V[: S.shape[1]], top)
    seen = np.arange(1, m + 1) if causal else np.full(m, n, dtype=np.int64)
    return out, AttentionStats("dense", "softmax", activated, seen,
                               np.zeros(m, dtype=np.int64), empty,
                               dropped_mass=eps if measure_dropped else None)
