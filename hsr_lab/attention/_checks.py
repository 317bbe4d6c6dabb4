"""Argument checks of the attention entry points: every error names the argument at fault.

As for ``HSR``, values are taken exactly or refused (``validate``, ``exact=True``): Q, K, V
and b that float64 cannot hold (an int64 beyond 2^53 that would round, a longdouble with more
bits, a Python int or ``Fraction`` such as 1/3) raise ValueError naming the argument instead of
being rounded, so the kept entries ``s_ij > b`` are decided about the values given.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..hsr.numerics import MAX_COORD as MAX_KEY
from ..hsr.numerics import MAX_PRODUCT
from ..hsr.plan import check_backend
from ..validate import as_matrix, as_positive_int, as_scalar
from .scores import max_abs

METHODS = ("dense", "hsr")
KINDS = ("relu", "softmax")
ALL_KEYS = 2**62  # more keys than any sequence can hold: sinks or window this large keep all


def qkv(Q: object, K: object, V: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Q (m x d), K (n x d), V (n x d_v): finite float64 views (never modified), each value
    one that float64 holds exactly."""
    Q = as_matrix("Q", Q, exact=True)
    K = as_matrix("K", K, d=Q.shape[1], exact=True)
    V = as_matrix("V", V, exact=True)
    if len(V) != len(K):
        raise ValueError(f"V must have one row per key: n = {len(K)} rows (K has shape "
                         f"{K.shape}); got shape {V.shape}")
    keys("K", K)
    magnitude("Q", max_abs(Q), "K", max_abs(K), Q.shape[1])
    return Q, K, V


def keys(name: str, K: np.ndarray) -> None:
    """Refuse keys the HSR structure would refuse, naming them here instead."""
    if max_abs(K) > MAX_KEY:
        raise ValueError(f"{name} must have coordinates of magnitude at most {MAX_KEY:g} "
                         f"(larger inner products could overflow float64); got {max_abs(K):.3g}")


def magnitude(q_name: str, q_max: float, k_name: str, k_max: float, d: int) -> None:
    """Refuse queries and keys whose inner products could overflow float64."""
    worst = q_max * k_max * d
    if worst > MAX_PRODUCT:
        raise ValueError(f"{q_name} and {k_name} are too large: <q, k> could overflow float64 "
                         f"(max |{q_name}| * max |{k_name}| * d = {worst:.3g} > {MAX_PRODUCT:g})")


def alpha(value: object) -> int:
    """The power alpha of ReLU^alpha: a positive integer (True, 1.5, 0, -1 are refused)."""
    return as_positive_int("alpha", value)


def threshold(value: object, required: bool = True) -> float | None:
    """The threshold b on the scaled score: a finite real that float64 holds exactly, or
    None where allowed."""
    if value is None and not required:
        return None
    if value is None:
        raise ValueError("b must be a finite real threshold on the score <q, k>/sqrt(d); "
                         "got None")
    return as_scalar("b", value, exact=True)


def count(name: str, value: object) -> int:
    """A number of keys such as sinks or window: an integer >= 0, clamped to ``ALL_KEYS``.

    ``min(value, ALL_KEYS)``: a window (or sinks) longer than the sequence is the whole
    sequence, and no sequence holds ``ALL_KEYS`` keys, so the clamp changes no answer; it keeps
    the value an int64 for NumPy (2^63 and above would overflow there)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= 0 (a number of keys); got {value!r}")
    if int(value) < 0:
        raise ValueError(f"{name} must be an integer >= 0 (a number of keys); got {value!r}")
    return min(int(value), ALL_KEYS)


def choice(name: str, value: object, options: tuple[str, ...]) -> str:
    """One of a few strings."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {list(options)}; got {value!r}")
    return value


def backend(value: object, d: int | None = None) -> str:
    """An HSR backend name (checked even for method="dense", so a typo never hides), and
    "layers" only at d = 2 where d is given: ``hsr.plan.check_backend``."""
    return check_backend(value, d)


def flag(name: str, value: object) -> bool:
    """A bool (numpy bools too); 0, 1 and strings are refused."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def causal(value: object, m: int, n: int) -> bool:
    """causal=True needs one query per key (m == n): query i sees keys 0..i."""
    value = flag("causal", value)
    if value and m != n:
        raise ValueError(f"causal=True needs as many queries as keys (query i sees keys 0..i); "
                         f"got m = {m} queries and n = {n} keys")
    return value
