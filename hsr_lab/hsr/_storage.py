"""How blocks store their points and ids: the dtypes every backend keeps them in.

float32 keys stay float32 (scored in float32, ``numerics``); every other input becomes float64.
Ids are int64 to the user and stored as int32 when they fit, which halves their memory in
every tree and scan.
"""

from __future__ import annotations

import numpy as np


def key_dtype(points: np.ndarray) -> type:
    """The dtype keys are stored in: float32 stays float32, everything else becomes float64.

    >>> key_dtype(np.zeros((2, 3), dtype=np.float32)).__name__, key_dtype(np.zeros((2, 3))).__name__
    ('float32', 'float64')
    """
    return np.float32 if points.dtype == np.float32 else np.float64


def compact_ids(ids: np.ndarray) -> np.ndarray:
    """The ids as int32 when they fit (half the memory), else int64; read back as int64.

    >>> compact_ids(np.array([0, 5, 2**31 - 1])).dtype, compact_ids(np.array([2**31])).dtype
    (dtype('int32'), dtype('int64'))
    """
    small = len(ids) == 0 or (ids.min() >= 0 and ids.max() < 2**31)
    return np.array(ids, dtype=np.int32 if small else np.int64)
