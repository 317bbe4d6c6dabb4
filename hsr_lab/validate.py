"""Input checks shared by every public entry point.

Errors speak the user's language: they name the argument and say what was expected, so a
mistake never turns into a NumPy broadcasting trace, a NaN or a silently wrong answer.

``exact=True`` (half-space reporting, whose answers are exact about the values given) refuses a
value that float64 cannot hold, rather than rounding it: an int64 or uint64 beyond 2^53 that is
not a float, a longdouble with more bits, a Python int or a ``Fraction`` such as 1/3.
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


def as_float_array(name: str, value: object, *, keep_float32: bool = False,
                   exact: bool = False) -> np.ndarray:
    """Return ``value`` as a float64 array (a float32 one, of either byte order, stays float32
    if ``keep_float32``), rejecting complex, object, string and bool data; with ``exact``, also
    values that float64 would round (module docstring)."""
    arr = as_plain_array(name, value)
    if arr.dtype.kind not in _NUMERIC_KINDS:
        raise TypeError(
            f"{name} must hold real numbers (int or float dtype); got dtype {arr.dtype}"
        )
    if keep_float32 and arr.dtype.kind == "f" and arr.dtype.itemsize == 4:
        return arr.astype(np.float32, copy=False)  # native byte order, the same values
    out = arr.astype(np.float64, copy=False)
    if exact:
        _refuse_rounded(name, arr, out)
        if arr.dtype.kind == "f" and not isinstance(value, np.ndarray):
            _refuse_rounded_items(name, value)
    return out


def _refuse_rounded(name: str, arr: np.ndarray, out: np.ndarray) -> None:
    """Raise if some entry of ``arr`` differs from its float64 value ``out``: only 64-bit
    integers beyond 2^53 and floats wider than float64 can."""
    if arr.dtype.kind in "iu" and arr.dtype.itemsize >= 8:
        big = arr > 2**53
        if arr.dtype.kind == "i":
            big |= arr < -(2**53)
        lost = [v for v in arr[big].tolist() if int(float(v)) != v]  # Python ints: exact
    elif arr.dtype.kind == "f" and arr.dtype.itemsize > 8:
        lost = arr[np.isfinite(arr) & (out.astype(arr.dtype) != arr)].tolist()
    else:
        return
    if lost:
        raise ValueError(f"{name} must hold values that float64 represents exactly (the "
                         f"answers are exact about the values given, never rounded ones); got "
                         f"{lost[0]!r}, which float64 would round to {float(lost[0])!r}")


def _refuse_rounded_items(name: str, value: object) -> None:
    """Raise if a nested list or tuple holds a number that NumPy rounded to float64 while
    building the array (a Python int beyond 2^53 beside floats, an int64 or longdouble
    scalar): the array alone no longer shows it."""
    items = np.asarray(value, dtype=object).ravel().tolist()
    lost = [v for v in items if not isinstance(v, float | np.float64 | np.float32)
            and not _holds(v, float(v))]
    if lost:
        raise ValueError(f"{name} must hold values that float64 represents exactly (the "
                         f"answers are exact about the values given, never rounded ones); got "
                         f"{lost[0]!r}, which float64 would round to {float(lost[0])!r}")


def as_matrix(
    name: str, value: object, *, d: int | None = None, allow_empty: bool = False,
    keep_float32: bool = False, exact: bool = False,
) -> np.ndarray:
    """Validate a finite 2-D array of shape (n, d) and return it as float64, or as float32 if
    it is float32 and ``keep_float32`` (never mutated); ``exact``: see the module docstring."""
    arr = as_float_array(name, value, keep_float32=keep_float32, exact=exact)
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


def as_vector(name: str, value: object, *, d: int, exact: bool = False) -> np.ndarray:
    """Validate a finite 1-D array of length d and return it as float64 (never mutated);
    ``exact``: see the module docstring."""
    arr = as_float_array(name, value, exact=exact)
    if arr.shape != (d,):
        raise ValueError(
            f"{name} must be a finite 1-D array of shape ({d},); got shape {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite; it holds NaN or infinity")
    return arr


def as_scalar(name: str, value: object, exact: bool = False) -> float:
    """Validate a finite real scalar; with ``exact``, one that float64 holds exactly."""
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
    if exact and not _holds(value, out):
        raise ValueError(f"{name} must be a real number that float64 represents exactly (the "
                         f"answers are exact about the value given, never a rounded one); got "
                         f"{value!r}, which float64 would round to {out!r}")
    return out


def _holds(value: object, out: float) -> bool:
    """Whether the float ``out`` equals the real ``value`` exactly."""
    if isinstance(value, np.ndarray):  # 0-d
        value = value[()]
    if isinstance(value, np.floating):
        return value.dtype.itemsize <= 8 or bool(np.longdouble(out) == value)
    if isinstance(value, np.integer):
        return int(value) == int(out)
    return bool(out == value)  # Python compares int, float and Fraction exactly


def as_positive_int(name: str, value: object) -> int:
    """Validate a positive integer (bools and floats such as 1.5 are rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer; got {value!r}")
    if int(value) <= 0:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def as_scalar_or_vector(name: str, value: object, *, m: int, exact: bool = False
                        ) -> np.ndarray:
    """Validate a finite real scalar (the same for all m rows) or a finite 1-D array of
    shape (m,); return it as a float64 array of shape (m,) (never mutated); ``exact``: see the
    module docstring."""
    if not isinstance(value, list | tuple | np.ndarray) or np.ndim(value) == 0:
        return np.full(m, as_scalar(name, value, exact=exact))
    arr = as_float_array(name, value, exact=exact)
    if arr.shape != (m,):
        raise ValueError(f"{name} must be a real number or a 1-D array of shape ({m},), one "
                         f"value per row; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite; it holds NaN or infinity")
    return arr
