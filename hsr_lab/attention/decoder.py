"""Decoding with the KV cache in a half-space-reporting structure: the paper's reduction.

Row i of ReLU^alpha attention is non-zero exactly at ``{ j : <q_i, k_j> > sqrt(d) b }``, so one
half-space query with normal ``q`` and offset ``sqrt(d) b`` returns every key that carries
weight; the row is then computed exactly over those keys alone (gather their keys and values,
``ReLU(s_j - b)^alpha``, normalise). The query is closed (``>=``): a key exactly on the
threshold is reported, and its weight ``ReLU(0)^alpha = 0`` makes no difference. For softmax
the same query reports the "massively activated" keys ``s_j >= b``, the only ones kept.

``Decoder.step(q, k, v)`` appends one key and value (``HSR.add``: the logarithmic method,
O(log^2 n) amortised) and answers with the exact row over the whole cache. The cost of a step
is one HSR query plus O(d (k + sinks + window)) for the row, against O(d n) for the dense step
(``attend_dense``, which is also the oracle of the tests).

The offset is lowered by a rounding margin (``scores.hsr_offset``), so the query reports every
key whose decisive score (``scores.py``) is >= b, and perhaps a few more; the row then keeps
exactly the keys dense attention keeps (``scores.settle`` on both), and its values agree with
``attend_dense`` to rounding.

With ``backend="auto"``, a step over a small cache (``hsr.plan.decode``: fewer than
``DECODE_MIN_KEYS`` keys, or n d below ``DECODE_MIN_WORK``) is computed by the dense kernel
(the HSR query's fixed cost exceeds the dense step there); its stats say ``kernel="dense"``
and ``plan`` why. Any other backend always asks its structure.

The row is ``rows.exact_rows`` with one row: the kernel ``batch.hsr_attention`` runs over a
whole batch of rows (``relu_attention(..., method="hsr")``, causal prefill included), with the
same query offset (``scores.hsr_offset``). ``attend_dense`` is ``dense.py`` on one row.
"""

from __future__ import annotations

import numpy as np

from ..hsr import DEFAULT_LEAF_SIZE, HSR, plan
from ..validate import as_matrix, as_positive_int, as_vector
from . import _checks as check
from ._stats import AttentionStats, kernel_of, row_stats
from .dense import dense_relu, dense_softmax
from .rows import Rule, dropped_mass, exact_rows
from .scores import hsr_offset, row_bounds


