"""``relu_attention`` and ``softmax_attention``: check the arguments, then compute densely
(``dense.py``, the reference) or with half-space queries, all rows asked at once
(``batch.py``; with ``backend="auto"`` perhaps the dense kernel, ``hsr.plan``)."""

from __future__ import annotations

import numpy as np

from . import _checks as check
from ._stats import AttentionStats
from .batch import hsr_attention
from .dense import dense_relu, dense_softmax


def relu_attention(Q: object, K: object, V: object, alpha: int = 1, b: float = 0.0,
                   causal: bool = False, method: str = "dense", backend: str = "auto",
                   sinks: int = 0, window: int = 0, return_stats: bool = False
                   ) -> np.ndarray | tuple[np.ndarray, AttentionStats]:
    """ReLU^alpha attention: ``Attn = D^{-1} A V``, ``A = ReLU(Q K^T / sqrt(d) - b)^alpha``,
    ``D = diag(A 1)``.

    Q is m x d, K is n x d, V is n x d_v; alpha a positive integer; b the threshold (bias) on
    the score s_ij = <q_i, k_j>/sqrt(d). A row with no positive entry (``D_ii = 0``) is a zero
    row, counted in ``stats.empty_rows``. ``causal=True`` (needs m == n): query i sees keys
    0..i.

    method="dense" computes S = Q K^T / sqrt(d) in full. method="hsr" asks an ``HSR`` structure
    (``backend``) for ``{ j : <q_i, k_j> >= sqrt(d) b }`` once per row, which holds every
    non-zero entry of the row (the ties, ReLU(0) = 0, weigh nothing), and computes the row over
    those keys only. The same result as method="dense", in this precise sense: the kept
    entries ``s_ij > b`` are identical (both methods decide on the correctly rounded score,
    ``scores.py``), so ``stats.activated`` and ``stats.empty`` are equal, and the values agree
    to rounding (the sums are taken in another order). The first ``sinks`` keys and the last
    ``window`` keys a row sees are computed densely; for ReLU^alpha this changes nothing but
    the work.

    Cost of method="hsr": structures are built over K (O(n log n)) on every call, then each
    row costs its queries plus O(d k_i) for its k_i reported keys; all rows are asked at once
    (``HSR.query_many``: the kd-tree walks every query together, level by level), and the rows
    are computed vectorised. Keep a ``Decoder`` to reuse a structure across calls. Causal rows
    split the keys by position (``positions.py``): row i asks only structures over keys before
    it (no structure holds a key j > i) and scores its own tile of B = 512 keys directly,
    one B x B product masked to j <= i. With
    ``backend="auto"`` the dense kernel computes the rows where the tree cannot prune (high d,
    few rows, or a race on a few rows the tree lost: ``hsr.plan.prefill``); ``stats.kernel``
    says which kernel ran ("dense", or the structures' backends such as "compiled") and
    ``stats.plan`` why.

    Every finite input that passes the checks gives a finite output (a convex combination of
    rows of V, even for V near the float limit), never NaN; the inputs are never modified.
    Q, K, V and b are taken exactly or refused, as by ``HSR``: a value that float64 cannot
    hold (an int64 beyond 2^53 that would round, a longdouble with more bits, a ``Fraction``
    such as 1/3) raises ValueError naming the argument; pass ``float(b)`` to use the rounded
    value.

    Returns Attn (m x d_v), and the ``AttentionStats`` if ``return_stats``.

    Examples
    --------
    Two queries, three keys, one value column; b = 0.5 keeps the scores above 0.5
    (notebook 2 teaches it):

    >>> Q = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> K = np.array([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    >>> V = np.array([[1.0], [2.0], [3.0]])
    >>> dense = relu_attention(Q, K, V, alpha=1, b=0.5)
    >>> dense.round(6).tolist()
    [[1.369398], [2.184699]]
    >>> fast, stats = relu_attention(Q, K, V, alpha=1, b=0.5, method="hsr", backend="numpy",
    ...                              return_stats=True)
    >>> bool(np.allclose(fast, dense)), stats.total_activated
    (True, 4)
    """
    Q, K, V = check.qkv(Q, K, V)
    alpha = check.alpha(alpha)
    b = check.threshold(b)
    assert b is not None
    causal = check.causal(causal, len(Q), len(K))
    method = check.choice("method", method, check.METHODS)
    backend = check.backend(backend)
    sinks, window = check.count("sinks", sinks), check.count("window", window)
    return_stats = check.flag("return_stats", return_stats)
    if method == "dense":
        out, stats = dense_relu(Q, K, V, alpha, b, causal)
    else:
        out, stats = hsr_attention(Q, K, V, "relu", alpha, b, causal, backend, sinks, window,
                                   measure_dropped=False)
    return (out, stats) if return_stats else out


