"""Causal rows with the keys split by position: row i never visits a block of keys beyond i.

Row i of causal attention sees keys 0..i. The keys are cut into tiles of ``B`` positions
(``POSITION_BLOCK``); row i lies in tile ``r = i // B``. Its keys are

    [0, r B)   the whole tiles before its own: asked from HSR structures, and
    [r B, i]   its own tile, up to i: scored directly (one small product per tile).

The prefix ``[0, r B)`` is split like a Fenwick tree: for every bit l set in r, the block of
``S = 2^l B`` keys ``[(p - 1) S, p S)`` with ``p = i // S`` (odd). So the structures are the
even-numbered blocks of each size S, each built once over its S keys, and each asked by the S
rows that follow it, all at once (``HSR.query_many``). A row asks at most ``log2(n / B)``
structures, none of which holds a key j > i: what the tree reports, the row keeps (the ids
are then only cut to the row's ``[s0, w0)``, the part between its sinks and its window).

Its own tile is scored with a dense product of the tile's queries and keys (B x B: a row
scores up to B - 1 keys beyond it there, and its stats count the B products), kept where
``j <= i`` and ``<q_i, k_j> >=`` the row's query offset (``scores.hsr_offset``: below it no
key can have a decisive score >= b), so the tile hands the row kernel the same candidates a
structure would.

``PrefixBlocks(K, backend).candidates(Q, offsets, r0, r1)`` returns those candidates for the
rows r0..r1-1 as CSR, with each row's nodes visited and inner products; structures are built
when first asked and dropped once no later row needs them.
"""

from __future__ import annotations

import numpy as np

from ..hsr import HSR
from ..hsr.csr import concat_rows, indptr_of
from ._stats import joined, kernel_of
from .scores import BATCH_LEAF_SIZE

POSITION_BLOCK = 512  # B: keys of one position tile (at most n / 4: the structures are asked)
PREFIX_TILE = 8192  # T: rows i >= T ask one structure over the keys [0, T floor(i / T))


class PrefixBlocks:
    """The Fenwick blocks of K (n x d) by position, each an ``HSR(backend=backend)`` with
    leaves of ``scores.BATCH_LEAF_SIZE`` points (it is only asked in batches)."""

    def __init__(self, K: np.ndarray, backend: str, block: int | None = None,
                 prefix: int | None = None) -> None:
        small = 1 << max(0, (len(K) // 4).bit_length() - 1)  # a few tiles even for small n
        self.K, self.backend, self.block = K, backend, block or min(POSITION_BLOCK, small)
        tiles = max(2, -(-(prefix or PREFIX_TILE) // self.block))
        self.prefix = self.block << (tiles - 1).bit_length()  # T = B 2^k, k >= 1
        self._built: dict[tuple[int, int], HSR] = {}  # (size S, p) -> structure over its keys
        self._seen = np.tri(self.block, dtype=bool)  # in a tile, row i sees the keys j <= i
        self.kernels: list[str] = []

    def candidates(self, Q: np.ndarray, offsets: np.ndarray, r0: int, r1: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Rows r0..r1-1 (r0 a multiple of B): ``(indptr, ids, nodes, products)``, the CSR of
        each row's candidate keys (all j <= i), its tree nodes visited and inner products."""
        m = r1 - r0
        parts, nodes, products = [], np.zeros(m, np.int64), np.zeros(m, np.int64)

        def ask(structure: HSR, first_key: int, lo: int, hi: int) -> None:
            indptr, ids, cost = structure.query_many(Q[lo:hi], offsets[lo:hi], stats=True,
                                                     sort=False)
            parts.append(_widened(indptr, ids + first_key, lo - r0, r1 - hi))
            nodes[lo - r0:hi - r0] += cost.nodes_visited
            products[lo - r0:hi - r0] += cost.inner_products

        T = self.prefix
        for j in range(max(1, r0 // T), (r1 - 1) // T + 1):  # the prefix [0, j T)
            ask(self._structure(j * T, 1), 0, max(r0, j * T), min(r1, (j + 1) * T))
        size = self.block
        while size < min(r1, T):
            for p in range(max(1, r0 // size), (r1 - 1) // size + 1):
                if p % 2:  # odd p: the rows [p S, (p + 1) S) ask the keys [(p - 1) S, p S)
                    ask(self._structure(size, p), (p - 1) * size, max(r0, p * size),
                        min(r1, (p + 1) * size))
            size *= 2
        self._forget(r1)
        indptr, ids, scored = self._own_tiles(Q, offsets, r0, r1)
        products += scored
        indptr, ids = concat_rows([*parts, (indptr, ids)])
        return indptr, ids, nodes, products

    def _structure(self, size: int, p: int) -> HSR:
        """The structure over keys [(p - 1) size, p size), built on first use."""
        key = (size, p)
        if key not in self._built:
            self._built[key] = HSR(self.K[(p - 1) * size:p * size], backend=self.backend,
                                   leaf_size=BATCH_LEAF_SIZE)
            self.kernels.append(kernel_of(self._built[key].blocks))
        return self._built[key]

    def _forget(self, r1: int) -> None:
        """Drop the structures that no row from r1 on asks."""
        for size, p in list(self._built):
            last = size + self.prefix if size >= self.prefix else (p + 1) * size
            if last <= r1:
                del self._built[size, p]

    def _own_tiles(self, Q: np.ndarray, offsets: np.ndarray, r0: int, r1: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each row's keys in its own tile [r B, i] whose ``<q_i, k_j>`` reaches its offset,
        as CSR over rows r0..r1-1, and how many products each row took: the tile's width, as
        its rows are scored against all of its keys in one product and masked to j <= i."""
        B = self.block
        counts, found, products = [], [], []
        for lo in range(r0, r1, B):
            hi = min(r1, lo + B)
            products.append(np.full(hi - lo, hi - lo, dtype=np.int64))
            S = Q[lo:hi] @ self.K[lo:hi].T  # row i against the keys lo..hi-1 of its tile
            hit = S >= offsets[lo:hi, None]
            hit &= self._seen[:hi - lo, :hi - lo]  # keys j <= i
            counts.append(np.count_nonzero(hit, axis=1))
            found.append(np.nonzero(hit)[1] + lo)
        return indptr_of(np.concatenate(counts)), np.concatenate(found), np.concatenate(products)

    @property
    def kernel(self) -> str:
        """The kernel names of every structure built so far."""
        return joined(self.kernels) or "none"


def _widened(indptr: np.ndarray, ids: np.ndarray, before: int, after: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """A CSR over some rows, given ``before`` empty rows ahead of them and ``after`` behind."""
    return np.concatenate([np.zeros(before, np.int64), indptr,
                           np.full(after, indptr[-1], np.int64)]), ids
