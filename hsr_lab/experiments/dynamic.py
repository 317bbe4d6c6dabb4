"""What the dynamic HSR structure behind ``Decoder`` pays to add keys: rebuilt points per add.

``HSR.add`` uses the logarithmic method (Bentley and Saxe): a new point is a block of one, and
two blocks of similar size are merged into one rebuilt block. A point is rebuilt at most about
log2 n times (each time into a block at least twice as large), so n adds rebuild O(n log n)
points in all, O(log n) per add amortised; with an O(b log b) kd-tree build per block of b
points that is O(log^2 n) time per add amortised. Queries visit O(log n) blocks.
This sweep counts the points of the blocks that are new after each add. Merges cascade within
one add (blocks of 1 and 1 make 2, then 2 and 2 make 4, ...); only the last merged block is
seen from outside, and the earlier ones of the same add hold at most as many points in all
(their sizes at least double), so the true count is at most twice the one reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..cache import cached
from ..hsr import HSR
from .common import progress, resolve_quick


@dataclass(frozen=True)
class InsertionCost:
    """Cumulative points rebuilt after each of n adds, and the blocks held at the end."""

    n: int
    d: int
    rebuilt: np.ndarray  # (n,) points rebuilt by adds 1..i (cumulative)
    blocks: np.ndarray  # (n,) blocks held after add i

    @property
    def per_add(self) -> np.ndarray:
        """Amortised points rebuilt per add after i adds: rebuilt[i] / (i + 1)."""
        return self.rebuilt / np.arange(1, self.n + 1)


def insertion_cost(n: int | None = None, d: int = 4, seed: int = 0, quick: bool | None = None,
                   force: bool = False) -> InsertionCost:
    """Add n Gaussian keys one at a time to ``HSR(backend="numpy")``; count rebuilt points.

    Default n: 2^13 (full), 2^10 (quick). Cached.
    """
    quick = resolve_quick(quick)
    n = n or (2**10 if quick else 2**13)
    params = dict(n=n, d=d, seed=seed)

    def compute() -> dict[str, np.ndarray]:
        keys = np.random.default_rng(seed).standard_normal((n, d))
        hsr = HSR(keys[:1], backend="numpy")
        rebuilt, blocks = np.zeros(n), np.zeros(n)
        rebuilt[0], blocks[0] = 1, 1
        for i in progress(range(1, n), "adds"):
            before = hsr.blocks  # held, so that no new block can reuse an old one's id
            hsr.add(keys[i:i + 1])
            new = [block for block in hsr.blocks if not any(block is old for old in before)]
            rebuilt[i] = rebuilt[i - 1] + sum(len(block) for block in new)
            blocks[i] = len(hsr.blocks)
        return {"rebuilt": rebuilt, "blocks": blocks}

    r = cached("insertion_cost", params, compute, force=force)
    return InsertionCost(n, d, r["rebuilt"], r["blocks"])
