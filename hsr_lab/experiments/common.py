"""Small helpers shared by the sweeps."""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from ..config import quick_mode


def resolve_quick(quick: bool | None) -> bool:
    """``quick`` if given, else the ``HSR_LAB_QUICK`` environment variable."""
    return quick_mode() if quick is None else bool(quick)


def progress(iterable, desc: str, total: int | None = None):
    """A progress bar that works in notebooks and on the terminal (and stays quiet if short)."""
    return tqdm(iterable, desc=desc, total=total, leave=False, mininterval=0.5)


def seeds_for(seed: int, count: int) -> list[int]:
    """``count`` independent child seeds of ``seed`` (NumPy's SeedSequence spawning)."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(count)]


def unit_vectors(rng: np.random.Generator, count: int, d: int) -> np.ndarray:
    """``count`` directions drawn uniformly on the unit sphere of R^d."""
    q = rng.standard_normal((count, d))
    return q / np.linalg.norm(q, axis=1, keepdims=True)
