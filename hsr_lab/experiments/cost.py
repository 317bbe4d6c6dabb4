"""Wall-clock cost of one half-space query on this machine: the kd-tree against the dense scan.

Measured live (never cached: a timing belongs to the machine and the moment), for keys of three
kinds, so that a notebook user can see where the tree wins and where it cannot:

- ``isotropic``: k_j ~ N(0, I_d), the paper's model. The tree wins at small d and large n.
- ``anisotropic``: k_j ~ N(0, diag(s)^2) with s_i falling geometrically from 1 to 0.01: a few
  large directions, like real key caches. Boxes are thin in the small directions.
- ``low-rank``: keys on a random 2-dimensional plane in R^d plus noise of 0.01: intrinsic
  dimension 2 whatever d is. The tree prunes as in the plane.

The threshold is the paper's rule applied per row (our specialisation, row C13 of the course):
b_i = mu_i + sigma_i sqrt(c ln n) on the score s_j = <a, k_j>/sqrt(d), that is t = sqrt(d) b_i on
the raw inner product <a, k_j>, with mu_i and sigma_i the mean and standard deviation of the
row's scores. E[k] is then about the same for every kind of keys. The paper uses one scalar b
for every row; ``per_row_vs_scalar`` measures what changes with one scalar b.

Computed exactly, mu_i and sigma_i need every score of the row, a dense pass. They can instead be
estimated from s sampled keys in O(s d) (``hsr_lab.attention.thresholds``);
``sampled_threshold_error`` measures how far the kept count then lands from the exact per-row
count. ``measure_query_cost`` estimates each row's threshold from ``sample`` keys inside the
timed call, for the tree and for the scan alike: the times include the threshold's cost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from ..attention.thresholds import row_thresholds, sampled_row_thresholds
from ..hsr import HSR, TREE
from ..hsr.plan import interleaved_calls
from ..theory import PAPER_C, paper_threshold
from ..validate import as_positive_int
from .common import seeds_for, unit_vectors

KEY_KINDS = ("isotropic", "anisotropic", "low-rank")
# Peak memory is about 4x the keys: the caller's array, each structure's validated copy and the
# tree's permuted copy. 512 MiB of keys (n = 2^20 at d = 64) stays near 2 GiB.
MAX_KEY_BYTES = 2**29
THRESHOLD_SAMPLE = 1024  # keys sampled per row to estimate its threshold (all keys if n is less)
ROUNDS = 3  # timed calls of each side per query, interleaved


@dataclass(frozen=True)
class QueryCost:
    """Per n: the seconds of every timed query of the tree and of the scan, mean work and k.

    ``tree_s`` and ``scan_s`` are the medians of those calls; ``tree_iqr_s`` and
    ``scan_iqr_s`` their interquartile range q75 - q25 (NumPy's linear interpolation, as in
    ``benchmarks/_common.timing``), the spread of the same calls.
    """

    n: np.ndarray
    d: int
    keys: str
    tree_calls: np.ndarray  # (len(n), n_queries * ROUNDS) seconds of each timed call of the tree
    scan_calls: np.ndarray  # the same for the scan K @ a >= t (backend="brute")
    work: np.ndarray  # mean box tests + inner products of the tree and its threshold sample
    reported: np.ndarray  # mean k, the keys reported
    blas_threads: int | None  # BLAS threads both sides ran with (None: the library's default)
    tree: str = "numpy"  # the kd-tree's backend: hsr.TREE, "compiled" where Numba is installed
    sample: int = THRESHOLD_SAMPLE  # keys sampled per row for its threshold, inside the timers

    @property
    def tree_s(self) -> np.ndarray:
        """Median seconds of a tree query per n, over every timed call (all queries)."""
        return np.median(self.tree_calls, axis=1)

    @property
    def scan_s(self) -> np.ndarray:
        """Median seconds of a scan query per n, over every timed call (all queries)."""
        return np.median(self.scan_calls, axis=1)

    @property
    def tree_iqr_s(self) -> np.ndarray:
        """Interquartile range q75 - q25 of the tree's timed calls per n, in seconds."""
        return _iqr(self.tree_calls)

    @property
    def scan_iqr_s(self) -> np.ndarray:
        """Interquartile range q75 - q25 of the scan's timed calls per n, in seconds."""
        return _iqr(self.scan_calls)

    @property
    def speedup(self) -> np.ndarray:
        """scan time / tree time (medians): above 1 the tree wins."""
        return self.scan_s / self.tree_s


