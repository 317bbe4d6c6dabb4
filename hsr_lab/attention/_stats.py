"""What one attention call cost and kept, per row: ``AttentionStats``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..hsr.plan import Decision

if TYPE_CHECKING:
    from ..hsr._base import StaticIndex


@dataclass(eq=False)
class AttentionStats:
    """Per-row counters of one attention call (m rows), dense or HSR, to plot side by side.

    method: "dense" or "hsr"; kind: "relu" or "softmax".
    kernel: what actually computed the rows. "dense" (``dense.py``, the full score matrix);
        for method="hsr" either "dense" too (``backend="auto"`` took the dense kernel: the tree
        could not prune here, ``hsr.plan``) or the names of the HSR blocks that were asked
        ("numpy" for the kd-tree, "brute" for the scan, ...; "numpy+brute" if both).
    plan: for method="hsr", the ``hsr.plan.Decision`` behind ``kernel``: "dense" or the HSR
        structures, why, and the race's timings where one ran (None for method="dense").
    activated: per row, the entries that carry weight: ReLU^alpha, the positive entries
        ``s_ij - b > 0``; softmax, the kept entries (``s_ij >= b``, sinks and window).
    inner_products: per row, the inner products <q_i, k_j> computed. Dense: every visible key
        (n, or i + 1 when causal). HSR: those of the half-space query, plus one per key of the
        exact row (the reported keys and the sinks and window); causal rows also count the
        keys of their own position tile, scored directly (``positions.py``). The full-row
        normaliser that measures the dropped softmax mass is measurement, not method, and is
        not counted.
    nodes_visited: per row, the HSR tree nodes whose box was tested (0 for the dense kernel).
    empty: per row, True where nothing carries weight (D_ii = 0): the row of Attn is zero.
    dropped_mass: softmax only, per row eps_i = (softmax mass of the dropped entries) / (mass
        of the whole visible row), in [0, 1]; 1 on an empty row. None for ReLU^alpha and when
        it was not measured (``measure_dropped=False``).
    """

    method: str
    kind: str
    activated: np.ndarray
    inner_products: np.ndarray
    nodes_visited: np.ndarray
    empty: np.ndarray
    dropped_mass: np.ndarray | None = None
    kernel: str = "dense"
    plan: Decision | None = None

    @property
    def rows(self) -> int:
        """m, the number of query rows."""
        return len(self.activated)

    @property
    def empty_rows(self) -> int:
        """How many rows had no entry with weight (returned as zero rows)."""
        return int(np.count_nonzero(self.empty))

    @property
    def total_activated(self) -> int:
        """Activated (or kept) entries over all rows."""
        return int(self.activated.sum())

    @property
    def total_inner_products(self) -> int:
        """Inner products over all rows."""
        return int(self.inner_products.sum())

    @property
    def total_nodes_visited(self) -> int:
        """Tree nodes tested over all rows."""
        return int(self.nodes_visited.sum())

    @property
    def max_dropped_mass(self) -> float | None:
        """max_i eps_i, the quantity in the bound 2 max_i eps_i ||V||_inf (None if unmeasured)."""
        return None if self.dropped_mass is None else float(self.dropped_mass.max())

    @classmethod
    def concat(cls, parts: Sequence[AttentionStats]) -> AttentionStats:
        """The stats of several calls of the same method and kind, rows stacked in order."""
        first = parts[0]
        dropped = None
        if all(p.dropped_mass is not None for p in parts):
            dropped = np.concatenate([p.dropped_mass for p in parts])  # type: ignore[misc]
        return cls(first.method, first.kind,
                   *(np.concatenate([getattr(p, name) for p in parts])
                     for name in ("activated", "inner_products", "nodes_visited", "empty")),
                   dropped_mass=dropped, kernel=joined(p.kernel for p in parts), plan=first.plan)

    def __repr__(self) -> str:
        text = (f"AttentionStats({self.method}, {self.kind}, kernel={self.kernel}, "
                f"rows={self.rows}, "
                f"activated={self.total_activated}, inner_products={self.total_inner_products}, "
                f"nodes_visited={self.total_nodes_visited}, empty_rows={self.empty_rows}")
        if self.dropped_mass is not None:
            text += f", max_dropped_mass={self.max_dropped_mass:.3g}"
        return text + ")"


def joined(kernels: Iterable[str]) -> str:
    """Kernel names as one: each name once, in order ("numpy", "numpy+brute")."""
    names = dict.fromkeys(part for kernel in kernels for part in kernel.split("+"))
    return "+".join(names)


def row_stats(method: str, kind: str, activated: int, inner_products: int, nodes_visited: int,
              dropped_mass: float | None, kernel: str) -> AttentionStats:
    """The stats of a single row (one decoding step)."""
    return AttentionStats(
        method, kind,
        activated=np.array([activated], dtype=np.int64),
        inner_products=np.array([inner_products], dtype=np.int64),
        nodes_visited=np.array([nodes_visited], dtype=np.int64),
        empty=np.array([activated == 0]),
        dropped_mass=None if dropped_mass is None else np.array([dropped_mass]),
        kernel=kernel,
    )


def kernel_of(blocks: Iterable[StaticIndex]) -> str:
    """The kernel name of HSR blocks: their backends' names ("numpy", "brute", ...)."""
    return joined(block.name for block in blocks) or "none"
