"""MagicPIG: SimHash LSH sampling with importance weights (an estimate, not a subset).

Chen et al., "MagicPIG: LSH Sampling for Efficient LLM Generation" (ICLR 2025), Sec. 4, with
the settings of the authors' reference code (``refs/hf_cache_ref.py``): the first 4 tokens and
the 64 most recent stay exact ("static"); layers 0 and L_model / 2 stay dense; the other keys
are centred by their mean k_bar (the softmax does not change: q.k_bar is the same for every
key of a row) and hashed with L tables of K random hyperplanes each (SimHash, K = 10,
L = 150). Key j is sampled for query q when their codes agree in at least two tables. With
theta the angle between q and k_j - k_bar, one hyperplane separates them with probability
theta / pi, so a table collides with probability u = (1 - theta/pi)^K and

    p_ij = P(>= 2 of L tables collide) = 1 - (1 - u)^L - L u (1 - u)^(L-1).

The estimate weights each sampled key by 1/p_ij:

    o_hat_i = (sum_static e^{s_ij} v_j + sum_sampled e^{s_ij} v_j / p_ij)
              / (sum_static e^{s_ij}     + sum_sampled e^{s_ij} / p_ij).

Numerator and denominator are each unbiased (E[1{sampled}/p] = 1); their ratio is not exactly,
but is consistent. The reference code divides by p + 1e-4 (``eps``) to bound the weights,
which makes rare keys slightly under-weighted; ``eps=0`` is the unbiased form (tested).

``draws="simhash"`` hashes for real (``simhash_sample``); ``draws="independent"`` (the
default, what the study runs) draws each key independently with the same p_ij: the same
marginals, hence the same expectations, but not the correlation that shared hyperplanes give
similar keys. Exact hashing of every row (L code comparisons per key) is too slow in NumPy
at 4096 tokens x 30 layers; notebook 08 compares the two on one head.

Keys scored: K L hyperplane products for the query (d-dimensional each), then the keys
attended. The table lookups are not inner products and are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._core import Layer, Masker, Selection, check_int, check_number, full_selection

BITS, TABLES = 10, 150  # (K, L) of the reference runs
SINKS, LOCAL = 4, 64  # static keys: attention sinks and the local window
EPS = 1e-4  # the reference code's guard in 1 / (p + eps)


def collision_probability(cos: np.ndarray, bits: int, tables: int) -> np.ndarray:
    """p = 1 - (1-u)^L - L u (1-u)^(L-1), u = (1 - theta/pi)^K, theta = arccos(cos)."""
    theta = np.arccos(np.clip(cos, -1.0, 1.0))
    return sampling_probability((1.0 - theta / np.pi) ** bits, tables)


def sampling_probability(u: np.ndarray, tables: int) -> np.ndarray:
    """P(at least 2 of L tables collide) = 1 - (1-u)^L - L u (1-u)^(L-1), for a per-table
    collision probability u; computed in logs, so that small u and large L stay exact."""
    u = np.minimum(np.asarray(u, np.float64), 1 - 1e-16)
    log_miss = np.log1p(-u)
    none = np.exp(tables * log_miss)
    one = tables * u * np.exp((tables - 1) * log_miss)
    return np.clip(1.0 - none - one, 0.0, 1.0)


def static_keys(rows: np.ndarray, e: int, sinks: int = SINKS, local: int = LOCAL) -> np.ndarray:
    """(r, e): the sinks j < sinks and the local window i - local < j <= i (kept exactly)."""
    j = np.arange(e)[None, :]
    rows = np.asarray(rows)[:, None]
    return (j < sinks) | ((j > rows - local) & (j <= rows))


def dense_layers(n_layers: int) -> tuple[int, int]:
    """The layers MagicPIG keeps dense: 0 and n_layers // 2 (the reference code's choice)."""
    return 0, n_layers // 2


