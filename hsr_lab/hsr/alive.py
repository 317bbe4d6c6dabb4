"""Which ids are alive: ``HSR``'s table of deleted ids, in pages that a rebuild compacts.

A query reports the ids its blocks hold, dead ones included until the next rebuild, and drops
the dead ones by looking each up. One flag per id ever handed out would grow without end (a
sliding-window cache that adds and deletes 2^24 keys would hold 16 MiB of flags for a few
thousand live ones), so the flags live in pages of ``PAGE`` ids:

    alive(i) = flags[slot[i // PAGE] * PAGE + i % PAGE]

``slot`` maps every page of ids to its page of flags; slot 0 is a page of False shared by every
page that holds no stored id. A rebuild leaves only live ids in the blocks, and ``compact``
then keeps the pages that hold one: the table takes ``PAGE`` bytes per page with a live id and
8 bytes per page of ids ever handed out (the slots), O(live + ids / PAGE).
"""

from __future__ import annotations

import numpy as np

PAGE_BITS = 12  # a page of 4096 ids: one 4 KiB page of flags; the slots are 1/512 of the ids
PAGE = 1 << PAGE_BITS


class AliveTable:
    """Alive flags of the ids ``0 .. n_ids - 1``, every id alive to start with."""

    def __init__(self, n_ids: int) -> None:
        pages = -(-n_ids // PAGE)
        self._slot = np.arange(1, pages + 1, dtype=np.int64)  # page p -> flags page p + 1
        self._flags = np.ones((pages + 1) * PAGE, dtype=bool)
        self._flags[:PAGE] = False  # slot 0: no stored id
        self._used = pages + 1  # flag pages in use (the array may hold spare ones after them)
        self.n_ids = n_ids

    def _at(self, ids: np.ndarray) -> np.ndarray:
        """Positions of the ids' flags."""
        return self._slot[ids >> PAGE_BITS] * PAGE + (ids & (PAGE - 1))

    def alive(self, ids: np.ndarray) -> np.ndarray:
        """Whether each id is alive (ids below ``n_ids``)."""
        return self._flags[self._at(ids)]

    def set(self, ids: np.ndarray, alive: bool) -> None:
        """Mark the ids dead (``alive=False``) or alive again (to undo a failed operation)."""
        self._flags[self._at(ids)] = alive

    def extend(self, n_ids: int) -> None:
        """Hand out the ids ``self.n_ids .. n_ids - 1``, alive. A page of ids without flags
        (new, or dropped by ``compact``) gets a fresh page of them; the flags array doubles
        when full, so an id costs O(1) amortised."""
        first, pages = self.n_ids >> PAGE_BITS, -(-n_ids // PAGE)
        if pages > len(self._slot):
            self._slot = np.concatenate([self._slot, np.zeros(pages - len(self._slot),
                                                              dtype=np.int64)])
        bare = first + np.flatnonzero(self._slot[first:pages] == 0)
        if len(bare):
            need = self._used + len(bare)
            if need * PAGE > len(self._flags):
                self._flags = _grown(self._flags, max(need, 2 * self._used) * PAGE)
            self._flags[self._used * PAGE:need * PAGE] = False
            self._slot[bare] = np.arange(self._used, need)
            self._used = need
        self._flags[self._at(np.arange(self.n_ids, n_ids))] = True
        self.n_ids = n_ids

    def compact(self, live: np.ndarray) -> None:
        """Keep only the pages that hold one of the ``live`` ids (every other id handed out is
        dead and stored nowhere); the live ids stay alive."""
        pages = np.unique(live >> PAGE_BITS)
        self._slot = np.zeros(len(self._slot), dtype=np.int64)
        self._slot[pages] = np.arange(1, len(pages) + 1)
        self._used = len(pages) + 1
        self._flags = np.zeros(self._used * PAGE, dtype=bool)
        self._flags[self._at(live)] = True

    @property
    def nbytes(self) -> int:
        return self._slot.nbytes + self._flags.nbytes


def _grown(arr: np.ndarray, size: int) -> np.ndarray:
    """``arr`` copied into a longer array of ``size`` (the rest uninitialised)."""
    out = np.empty(size, dtype=arr.dtype)
    out[:len(arr)] = arr
    return out
