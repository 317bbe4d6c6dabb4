"""Per-row thresholds b_i = mu_i + sigma_i sqrt(c ln n): exact (a dense pass) or from a sample.

The paper uses one scalar b for every row. A per-row threshold (our specialisation; notebooks 5
to 7) puts each row's threshold at the same point of that row's score distribution:

    b_i = mu_i + sigma_i sqrt(c ln n),

with mu_i and sigma_i the mean and standard deviation of row i's scores
s_ij = <q_i, k_j> / sqrt(d) over the n keys (c = 0.4 is the paper's constant). For zero-mean
Gaussian scores mu_i = 0 and this is the paper's b = sigma_a sqrt(c ln n) with sigma_a set per row.

``row_thresholds`` computes mu_i and sigma_i from every score of the row: O(n d) per row, the
dense pass that half-space reporting is meant to avoid. ``sampled_row_thresholds`` estimates
them from s keys drawn at random (the same s keys for every row): O(s d) per row, plus O(s) to
draw the sample. For Gaussian scores the estimate of sigma_i has a relative standard error of
about 1/sqrt(2 s); notebook 5 measures how far the kept count then lands from the exact per-row
count, against s. Either way ReLU^alpha attention at the threshold it gets is exact: a sampled
b_i changes which threshold is used, never the correctness of the row.
"""

from __future__ import annotations

import numpy as np

from ..theory import PAPER_C
from ..validate import as_float_array, as_matrix, as_positive_int, as_scalar


def row_thresholds(Q: object, K: object, c: float = PAPER_C) -> np.ndarray:
    """b_i = mu_i + sigma_i sqrt(c ln n) over all n scores of each row (the dense pass).

    Q is m x d, K is n x d; returns the m thresholds on the score s_ij = <q_i, k_j>/sqrt(d).
    The oracle of ``sampled_row_thresholds``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> Q, K = rng.standard_normal((3, 8)), rng.standard_normal((4096, 8))
    >>> row_thresholds(Q, K).round(3).tolist()
    [1.2, 2.038, 1.308]
    """
    K = as_matrix("K", K)
    Q, c = _check(Q, K, c)
    S = Q @ K.T / np.sqrt(K.shape[1])  # (m, n): every score, O(n d) per row
    return _threshold(S, len(K), c)


def sampled_row_thresholds(Q: object, K: object, sample: int, c: float = PAPER_C,
                           seed: int | np.random.Generator = 0) -> np.ndarray:
    """b_i = mu_hat_i + sigma_hat_i sqrt(c ln n), mu_hat_i and sigma_hat_i the mean and standard
    deviation of row i's scores on ``sample`` keys drawn without replacement (seeded).

    O(sample d) per row: only the sampled keys are read (and checked to be finite). With
    ``sample >= n`` every key is used and the result equals ``row_thresholds`` to rounding.
    ``seed`` is an int or a ``numpy.random.Generator``; the same seed draws the same keys.

    Examples
    --------
    From 512 of the 4096 keys, close to the exact thresholds; from all of them, equal:

    >>> rng = np.random.default_rng(0)
    >>> Q, K = rng.standard_normal((3, 8)), rng.standard_normal((4096, 8))
    >>> sampled_row_thresholds(Q, K, sample=512).round(3).tolist()
    [1.21, 2.034, 1.282]
    >>> bool(np.allclose(sampled_row_thresholds(Q, K, 4096), row_thresholds(Q, K)))
    True
    """
    K = as_float_array("K", K)
    if K.ndim != 2 or K.shape[1] == 0:
        raise ValueError(f"K must be a finite 2-D array of shape (n, d); got shape {K.shape}")
    Q, c = _check(Q, K, c)
    sample = as_positive_int("sample", sample)
    if sample < 2:
        raise ValueError(f"sample must be at least 2 keys (a spread needs two scores); "
                         f"got {sample}")
    n = len(K)
    if sample >= n:
        keys = K
    else:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        keys = K[rng.choice(n, size=sample, replace=False)]  # (sample, d)
    if not np.isfinite(keys).all():
        raise ValueError("K must be finite; the sampled keys hold NaN or infinity")
    S = Q @ keys.T / np.sqrt(K.shape[1])  # (m, sample)
    return _threshold(S, n, c)


def _threshold(S: np.ndarray, n: int, c: float) -> np.ndarray:
    """mu + sigma sqrt(c ln n) per row of S (m, s), n the number of keys the row stands for."""
    return S.mean(axis=1) + S.std(axis=1) * np.sqrt(c * np.log(n))


def _check(Q: object, K: np.ndarray, c: object) -> tuple[np.ndarray, float]:
    """Q as an (m, d) matrix matching K's d; K holds at least 2 keys; c > 0."""
    Q = as_matrix("Q", Q, d=K.shape[1])
    if len(K) < 2:
        raise ValueError(f"K must hold at least 2 keys (a spread needs two scores); got {len(K)}")
    c = as_scalar("c", c)
    if c <= 0:
        raise ValueError(f"c must be > 0 (b_i = mu_i + sigma_i sqrt(c ln n)); got {c}")
    return Q, c
