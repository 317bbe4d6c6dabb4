"""The paper's threshold rule, s_ij > b, with one scalar b per head or one b_i per row.

HSR-enhanced attention (Chen et al. 2024, Sec. 3 and App. F) keeps, for softmax, the
"massively activated" entries: row i keeps K_i = {j <= i : s_ij > b}, which one half-space
query with normal q_i and offset sqrt(d) b reports exactly.

- ``ScalarThreshold``: the paper's single b = sigma_a sqrt(c ln n) for the head, with its
  Gaussian model's sigma_a = sigma_k ||q|| / sqrt(d) estimated as notebook 07 does: sigma_k the
  RMS of the layer's key coordinates (the KV head's), ||q|| the RMS norm of the head's queries,
  n the text's length. The paper's c is 0.4; a budget is met by sweeping c.
- ``RowThreshold``: b_i = mu_i + sigma_i sqrt(c ln (i + 1)) from row i's own scores (ours, not
  the paper's; notebook 05): ``samples=None`` takes mu_i and sigma_i over every visible score
  (the dense pass HSR is meant to avoid); ``samples=s`` estimates them from s keys drawn
  uniformly (with replacement) from 0..i, a fixed draw per (seed, layer).

A negative c mirrors the threshold below the mean (``_core.signed_root``): a budget of a
quarter of the keys can need it. Keys scored: the threshold is found by a scan (i + 1 keys)
unless ``CertifiedPages`` finds it with page bounds; the per-row rule also pays for its
statistics (i + 1 scores exact, s sampled).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._core import Layer, Masker, Selection, check_int, check_number, signed_root

PAPER_C = 0.4  # the paper's constant in b = sigma_a sqrt(c ln n)
SAMPLES = 64  # keys a sampled per-row threshold scores to estimate mu_i and sigma_i


def scalar_b(Q: np.ndarray, K: np.ndarray, c: float = PAPER_C, n: int | None = None) -> float:
    """b = sigma_a sqrt(c ln n), sigma_a = sigma_k ||q|| / sqrt(d): sigma_k the RMS key
    coordinate of K (n, d), ||q|| the RMS norm of the queries Q (m, d); n defaults to len(K)."""
    n = len(K) if n is None else n
    sigma_k = np.sqrt(np.mean(np.square(K, dtype=np.float64)))
    q_norm = np.sqrt(np.mean(np.sum(np.square(Q, dtype=np.float64), axis=-1)))
    sigma_a = sigma_k * q_norm / np.sqrt(K.shape[-1])
    return float(sigma_a * signed_root(c, np.log(n)))


@dataclass(eq=False)
class ScalarThreshold(Masker):
    """The paper's rule with one b per head: K_i = {j <= i : s_ij > b}."""

    c: float = PAPER_C
    name = "scalar_b"
    paper = ("Chen et al. 2024 (HSR attention), Sec. 3 and App. F: b = sigma_a sqrt(0.4 ln n),"
             " keep s > b")

    def __post_init__(self) -> None:
        self.c = check_number("c", self.c, -8.0, 8.0)

    def begin(self, layer: Layer) -> None:
        super().begin(layer)
        self.b = np.array([scalar_b(layer.Q[h], layer.keys_of(h), self.c, layer.n)
                           for h in range(len(layer.kv_head))])

    def thresholds(self, rows: np.ndarray, S: np.ndarray) -> np.ndarray:
        """b for every (head, row) of the block: (H, r)."""
        return np.broadcast_to(self.b[:, None], S.shape[:2])

    def stats_cost(self, rows: np.ndarray) -> np.ndarray:
        """Keys scored per row to set b (none: b comes from layer statistics)."""
        return np.zeros(len(rows))

    def _select(self, rows: np.ndarray, S: np.ndarray, P: np.ndarray) -> Selection:
        keep = S > self.thresholds(rows, S)[..., None]
        scored = np.broadcast_to(rows + 1.0, S.shape[:2]).copy()  # the scan
        return Selection(int(rows[0]), keep, None, scored)


def sample_ids(n: int, samples: int, seed: int, layer: int) -> np.ndarray:
    """(n, samples) key ids, row i's drawn uniformly with replacement from 0..i, fixed by
    (seed, layer)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, layer, 0x5A3]))
    U = rng.random((n, samples))
    return np.minimum((U * (np.arange(n) + 1)[:, None]).astype(np.int64), np.arange(n)[:, None])


def row_stats(S: np.ndarray, rows: np.ndarray, ids: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """mu_i and sigma_i (population) of each row's visible scores (ids None), or of the
    scores at ``ids`` (r, s) (a sample of each row's keys): two (H, r) arrays.

    Computed on the scores less the row's first one, so that a row of equal scores has
    sigma_i = 0 and mu_i equal to them exactly (its threshold keeps nothing)."""
    if ids is None:
        seen = np.isfinite(S)
        shift = S[..., :1].astype(np.float64)  # key 0 is visible from every row
        X = np.where(seen, S - shift, 0.0)
        count = (rows + 1).astype(np.float64)
        mu = X.sum(axis=-1) / count
        var = np.where(seen, (X - mu[..., None]) ** 2, 0.0).sum(axis=-1) / count
        return shift[..., 0] + mu, np.sqrt(var)
    X = np.take_along_axis(S, np.broadcast_to(ids, (S.shape[0], *ids.shape)), axis=-1)
    X = X.astype(np.float64)
    shift = X[..., :1]
    return shift[..., 0] + (X - shift).mean(axis=-1), X.std(axis=-1)


@dataclass(eq=False)
class RowThreshold(Masker):
    """b_i = mu_i + sigma_i sqrt(c ln (i + 1)), exact (samples=None) or from a sample."""

    c: float = PAPER_C
    samples: int | None = None
    seed: int = 0

    paper = "ours (notebook 05): the paper's rule with a threshold per row"

    def __post_init__(self) -> None:
        self.c = check_number("c", self.c, -8.0, 8.0)
        if self.samples is not None:
            self.samples = check_int("samples", self.samples)
        self.name = "row_b" if self.samples is None else "row_b_sampled"

    def begin(self, layer: Layer) -> None:
        super().begin(layer)
        self._ids = (None if self.samples is None
                     else sample_ids(layer.n, self.samples, self.seed, layer.index))

    def thresholds(self, rows: np.ndarray, S: np.ndarray) -> np.ndarray:
        """b_i for every (head, row) of the block: (H, r)."""
        ids = None if self._ids is None else self._ids[rows]
        mu, sigma = row_stats(S, rows, ids)
        return mu + sigma * signed_root(self.c, np.log(rows + 1.0))[None, :]

    def stats_cost(self, rows: np.ndarray) -> np.ndarray:
        """Keys scored per row to set b_i: the whole row (exact) or the sample."""
        return rows + 1.0 if self.samples is None else np.full(len(rows), float(self.samples))

    def _select(self, rows: np.ndarray, S: np.ndarray, P: np.ndarray) -> Selection:
        keep = S > self.thresholds(rows, S)[..., None]
        scored = np.broadcast_to(rows + 1.0 + self.stats_cost(rows), S.shape[:2]).copy()
        return Selection(int(rows[0]), keep, None, scored)  # statistics, then the scan