def softmax_attention(Q: object, K: object, V: object, causal: bool = False,
                      method: str = "dense", b: float | None = None, backend: str = "auto",
                      sinks: int = 0, window: int = 0, return_stats: bool = False,
                      measure_dropped: bool = True
                      ) -> np.ndarray | tuple[np.ndarray, AttentionStats]:
    """Softmax attention: ``Attn = D^{-1} A V``, ``A = exp(Q K^T / sqrt(d))``, ``D = diag(A 1)``
    (computed stably: the row max is subtracted before exp).

    With a threshold b, only the "massively activated" entries ``s_ij >= b`` are kept (and the
    first ``sinks`` and last ``window`` keys each row sees), and the softmax is renormalised
    over them: ``Attn_hat``. Row i's dropped mass is eps_i = (sum of exp(s_ij) over the dropped
    entries) / (sum over the whole row), and ``||Attn - Attn_hat||_inf <= 2 max_i eps_i
    ||V||_inf`` (``hsr_lab.theory.softmax_error_bound``). A row that keeps nothing is a zero
    row with eps_i = 1.

    method="dense" computes the kept set from the full S = Q K^T / sqrt(d) (b=None: plain
    softmax). method="hsr" needs b and finds the kept entries with one half-space query per row
    (``<q_i, k_j> >= sqrt(d) b``, all rows asked at once, as for ``relu_attention``): the kept
    entries are the ones method="dense" keeps, exactly, and the values agree to rounding.
    Measuring eps_i needs the normaliser of the whole row, the very dense work HSR avoids: it
    is done for measurement only, and ``measure_dropped=False`` skips it
    (``stats.dropped_mass`` is then None). Q, K, V and b are taken exactly or refused by
    name, as in ``relu_attention``.

    Returns Attn_hat (m x d_v), and the ``AttentionStats`` if ``return_stats``.

    Examples
    --------
    Plain softmax, then only the scores >= 0.5 kept (notebook 4 teaches the dropped mass):

    >>> Q = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> K = np.array([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    >>> V = np.array([[1.0], [2.0], [3.0]])
    >>> softmax_attention(Q, K, V).round(6).tolist()
    [[1.70802], [2.143966]]
    >>> kept, stats = softmax_attention(Q, K, V, b=0.5, method="hsr", return_stats=True)
    >>> kept.round(6).tolist(), stats.dropped_mass.round(4).tolist()
    ([[1.660477], [2.330238]], [0.14, 0.14])
    """
    Q, K, V = check.qkv(Q, K, V)
    causal = check.causal(causal, len(Q), len(K))
    method = check.choice("method", method, check.METHODS)
    if method == "hsr" and b is None:
        raise ValueError("b is required with method='hsr': the threshold on the score "
                         "<q, k>/sqrt(d) above which entries are kept; got None")
    b = check.threshold(b, required=False)
    backend = check.backend(backend)
    sinks, window = check.count("sinks", sinks), check.count("window", window)
    return_stats = check.flag("return_stats", return_stats)
    measure_dropped = check.flag("measure_dropped", measure_dropped)
    if method == "dense":
        out, stats = dense_softmax(Q, K, V, b, causal, sinks, window, measure_dropped)
    else:
        assert b is not None
        out, stats = hsr_attention(Q, K, V, "softmax", 1, b, causal, backend, sinks, window,
                                   measure_dropped)
    return (out, stats) if return_stats else out