class Decoder:
    """A KV cache in an HSR structure; ``step(q, k_new, v_new)`` -> the exact attention row.

    Parameters
    ----------
    d : head dimension of queries and keys.
    alpha : power of ReLU^alpha (positive integer; ignored for softmax).
    b : threshold on the score s_j = <q, k_j>/sqrt(d): ReLU(s_j - b)^alpha, or the softmax
        keeps s_j >= b.
    kind : "relu" (ReLU^alpha, exact) or "softmax" (kept entries renormalised).
    backend, leaf_size : of the ``HSR`` structure that holds the keys.
    sinks, window : the first ``sinks`` and the last ``window`` keys are always kept dense.
    keys, values : an optional prefilled cache (n x d and n x d_v), copied.
    measure_dropped : softmax only: also compute eps, the dropped share of the softmax mass
        (a full pass over the cache, for measurement; False for the fast path).

    The cache keeps its own copy of the keys and values in arrays that double when full, so
    that a step gathers the reported rows directly (the HSR structure holds the keys again).
    b, keys, values, q, k_new and v_new are taken exactly or refused by name, as by ``HSR``
    (``attention._checks``): a value float64 would round raises ValueError.

    Examples
    --------
    Decoding three steps with ReLU attention at b = 0.5 (notebook 5 teaches it): each step
    appends its key and value, then returns the exact row over the whole cache.

    >>> decoder = Decoder(2, b=0.5, backend="numpy")
    >>> K = [[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]]
    >>> V = [[1.0], [2.0], [3.0]]
    >>> for k, v in zip(K, V):
    ...     row, stats = decoder.step([1.0, 0.0], k, v)
    ...     print(row.round(6).tolist(), stats.total_activated)
    [1.0] 1
    [1.0] 1
    [1.369398] 2
    """

    def __init__(self, d: int, alpha: int = 1, b: float = 0.0, kind: str = "relu",
                 backend: str = "auto", sinks: int = 0, window: int = 0,
                 keys: object = None, values: object = None, measure_dropped: bool = True,
                 leaf_size: int = DEFAULT_LEAF_SIZE) -> None:
        self.d = as_positive_int("d", d)
        self.kind = check.choice("kind", kind, check.KINDS)
        self.alpha = check.alpha(alpha)
        self.b = check.threshold(b)
        self.backend = check.backend(backend, self.d)
        self.sinks, self.window = check.count("sinks", sinks), check.count("window", window)
        self.measure_dropped = check.flag("measure_dropped", measure_dropped)
        self.leaf_size = as_positive_int("leaf_size", leaf_size)
        self._keys = np.zeros((0, self.d))
        self._values: np.ndarray | None = None
        self._n = 0
        self._max_key = 0.0  # max |k_j|, for the rounding margin and the overflow check
        self._max_value = 0.0  # max |v_j|, to keep the weighted sum of values finite
        self._hsr: HSR | None = None
        if keys is not None or values is not None:
            self._prefill(keys, values)

    # -- the cache ---------------------------------------------------------------------------
    def _prefill(self, keys: object, values: object) -> None:
        """Store an initial cache and build the HSR structure over it, once."""
        if keys is None or values is None:
            raise ValueError("keys and values must be given together (a prefilled cache)")
        K = as_matrix("keys", keys, d=self.d, exact=True)
        V = as_matrix("values", values, exact=True)
        if len(V) != len(K):
            raise ValueError(f"values must have one row per key: {len(K)} rows; got shape "
                             f"{V.shape}")
        check.keys("keys", K)
        self._store(K, V)
        self._hsr = HSR(K, backend=self.backend, leaf_size=self.leaf_size)

    def _store(self, K: np.ndarray, V: np.ndarray) -> None:
        """Copy rows into the cache arrays, doubling their capacity when full."""
        need = self._n + len(K)
        if self._values is None:
            self._values = np.zeros((0, V.shape[1]))
        if need > len(self._keys):
            capacity = max(need, 2 * len(self._keys), 16)
            self._keys = _grown(self._keys, capacity, self._n)
            self._values = _grown(self._values, capacity, self._n)
        self._keys[self._n:need] = K
        self._values[self._n:need] = V
        self._n = need
        self._max_key = max(self._max_key, check.max_abs(K))
        self._max_value = max(self._max_value, check.max_abs(V))

    def append(self, k_new: object, v_new: object) -> None:
        """Add one key (d,) and value (d_v,) to the cache (and to the HSR structure)."""
        k = as_vector("k_new", k_new, d=self.d, exact=True)
        v = as_vector("v_new", v_new, d=self.d_v if self.d_v is not None else np.size(v_new),
                      exact=True)
        check.keys("k_new", k)
        before = (self._keys, self._values, self._n, self._max_key, self._max_value)
        self._store(k[None, :], v[None, :])
        try:  # HSR.add changes nothing if it raises; then neither does append
            if self._hsr is None:
                self._hsr = HSR(k[None, :], backend=self.backend, leaf_size=self.leaf_size)
            else:
                self._hsr.add(k[None, :])
        except BaseException:
            self._keys, self._values, self._n, self._max_key, self._max_value = before
            raise

    def step(self, q: object, k_new: object, v_new: object
             ) -> tuple[np.ndarray, AttentionStats]:
        """Append k_new and v_new, then attend with q over the whole cache (them included)."""
        q = self._query(q, extra=check.max_abs(as_vector("k_new", k_new, d=self.d, exact=True)))
        self.append(k_new, v_new)
        return self.attend(q)

    # -- one row -----------------------------------------------------------------------------
    def attend(self, q: object) -> tuple[np.ndarray, AttentionStats]:
        """The exact row over the cache, finding the keys that matter with one HSR query
        (``backend="auto"`` over a small cache: the dense kernel, ``hsr.plan.decode``).

        Examples
        --------
        >>> decoder = Decoder(2, b=0.5, keys=[[2.0, 0.0], [1.0, 1.0]], values=[[1.0], [3.0]])
        >>> row, stats = decoder.attend([1.0, 0.0])
        >>> row.round(6).tolist(), bool(np.allclose(row, decoder.attend_dense([1.0, 0.0])[0]))
        ([1.369398], True)
        """
        q = self._query(q)
        n = self._n
        s0, w0 = self._bounds()
        decision = plan.decode(self.backend, n, self.d)
        if decision.kernel == "dense":
            out, stats = self._dense_row(q)
            stats.method, stats.kernel, stats.plan = "hsr", "dense", decision  # a fresh object
            return out, stats
        parts, nodes, products = [np.arange(s0)], 0, 0
        if s0 < w0:  # keys between the sinks and the window: ask the structure
            assert self._hsr is not None
            ids, cost = self._hsr.query(q, self._offset(q), stats=True, sort=False)
            if s0 or w0 < n:  # cut to [s0, w0): a mask, as the ids come in any order
                ids = ids[(ids >= s0) & (ids < w0)]
            parts.append(ids)
            nodes, products = cost.nodes_visited, cost.inner_products
        parts.append(np.arange(w0, n))
        idx = np.concatenate(parts)
        forced = None  # softmax keeps the sinks and the window whatever their score
        if self.kind == "softmax":
            forced = (idx < s0) | (idx >= w0)
        indptr = np.array([0, len(idx)])
        out, kept = exact_rows(q[None, :], self._keys, self._values, indptr, idx, forced,
                               self._rule(), step=True)
        eps = None
        if self.kind == "softmax" and self.measure_dropped:
            eps = float(dropped_mass(q[None, :], self._keys[:n], np.array([0, kept.sum()]),
                                     idx[kept], np.array([n]))[0])
        activated = int(np.count_nonzero(kept))
        stats = row_stats("hsr", self.kind, activated, len(idx) + products, nodes, eps,
                          kernel_of(self._hsr.blocks) if s0 < w0 else "none")
        stats.plan = decision
        return out[0], stats

    def attend_dense(self, q: object) -> tuple[np.ndarray, AttentionStats]:
        """The dense step: ``dense.py`` on one row (scores of all n keys with one matvec,
        weights, normalise, weighted sum): the oracle of ``attend``."""
        q = self._query(q)
        self._bounds()
        return self._dense_row(q)

    def _dense_row(self, q: np.ndarray) -> tuple[np.ndarray, AttentionStats]:
        """``dense.py`` on the one row q (validated) over the cache."""
        n, Q = self._n, q[None, :]
        keys, values = self._keys[:n], self._values[:n]  # type: ignore[index]
        bounds = (self._max_key, self._max_value)
        if self.kind == "relu":
            out, stats = dense_relu(Q, keys, values, self.alpha, self.b, False, bounds)
        else:
            out, stats = dense_softmax(Q, keys, values, self.b, False, self.sinks, self.window,
                                       self.measure_dropped, bounds)
        return out[0], stats

    def _rule(self) -> Rule:
        """The weights of a row over this cache (``rows.Rule``)."""
        return Rule(self.kind, self.alpha, self.b, self._max_key, self._max_value)

    def _bounds(self) -> tuple[int, int]:
        """Keys [0, s0) are sinks and [w0, n) the window: both kept without asking the HSR."""
        if self._n == 0:
            raise ValueError("the cache is empty: append a key and a value first (or use step)")
        return row_bounds(self._n, self.sinks, self.window)  # type: ignore[return-value]

    def _query(self, q: object, extra: float = 0.0) -> np.ndarray:
        """Validate q against the cache (and a key about to be added)."""
        q = as_vector("q", q, d=self.d, exact=True)
        check.magnitude("q", check.max_abs(q), "the keys", max(self._max_key, extra), self.d)
        return q

    def _offset(self, q: np.ndarray) -> float:
        """sqrt(d) b, lowered by the rounding margin of <q, k> (``hsr_offset``)."""
        return float(hsr_offset(q[None, :], self.b, self._max_key)[0])

    # -- description -------------------------------------------------------------------------
    @property
    def d_v(self) -> int | None:
        """Width of the values (None until the first value arrives)."""
        return None if self._values is None else self._values.shape[1]

    @property
    def keys(self) -> np.ndarray:
        """The cached keys (n x d), a read-only view."""
        return _read_only(self._keys[: self._n])

    @property
    def values(self) -> np.ndarray:
        """The cached values (n x d_v), a read-only view."""
        if self._values is None:
            return _read_only(np.zeros((0, 0)))
        return _read_only(self._values[: self._n])

    @property
    def hsr(self) -> HSR | None:
        """The half-space reporting structure over the keys (None while the cache is empty)."""
        return self._hsr

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        power = f"alpha={self.alpha}, " if self.kind == "relu" else ""
        return (f"Decoder({self.kind}, {power}b={self.b:g}, n={self._n}, d={self.d}, "
                f"d_v={self.d_v}, sinks={self.sinks}, window={self.window}, "
                f"backend={self.backend!r}, capacity={len(self._keys)}, hsr={self._hsr!r})")


def _grown(arr: np.ndarray, capacity: int, used: int) -> np.ndarray:
    """A larger array holding the first ``used`` rows of ``arr``."""
    out = np.zeros((capacity, arr.shape[1]))
    out[:used] = arr[:used]
    return out


def _read_only(arr: np.ndarray) -> np.ndarray:
    view = arr.view()
    view.flags.writeable = False
    return view