def hyperplanes(d: int, bits: int, tables: int, seed: int, layer: int, kv: int) -> np.ndarray:
    """(d, L, K) Gaussian hyperplanes of one (layer, KV head), fixed by the seed."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, layer, kv, 0x919]))
    return rng.standard_normal((d, tables, bits))


def codes(X: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """SimHash codes of X (m, d): one K-bit integer per table, (m, L)."""
    bits = np.einsum("md,dlk->mlk", X, planes) > 0
    return (bits * (1 << np.arange(planes.shape[2]))).sum(axis=-1)


def simhash_sample(q: np.ndarray, keys: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """(m, n) bool: key j sampled for query i when their codes agree in >= 2 tables."""
    agree = codes(q, planes)[:, None, :] == codes(keys, planes)[None, :, :]
    return agree.sum(axis=-1) >= 2


@dataclass(eq=False)
class MagicPIG(Masker):
    """MagicPIG's LSH sampling (see the module docstring); ``tables`` sets the budget."""

    bits: int = BITS
    tables: int = TABLES
    sinks: int = SINKS
    local: int = LOCAL
    eps: float = EPS
    draws: str = "independent"
    seed: int = 0
    name = "magicpig"
    paper = ("Chen et al. 2025 (MagicPIG), Sec. 4: SimHash (K, L) = (10, 150), 4 sinks + 64 "
             "local exact, layers 0 and L/2 dense, weights 1/p")

    def __post_init__(self) -> None:
        self.bits = check_int("bits", self.bits)
        self.tables = check_int("tables", self.tables, 2)
        self.sinks, self.local = check_int("sinks", self.sinks, 0), check_int("local",
                                                                            self.local, 1)
        self.eps = check_number("eps", self.eps, 0.0, 1.0)
        if self.draws not in ("independent", "simhash"):
            raise ValueError(f"draws must be 'independent' or 'simhash'; got {self.draws!r}")

    def dense_layer(self) -> bool:
        return self.layer.index in dense_layers(self.layer.n_layers)

    def begin(self, layer: Layer) -> None:
        super().begin(layer)
        K = np.asarray(layer.K, np.float64)
        self._mean = K.mean(axis=1)  # (G, d): k_bar of each KV head
        centred = K - self._mean[:, None]
        self._norm = np.linalg.norm(centred, axis=-1)  # (G, n)
        self._planes = [hyperplanes(layer.d, self.bits, self.tables, self.seed, layer.index, g)
                        for g in range(K.shape[0])]
        self._codes = ([codes(c, p) for c, p in zip(centred, self._planes, strict=True)]
                       if self.draws == "simhash" else None)

    def static(self, rows: np.ndarray, e: int) -> np.ndarray:
        """(r, e): the sinks and the local window (always exact)."""
        return static_keys(rows, e, self.sinks, self.local)

    def probabilities(self, rows: np.ndarray, S: np.ndarray) -> np.ndarray:
        """p_ij for every (head, row, key) of the block, 0 on static and future keys."""
        layer, H = self.layer, S.shape[0]
        sqrt_d = np.sqrt(layer.d)
        p = np.zeros(S.shape)
        candidates = np.isfinite(S) & ~self.static(rows, S.shape[2])[None]
        for h in range(H):
            g = layer.kv_head[h]
            q = np.asarray(layer.Q[h][rows], np.float64)
            shift = q @ self._mean[g]  # q . k_bar
            cos = (np.asarray(S[h], np.float64) * sqrt_d - shift[:, None]) / (
                np.linalg.norm(q, axis=1)[:, None] * self._norm[g, :S.shape[2]][None, :]
                + 1e-300)
            p[h] = np.where(candidates[h], collision_probability(cos, self.bits, self.tables), 0)
        return p

    def _draw(self, rows: np.ndarray, p: np.ndarray) -> np.ndarray:
        if self.draws == "independent":
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.layer.index,
                                                                int(rows[0]), 0x1A]))
            return rng.random(p.shape) < p
        out = np.zeros(p.shape, bool)
        for h in range(p.shape[0]):
            g = self.layer.kv_head[h]
            q_codes = codes(np.asarray(self.layer.Q[h][rows], np.float64), self._planes[g])
            agree = q_codes[:, None, :] == self._codes[g][None, :p.shape[2], :]
            out[h] = (agree.sum(axis=-1) >= 2) & (p[h] > 0)
        return out

    def _select(self, rows: np.ndarray, S: np.ndarray, P: np.ndarray) -> Selection:
        H, e = S.shape[0], S.shape[2]
        if self.dense_layer():
            return full_selection(rows, H, e)
        p = self.probabilities(rows, S)
        sampled = self._draw(rows, p)
        keep = sampled | (self.static(rows, e)[None] & np.isfinite(S))
        weights = np.where(sampled, 1.0 / (p + self.eps + (p == 0)), 1.0)
        scored = float(self.bits * self.tables) + keep.sum(axis=-1)
        return Selection(int(rows[0]), keep, np.where(keep, weights, 0.0), scored)
