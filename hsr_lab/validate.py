"""Input checks shared by every public entry point.

Errors speak the user's language: they name the argument and say what was expected, so a
mistake never turns into a NumPy broadcasting trace, a NaN or a silently wrong answer.
"""

from __future__ import annotations

import numbers

import numpy as np

_NUMERIC_KINDS = "iuf"  # signed int, unsigned int, float


def as_plain_array(name: str, value: object) -> np.ndarray:
    """``value`` as a plain ``np.ndarray`` (subclasses such as ``np.matrix`` converted).

    A masked array is accepted as its data only when no entry is masked: a masked entry has no
    value to use, so it is refused rather than silently read.
    """
    if isinstance(value, np.ma.MaskedArray):
        if np.ma.getmaskarray(value).any():
            raise ValueError(f"{name} must not have masked entries; got a masked array with "
                             f"{int(np.ma.getmaskarray(value).sum())} masked (fill them, or "
                             "drop those rows, first)")
        value = value.data
    try:
        return np.asarray(value)  # a plain ndarray: subclasses become their base array
    except (ValueError, TypeError) as err:  # ragged lists and the like
        raise TypeError(f"{name} must be a numeric array; got {type(value).__name__}") from err


def as_float_array(name: str, value: object, *, keep_float32: bool = False) -> np.ndarray:
    """Return ``value`` as a float64 array (a float32 one stays float32 if ``keep_float32``),
    rejecting complex, object, string and bool data."""
    arr = as_plain_array(name, value)
    if arr.dtype.kind not in _NUMERIC_KINDS:
        raise TypeError(
            f"{name} must hold real numbers (int or float dtype); got dtype {arr.dtype}"
        )
    if keep_float32 and arr.dtype == np.float32:
        return arr
    return arr.astype(np.float64, copy=False)


def as_matrix(
    name: str, value: object, *, d: int | None = None, allow_empty: bool = False,
    keep_float32: bool = False,
) -> np.ndarray:
    """Validate a finite 2-D array of shape (n, d) and return it as float64, or as float32 if
    it is float32 and ``keep_float32`` (never mutated)."""
    arr = as_float_array(name, value, keep_float32=keep_float32)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a finite 2-D array of shape (n, d); got shape {arr.shape}"
        )
    if arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one column (d >= 1); got shape {arr.shape}")
    if d is not None and arr.shape[1] != d:
        raise ValueError(f"{name} must have d = {d} columns; got shape {arr.shape}")
    if arr.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name} must hold at least one row (n >= 1); got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite; it holds NaN or infinity")
    return arr


def as_vector(name: str, value: object, *, d: int) -> np.ndarray:
    """Validate a finite 1-D array of length d and return it as float64 (never mutated)."""
    arr = as_float_array(name, value)
    if arr.shape != (d,):
        raise ValueError(
            f"{name} must be a finite 1-D array of shape ({d},); got shape {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite; it holds NaN or infinity")
    return arr


def as_scalar(name: str, value: object) -> float:
    """Validate a finite real scalar."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if not (isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf"):
            raise TypeError(f"{name} must be a real number; got {type(value).__name__}")
    try:
        out = float(value)  # type: ignore[arg-type]
    except OverflowError as err:  # an int beyond the float range
        raise ValueError(f"{name} must be finite; got an integer beyond the float64 range "
                         f"(about 1.8e308)") from err
    if not np.isfinite(out):
        raise ValueError(f"{name} must be finite; got {out}")
    return out


def as_positive_int(name: str, value: object) -> int:
    """Validate a positive integer (bools and floats such as 1.5 are rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer; got {value!r}")
    if int(value) <= 0:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def as_scalar_or_vector(name: str, value: object, *, m: int) -> np.ndarray:
    """Validate a finite real scalar (the same for all m rows) or a finite 1-D array of
    shape (m,); return it as a float64 array of shape (m,) (never mutated)."""
    if not isinstance(value, list | tuple | np.ndarray) or np.ndim(value) == 0:
        return np.full(m, as_scalar(name, value))
    arr = as_float_array(name, value)
    if arr.shape != (m,):
        raise ValueError(f"{name} must be a real number or a 1-D array of shape ({m},), one "
                         f"value per row; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite; it holds NaN or infinity")
    return arr