def _iqr(calls: np.ndarray) -> np.ndarray:
    q25, q75 = np.percentile(calls, [25, 75], axis=1)
    return q75 - q25


def make_keys(kind: str, n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """n keys in R^d of the given kind (see the module docstring), shape (n, d)."""
    _check_kind(kind)
    if kind == "isotropic":
        return rng.standard_normal((n, d))
    if kind == "anisotropic":
        return rng.standard_normal((n, d)) * np.geomspace(1.0, 0.01, d)
    basis = np.linalg.qr(rng.standard_normal((d, min(2, d))))[0]  # (d, 2), orthonormal
    return rng.standard_normal((n, basis.shape[1])) @ basis.T + 0.01 * rng.standard_normal((n, d))


def measure_query_cost(n_values, d: int, keys: str = "isotropic", n_queries: int = 7,
                       c: float = PAPER_C, seed: int = 0, blas_threads: int | None = 1,
                       on_step: Callable[[int, int], None] | None = None,
                       sample: int = THRESHOLD_SAMPLE) -> QueryCost:
    """Time the tree and the scan side by side on the same keys and queries, for each n.

    The tree is ``hsr.TREE``: the kd-tree walked by compiled loops where Numba is installed,
    else the NumPy walk (same tree, same counters); ``QueryCost.tree`` names it.

    For each n: build both structures over the same keys; for each of ``n_queries`` unit
    queries, time each structure ``ROUNDS`` (3) times, interleaved, the order reversed every
    other round (``interleaved_calls``), and keep every call: ``QueryCost.tree_s`` is the median
    of all ``n_queries * ROUNDS`` calls at that n, ``tree_iqr_s`` their interquartile range. A
    timed call is the whole row: estimate the row's threshold t = sqrt(d) b_i from ``sample``
    keys (``sampled_row_thresholds``, the same keys for both sides, so both report the same
    ids), then query. The tree's work counts the sample's inner products too. Both sides run
    with ``blas_threads`` BLAS threads (1, as in ``benchmarks/``: on a shared machine a
    threaded call that waits for a busy core is noise). ``on_step(done, total)`` is called
    after each n, in units of keys measured.
    """
    d, n_arr = as_positive_int("d", d), np.asarray(n_values, dtype=np.int64)
    if n_arr.ndim != 1 or not len(n_arr) or n_arr.min() < 2:
        raise ValueError(f"n_values must be a non-empty list of sizes >= 2; got {n_values!r}")
    if int(n_arr.max()) * d * 8 > MAX_KEY_BYTES:
        raise ValueError(f"n = {int(n_arr.max())} keys of d = {d} take "
                         f"{n_arr.max() * d * 8 / 2**20:.0f} MiB (and about 4x that while "
                         f"measured); keep n * d * 8 bytes under {MAX_KEY_BYTES // 2**20} MiB")
    _check_kind(keys)
    n_queries, sample = as_positive_int("n_queries", n_queries), as_positive_int("sample", sample)
    columns = {name: np.zeros(len(n_arr)) for name in ("work", "k")}
    calls = {name: np.zeros((len(n_arr), n_queries * ROUNDS)) for name in ("tree", "scan")}
    with threadpool_limits(blas_threads):
        for i, (n, child) in enumerate(zip(n_arr, seeds_for(seed, len(n_arr)), strict=True)):
            rng = np.random.default_rng(child)
            K = make_keys(keys, int(n), d, rng)
            tree, scan = HSR(K, backend=TREE.name), HSR(K, backend="brute")
            for j, a in enumerate(unit_vectors(rng, n_queries, d)):
                tree_row, scan_row = (_row(s, K, a, c, sample, seed=j) for s in (tree, scan))
                timed = interleaved_calls({"tree": tree_row, "scan": scan_row}, ROUNDS)
                for name, seconds in timed.items():
                    calls[name][i, j * ROUNDS:(j + 1) * ROUNDS] = seconds
                t = np.sqrt(d) * sampled_row_thresholds(a[None], K, sample, c, seed=j)[0]
                _, stats = tree.query(a, t, stats=True)
                columns["work"][i] += (stats.work + min(sample, int(n))) / n_queries
                columns["k"][i] += stats.points_reported / n_queries
            if on_step is not None:
                on_step(int(n_arr[:i + 1].sum()), int(n_arr.sum()))
    return QueryCost(n_arr, d, keys, calls["tree"], calls["scan"], columns["work"],
                     columns["k"], blas_threads, TREE.name, sample)


def _row(structure: HSR, K: np.ndarray, a: np.ndarray, c: float, sample: int, seed: int
         ) -> Callable[[], np.ndarray]:
    """One timed row: the sampled threshold t = sqrt(d) b_i, then the query <a, k> >= t."""
    scale = np.sqrt(K.shape[1])

    def row() -> np.ndarray:
        return structure.query(a, scale * sampled_row_thresholds(a[None], K, sample, c, seed)[0])

    return row


def _check_kind(kind: object) -> None:
    if kind not in KEY_KINDS:
        raise ValueError(f"keys must be one of {', '.join(KEY_KINDS)}; got {kind!r}")


@dataclass(frozen=True)
class ThresholdRows:
    """Activated count per row with a per-row threshold and with one scalar b for all rows."""

    keys: str
    n: int
    d: int
    per_row: np.ndarray  # (rows,) k at b_i = mu_i + sigma_i sqrt(c ln n), exact (a dense pass)
    scalar: np.ndarray  # (rows,) k with one b = sigma_a sqrt(c ln n), sigma_a fixed
    sigma_a: float  # the scalar's sigma_a: the mean over rows of the score spread sigma_i


def per_row_vs_scalar(keys: str = "isotropic", n: int = 2**14, d: int = 16, rows: int = 64,
                      c: float = PAPER_C, seed: int = 0) -> ThresholdRows:
    """k per row at the per-row threshold (our panels) and at one scalar b (the paper's).

    The scalar uses sigma_a estimated once, as the mean score spread over the rows; for
    isotropic keys and unit queries every row has the same spread, 1/sqrt(d), so both agree.
    """
    _check_kind(keys)
    rng = np.random.default_rng(seed)
    K, A = make_keys(keys, n, d, rng), unit_vectors(rng, rows, d)
    S = A @ K.T / np.sqrt(d)  # (rows, n): the scores, the dense pass
    sigma_a = float(S.std(axis=1).mean())
    b_scalar = float(paper_threshold(n, sigma_a, c))
    per_row = (S >= row_thresholds(A, K, c)[:, None]).sum(axis=1)
    return ThresholdRows(keys, n, d, per_row, (S >= b_scalar).sum(axis=1), sigma_a)


@dataclass(frozen=True)
class SampledThresholds:
    """Kept counts at thresholds estimated from s sampled keys, against the exact per-row ones."""

    keys: str
    n: int
    d: int
    samples: np.ndarray  # (S,) keys sampled per row
    exact: np.ndarray  # (rows,) k at the exact b_i = mu_i + sigma_i sqrt(c ln n)
    sampled: np.ndarray  # (S, draws, rows) k at the threshold estimated from s keys

    @property
    def relative_error(self) -> np.ndarray:
        """|k_sampled - k_exact| / k_exact, shape (S, draws, rows)."""
        return np.abs(self.sampled - self.exact) / np.maximum(self.exact, 1)

    def __repr__(self) -> str:
        median = np.median(self.relative_error.reshape(len(self.samples), -1), axis=1)
        cells = ", ".join(f"s={s}: {e:.1%}" for s, e in zip(self.samples, median, strict=True))
        return f"SampledThresholds({self.keys}, n={self.n}, d={self.d}; median error {cells})"


def sampled_threshold_error(keys: str = "isotropic", n: int = 2**14, d: int = 16,
                            rows: int = 64, samples=(16, 64, 256, 1024, 4096), draws: int = 8,
                            c: float = PAPER_C, seed: int = 0) -> SampledThresholds:
    """Kept count per row at b_i estimated from s sampled keys (``sampled_row_thresholds``,
    ``draws`` independent samples per s) against the count at the exact per-row b_i."""
    _check_kind(keys)
    rng = np.random.default_rng(seed)
    K, A = make_keys(keys, n, d, rng), unit_vectors(rng, rows, d)
    S = A @ K.T / np.sqrt(d)  # (rows, n): only to count what each threshold keeps
    exact = (S >= row_thresholds(A, K, c)[:, None]).sum(axis=1)
    s_arr = np.array([as_positive_int("samples", s) for s in samples], dtype=np.int64)
    draws = as_positive_int("draws", draws)
    sampled = np.zeros((len(s_arr), draws, rows), dtype=np.int64)
    for i, s in enumerate(s_arr):
        for j, child in enumerate(seeds_for(seed + 1, draws)):
            b = sampled_row_thresholds(A, K, int(s), c, seed=child)
            sampled[i, j] = (S >= b[:, None]).sum(axis=1)
    return SampledThresholds(keys, n, d, s_arr, exact, sampled)
