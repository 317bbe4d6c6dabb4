"""Attention: HSR against the dense formulas, the decoder, the softmax bound, bad input."""

from __future__ import annotations

import contextlib
import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hsr_lab.attention import AttentionStats, Decoder, relu_attention, softmax_attention
from hsr_lab.attention.scores import BATCH_LEAF_SIZE
from hsr_lab.hsr import TREE
from hsr_lab.theory import paper_threshold, softmax_error_bound

RTOL = 1e-10


def close(actual: np.ndarray, expected: np.ndarray, V: np.ndarray, msg: str = "") -> None:
    """Equal up to rounding: rtol 1e-10, atol a tiny fraction of the values' scale."""
    assert np.isfinite(actual).all(), msg
    atol = 1e-13 * max(1.0, float(np.abs(V).max()))
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=atol, err_msg=msg)


def positive_counts(Q, K, b, causal):
    """The definition of the activated count: #{ j visible : <q_i, k_j>/sqrt(d) - b > 0 }."""
    S = np.asarray(Q, float) @ np.asarray(K, float).T / np.sqrt(np.shape(Q)[1]) - b
    if causal:
        S[np.triu_indices(len(S), 1)] = -1.0
    return np.count_nonzero(S > 0, axis=1)


# ---------------------------------------------------------------- ReLU^alpha: exact


@st.composite
def exact_problems(draw):
    """d = 4 (sqrt(d) = 2) and small integers: every score and s - b is exact in float64.

    Duplicate keys and keys exactly on the threshold are common (b is a multiple of 1/2, or
    the score of a stored key); rows of keys and queries are scaled by powers of two (huge and
    tiny magnitudes); a large b leaves rows with no activated entry.
    """
    d = 4
    causal = draw(st.booleans())
    n = draw(st.integers(1, 24))
    m = n if causal else draw(st.sampled_from([1, n, draw(st.integers(1, 24))]))
    ints = st.integers(-3, 3)
    K = np.array(draw(st.lists(ints, min_size=n * d, max_size=n * d)), float).reshape(n, d)
    Q = np.array(draw(st.lists(ints, min_size=m * d, max_size=m * d)), float).reshape(m, d)
    if draw(st.booleans()):
        K *= np.exp2(draw(st.lists(st.integers(-20, 20), min_size=n, max_size=n)))[:, None]
        Q *= np.exp2(draw(st.lists(st.integers(-20, 20), min_size=m, max_size=m)))[:, None]
    V = np.array(draw(st.lists(st.integers(-5, 5), min_size=2 * n, max_size=2 * n)),
                 float).reshape(n, 2)
    if draw(st.booleans()):
        b = float(Q[draw(st.integers(0, m - 1))] @ K[draw(st.integers(0, n - 1))]) / 2
    else:
        b = draw(st.integers(-12, 12)) / 2
    return Q, K, V, b, causal


@contextlib.contextmanager
def position_tiles(block: int, prefix: int):
    """Causal prefill with tiny position tiles (``positions.py``), so that tiny problems ask
    the Fenwick blocks and the prefix structures and not only their own tile."""
    import hsr_lab.attention.positions as positions

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(positions, "POSITION_BLOCK", block)
        patch.setattr(positions, "PREFIX_TILE", prefix)
        yield


TILES = [(512, 8192), (1, 2), (2, 8), (3, 5), (4, 16)]  # (B, T): the default, then tiny ones


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(exact_problems(), st.integers(1, 4),
       st.sampled_from(["numpy", "compiled", "reference", "brute"]), st.integers(0, 3),
       st.integers(0, 3), st.sampled_from(TILES))
def test_hsr_equals_dense_on_exact_adversarial_data(problem, alpha, backend, sinks, window,
                                                    tiles):
    with position_tiles(*tiles):
        _hsr_equals_dense_on_exact_data(problem, alpha, backend, sinks, window)


def _hsr_equals_dense_on_exact_data(problem, alpha, backend, sinks, window):
    Q, K, V, b, causal = problem
    dense, dense_stats = relu_attention(Q, K, V, alpha, b, causal=causal, return_stats=True)
    fast, stats = relu_attention(Q, K, V, alpha, b, causal=causal, method="hsr",
                                 backend=backend, sinks=sinks, window=window, return_stats=True)
    close(fast, dense, V, f"{backend} causal={causal}")
    expected = positive_counts(Q, K, b, causal)
    np.testing.assert_array_equal(dense_stats.activated, expected)
    np.testing.assert_array_equal(stats.activated, expected)
    np.testing.assert_array_equal(stats.empty, expected == 0)
    assert not fast[expected == 0].any() and not dense[expected == 0].any()
    # the same query finds the kept softmax entries, ties (s_ij = b) included
    dense, dense_stats = softmax_attention(Q, K, V, causal=causal, b=b, sinks=sinks,
                                           window=window, return_stats=True)
    fast, stats = softmax_attention(Q, K, V, causal=causal, b=b, method="hsr", backend=backend,
                                    sinks=sinks, window=window, return_stats=True)
    close(fast, dense, V, f"softmax {backend} causal={causal}")
    np.testing.assert_array_equal(stats.activated, dense_stats.activated)
    np.testing.assert_allclose(stats.dropped_mass, dense_stats.dropped_mass, rtol=1e-9,
                               atol=1e-15)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("d", [2, 3, 8])
@pytest.mark.parametrize("backend", ["numpy", "compiled", "brute", "reference"])
def test_hsr_relu_equals_dense_on_random_data(backend, d, causal):
    rng = np.random.default_rng(d + 10 * causal)
    n = 90 if backend == "reference" else 400
    K = rng.standard_normal((n, d)) * rng.choice([1e-3, 1.0, 1e3])
    V = rng.standard_normal((n, 3))
    for alpha in (1, 4) if causal else (1, 2, 3, 4):  # even alpha: sinks and window on
        m = n if causal else int(rng.choice([1, n]))
        Q = rng.standard_normal((m, d)) / np.abs(K).max()
        b = float(rng.normal(0.0, 0.5)) / np.sqrt(d)
        sinks, window = (0, 0) if alpha % 2 else (int(rng.integers(1, 5)), int(rng.integers(1, 9)))
        dense, dense_stats = relu_attention(Q, K, V, alpha, b, causal=causal, return_stats=True)
        fast, stats = relu_attention(Q, K, V, alpha, b, causal=causal, method="hsr",
                                     backend=backend, sinks=sinks, window=window,
                                     return_stats=True)
        close(fast, dense, V, f"alpha={alpha}")
        np.testing.assert_array_equal(stats.activated, dense_stats.activated)
        np.testing.assert_array_equal(stats.activated, positive_counts(Q, K, b, causal))


def test_huge_and_tiny_scales_give_the_same_finite_result():
    rng = np.random.default_rng(1)
    K, V, Q = rng.standard_normal((200, 4)), rng.standard_normal((200, 2)), rng.standard_normal(
        (5, 4))
    base = relu_attention(Q, K, V, 4, 0.1)
    for scale in (1e-140, 1e-30, 1e30, 1e140):  # b scales with Q: the weights only rescale
        for method in ("dense", "hsr"):
            out = relu_attention(Q, K * scale, V, 4, 0.1 * scale, method=method,
                                 backend="numpy")
            close(out, base, V, f"scale={scale} {method}")


def decisive_scores(Q: np.ndarray, K: np.ndarray) -> np.ndarray:
    """The oracle's scores: ``sigma_ij = fl(<q_i, k_j> / sqrt(d))`` with the inner product
    summed exactly in fractions, rounded once, then divided (``attention/scores.py``)."""
    return np.array([[float(sum((Fraction(float(u)) * Fraction(float(v))
                                 for u, v in zip(q, k, strict=True)), Fraction(0)))
                      for k in K] for q in Q]) / math.sqrt(Q.shape[1])


@st.composite
def tiny_problems(draw):
    """Keys scaled by 2^-1060 .. 2^-1000 (one scale per key), or mixed per coordinate from
    2^-1060 to 2^10, with duplicates; queries at 2^-1074 .. 2^40; b on a decisive score, one
    ulp either side, or 0. The scores' rounding is then about the smallest subnormal."""
    d, n, m = draw(st.integers(1, 5)), draw(st.integers(2, 24)), draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):
        K = rng.standard_normal((n, d)) * np.ldexp(1.0, rng.integers(-1060, -999, (n, 1)))
    else:
        K = rng.standard_normal((n, d)) * np.ldexp(1.0, rng.integers(-1060, 11, (n, d)))
    K = K[rng.integers(0, n, n)] if draw(st.booleans()) else K
    Q = rng.standard_normal((m, d)) * np.ldexp(1.0, rng.integers(-1074, 41, (m, 1)))
    S = decisive_scores(Q, K)
    s = float(S[rng.integers(0, m), rng.integers(0, n)])
    b = draw(st.sampled_from([s, float(np.nextafter(s, np.inf)), float(np.nextafter(s, -np.inf)),
                              0.0]))
    return Q, K, rng.standard_normal((n, 2)), b, S


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiny_problems(), st.sampled_from(["numpy", "compiled", "brute", "reference"]))
def test_kept_sets_are_exact_where_scores_underflow(problem, backend):
    """``scores.tolerance`` and ``hsr_offset`` keep an absolute floor (``2 d TINY``): where
    ``rel(d) ||q||_1 max|k|`` underflows to 0, a score within rounding of b is still settled
    on its decisive score. Dense and hsr keep exactly ``{j : sigma_ij > b}`` (ReLU) and
    ``{j : sigma_ij >= b}`` (softmax), and agree on the output."""
    Q, K, V, b, S = problem
    for method in ("dense", "hsr"):
        out, stats = relu_attention(Q, K, V, 1, b, method=method, backend=backend,
                                    return_stats=True)
        np.testing.assert_array_equal(stats.activated, (S > b).sum(axis=1), err_msg=method)
        _, soft = softmax_attention(Q, K, V, b=b, method=method, backend=backend,
                                    return_stats=True)
        np.testing.assert_array_equal(soft.activated, (S >= b).sum(axis=1), err_msg=method)
        if method == "dense":
            dense = out
    close(out, dense, V)


def test_rows_without_activated_entries_are_zero_and_flagged_without_warnings():
    rng = np.random.default_rng(2)
    Q, K, V = rng.standard_normal((6, 3)), rng.standard_normal((30, 3)), rng.standard_normal(
        (30, 2))
    Q[2] = 0.0  # every score is 0, so ReLU(0 - b) = 0 for b >= 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in ("dense", "hsr"):
            out, stats = relu_attention(Q, K, V, 2, 0.0, method=method, return_stats=True)
            assert not out[2].any() and stats.empty[2] and stats.activated[2] == 0
            out, stats = relu_attention(Q, K, V, 1, 50.0, method=method, return_stats=True)
            assert not out.any() and stats.empty_rows == 6
            out, stats = softmax_attention(Q, K, V, b=50.0, method=method, return_stats=True)
            assert not out.any() and stats.empty_rows == 6
            np.testing.assert_array_equal(stats.dropped_mass, 1.0)


def paper_prefill(seed: int, n: int = 8192, d: int = 2) -> tuple[np.ndarray, ...]:
    """A prefill in the paper's setting: Gaussian keys and values, unit queries (m = n) and
    the paper's threshold b: (Q, K, V, b)."""
    rng = np.random.default_rng(seed)
    K, V = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    Q = rng.standard_normal((n, d))
    Q /= np.linalg.norm(Q, axis=1, keepdims=True)
    return Q, K, V, paper_threshold(n, 1 / np.sqrt(d))


def test_causal_hsr_does_not_fall_back_to_dense_work():
    """d = 2, the paper's threshold: the causal prefill computes far fewer than n^2/2 products
    (0.39 of them at n = 8192 with leaves of ``BATCH_LEAF_SIZE`` = 128 points, of which each
    row's own 512-key tile, scored as one product, is 0.125)."""
    Q, K, V, b = paper_prefill(3)
    n = len(K)
    fast, stats = relu_attention(Q, K, V, 1, b, causal=True, method="hsr", backend="numpy",
                                 return_stats=True)
    dense, dense_stats = relu_attention(Q, K, V, 1, b, causal=True, return_stats=True)
    close(fast, dense, V)
    np.testing.assert_array_equal(dense_stats.inner_products, np.arange(1, n + 1))
    assert stats.total_inner_products < 0.45 * dense_stats.total_inner_products
    assert stats.total_nodes_visited > 0 and stats.kernel == "numpy"


def test_batched_hsr_rows_equal_the_decoder_row_by_row():
    """Non-causal method="hsr" asks one structure for every row at once: the same rows and
    the same counters as querying a prefilled Decoder (with the batch's leaf size) once per
    row."""
    rng = np.random.default_rng(13)
    K, V, Q = (rng.standard_normal(shape) for shape in ((700, 3), (700, 2), (60, 3)))
    for kind in ("relu", "softmax"):
        decoder = Decoder(3, alpha=2, b=0.3, kind=kind, keys=K, values=V, backend="numpy",
                          sinks=1, window=2, leaf_size=BATCH_LEAF_SIZE)
        rows = [decoder.attend(q) for q in Q]
        if kind == "relu":
            out, stats = relu_attention(Q, K, V, 2, 0.3, method="hsr", backend="numpy",
                                        sinks=1, window=2, return_stats=True)
        else:
            out, stats = softmax_attention(Q, K, V, b=0.3, method="hsr", backend="numpy",
                                           sinks=1, window=2, return_stats=True)
        close(out, np.array([row for row, _ in rows]), V, kind)
        expected = AttentionStats.concat([cost for _, cost in rows])
        for name in ("activated", "inner_products", "nodes_visited", "empty"):
            np.testing.assert_array_equal(getattr(stats, name), getattr(expected, name), name)
        if kind == "softmax":
            np.testing.assert_allclose(stats.dropped_mass, expected.dropped_mass, rtol=1e-9,
                                       atol=1e-15)


@pytest.mark.parametrize(("block", "prefix"), [(1, 2), (3, 12), (16, 64), (None, None)])
def test_causal_candidates_are_exactly_the_visible_keys_above_the_offset(block, prefix):
    """Split by position, row i is handed exactly the keys j <= i with <q_i, k_j> >= its
    offset: the structures over earlier blocks and its own tile, each key once, none beyond i."""
    from hsr_lab.attention.positions import PrefixBlocks
    from hsr_lab.attention.scores import hsr_offset

    rng = np.random.default_rng(14)
    n = 300
    K, Q = rng.standard_normal((n, 2)), rng.standard_normal((n, 2))
    offsets = hsr_offset(Q, 0.2, float(np.abs(K).max()))
    blocks = PrefixBlocks(K, "numpy", block, prefix)
    step = blocks.block * 4
    for r0 in range(0, n, step):  # in chunks of whole tiles, as hsr_attention asks
        r1 = min(n, r0 + step)
        indptr, ids, _, products = blocks.candidates(Q, offsets, r0, r1)
        for i in range(r0, r1):
            found = ids[indptr[i - r0]:indptr[i - r0 + 1]]
            expected = np.flatnonzero(K[: i + 1] @ Q[i] >= offsets[i])
            np.testing.assert_array_equal(np.sort(found), expected, err_msg=str(i))
            assert products[i - r0] >= i % blocks.block + 1  # its own tile, scored directly
    assert blocks.kernel == "numpy"


@pytest.mark.parametrize("causal", [False, True])
def test_hsr_attention_in_tiny_chunks_and_blocks_equals_one_pass(monkeypatch, causal):
    import hsr_lab.attention.batch as batch
    import hsr_lab.attention.rows as rows

    rng = np.random.default_rng(15)
    K, V, Q = (rng.standard_normal((120, 2)) for _ in range(3))
    runs = {}
    for tiny in (False, True):
        if tiny:  # chunks of a few rows, blocks of a few entries
            monkeypatch.setattr(batch, "QUERY_ROWS", 7)
            monkeypatch.setattr(batch, "QUERY_IDS", 50)
            monkeypatch.setattr(rows, "ROW_BLOCK", 40)
        runs[tiny] = [
            relu_attention(Q, K, V, 3, 0.1, causal=causal, method="hsr", backend="numpy",
                           sinks=2, window=4, return_stats=True),
            softmax_attention(Q, K, V, causal=causal, b=0.1, method="hsr", backend="numpy",
                              sinks=2, window=4, return_stats=True)]
    for (out, stats), (ref, ref_stats) in zip(runs[True], runs[False], strict=True):
        np.testing.assert_array_equal(out, ref)
        for name in ("activated", "inner_products", "nodes_visited", "empty"):
            np.testing.assert_array_equal(getattr(stats, name), getattr(ref_stats, name))
    np.testing.assert_allclose(runs[True][1][1].dropped_mass, runs[False][1][1].dropped_mass,
                               rtol=1e-12, atol=1e-15)
    close(runs[True][0][0], relu_attention(Q, K, V, 3, 0.1, causal=causal), V)


@pytest.mark.parametrize("backend", ["layers", "auto"])
def test_hsr_attention_with_the_other_backends_equals_dense(backend):
    rng = np.random.default_rng(16)
    K, V, Q = (rng.standard_normal((150, 2)) for _ in range(3))
    for causal in (False, True):
        fast, stats = relu_attention(Q, K, V, 2, 0.2, causal=causal, method="hsr",
                                     backend=backend, window=3, return_stats=True)
        dense, dense_stats = relu_attention(Q, K, V, 2, 0.2, causal=causal, return_stats=True)
        close(fast, dense, V, f"{backend} causal={causal}")
        np.testing.assert_array_equal(stats.activated, dense_stats.activated)


# ---------------------------------------------------------------- softmax


def softmax_problem(seed: int, n: int = 300, m: int = 20, d: int = 4):
    rng = np.random.default_rng(seed)
    K = 2.0 * rng.standard_normal((n, d))
    Q = rng.standard_normal((m if m else n, d))
    return Q, K, rng.standard_normal((n, 3))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(("sinks", "window"), [(0, 0), (2, 5)])
def test_softmax_error_never_exceeds_the_bound(causal, sinks, window):
    Q, K, V = softmax_problem(4, n=200, m=200 if causal else 20)
    exact = softmax_attention(Q, K, V, causal=causal)
    for b in (-1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 20.0):
        approx, stats = softmax_attention(Q, K, V, causal=causal, method="hsr", b=b,
                                          backend="numpy", sinks=sinks, window=window,
                                          return_stats=True)
        error = float(np.abs(approx - exact).max())
        bound = softmax_error_bound(stats.dropped_mass, float(np.abs(V).max()))
        assert error <= bound + 1e-12, (b, error, bound)
        dense, dense_stats = softmax_attention(Q, K, V, causal=causal, b=b, sinks=sinks,
                                               window=window, return_stats=True)
        close(approx, dense, V, f"b={b}")
        np.testing.assert_allclose(stats.dropped_mass, dense_stats.dropped_mass, rtol=1e-9,
                                   atol=1e-15)
        np.testing.assert_array_equal(stats.activated, dense_stats.activated)


def test_softmax_with_the_threshold_below_every_score_is_dense_softmax():
    Q, K, V = softmax_problem(5)
    S = Q @ K.T / 2.0
    expected = np.exp(S - S.max(axis=1, keepdims=True))
    expected = expected @ V / expected.sum(axis=1, keepdims=True)
    close(softmax_attention(Q, K, V), expected, V)
    out, stats = softmax_attention(Q, K, V, method="hsr", b=float(S.min()) - 1.0,
                                   return_stats=True)
    close(out, expected, V)
    np.testing.assert_array_equal(stats.dropped_mass, 0.0)
    np.testing.assert_array_equal(stats.activated, len(K))


def test_dropped_mass_lies_in_0_1_and_grows_with_b():
    Q, K, V = softmax_problem(6)
    previous = np.zeros(len(Q))
    for b in np.linspace(-3.0, 8.0, 23):
        stats = softmax_attention(Q, K, V, method="hsr", b=b, return_stats=True)[1]
        eps = stats.dropped_mass
        assert ((eps >= 0) & (eps <= 1)).all()
        assert (eps >= previous - 1e-15).all()
        previous = eps
    assert previous.max() == 1.0  # at b = 8 every row keeps nothing


def test_softmax_ties_on_the_threshold_are_kept():
    """Integer data, d = 4: keys scoring exactly b are kept, by both methods."""
    K = np.array([[1, 1, 0, 0], [2, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0]], float)
    V = np.arange(10.0).reshape(5, 2)
    Q = np.array([[1.0, 1.0, 0.0, 0.0]])
    for method in ("dense", "hsr"):
        out, stats = softmax_attention(Q, K, V, b=1.0, method=method, return_stats=True)
        assert stats.activated[0] == 3  # scores 1, 1, 1/2, 0, 1
        np.testing.assert_allclose(out[0], V[[0, 1, 4]].mean(axis=0))


def test_measure_dropped_false_skips_the_measurement():
    Q, K, V = softmax_problem(7)
    out, stats = softmax_attention(Q, K, V, method="hsr", b=0.5, measure_dropped=False,
                                   return_stats=True)
    assert stats.dropped_mass is None and stats.max_dropped_mass is None
    close(out, softmax_attention(Q, K, V, b=0.5), V)


def test_sinks_always_keep_a_softmax_row_alive():
    Q, K, V = softmax_problem(8)
    out, stats = softmax_attention(Q, K, V, method="hsr", b=100.0, sinks=1, return_stats=True)
    assert stats.empty_rows == 0
    np.testing.assert_allclose(out, np.repeat(V[:1], len(Q), axis=0))


# ---------------------------------------------------------------- decoding


@pytest.mark.parametrize("kind", ["relu", "softmax"])
@pytest.mark.parametrize("prefill", [0, 40])
def test_decoder_equals_dense_attention_over_the_cache_at_every_step(kind, prefill):
    rng = np.random.default_rng(9 + prefill)
    d, d_v, steps = 3, 2, 250
    K, V = rng.standard_normal((prefill + steps, d)), rng.standard_normal((prefill + steps, d_v))
    options = dict(b=0.4, kind=kind, backend="numpy", leaf_size=4, sinks=2, window=3)
    if kind == "relu":
        options["alpha"] = 2
    keys = dict(keys=K[:prefill], values=V[:prefill]) if prefill else {}
    decoder = Decoder(d, **options, **keys)
    for i in range(prefill, prefill + steps):
        q = rng.standard_normal(d)
        out, stats = decoder.step(q, K[i], V[i])
        assert len(decoder) == i + 1 and stats.rows == 1
        if kind == "relu":
            expected, want = relu_attention(q[None], K[: i + 1], V[: i + 1], 2, 0.4,
                                            return_stats=True)
        else:
            expected, want = softmax_attention(q[None], K[: i + 1], V[: i + 1], b=0.4, sinks=2,
                                               window=3, return_stats=True)
            np.testing.assert_allclose(stats.dropped_mass, want.dropped_mass, rtol=1e-9,
                                       atol=1e-15)
        close(out, expected[0], V, f"step {i}")
        assert stats.activated[0] == want.activated[0]
        if i % 50 == 0:
            close(decoder.attend_dense(q)[0], expected[0], V)
    np.testing.assert_array_equal(decoder.keys, K)
    np.testing.assert_array_equal(decoder.values, V)


def test_decoder_description_and_read_only_cache():
    decoder = Decoder(2, alpha=3, b=0.5, backend="numpy")
    assert len(decoder) == 0 and decoder.hsr is None and decoder.d_v is None
    decoder.step([1.0, 0.0], [1.0, 2.0], [3.0, 4.0, 5.0])
    text = repr(decoder)
    for part in ("relu", "alpha=3", "b=0.5", "n=1", "d=2", "d_v=3", "HSR("):
        assert part in text
    with pytest.raises(ValueError):
        decoder.keys[0, 0] = 7.0


def test_stats_totals_concat_and_repr():
    Q, K, V = softmax_problem(10)
    stats = softmax_attention(Q, K, V, method="hsr", b=1.0, return_stats=True)[1]
    assert isinstance(stats, AttentionStats) and stats.rows == len(Q)
    assert stats.total_activated == stats.activated.sum()
    assert stats.total_inner_products == stats.inner_products.sum()
    both = AttentionStats.concat([stats, stats])
    assert both.rows == 2 * len(Q) and both.max_dropped_mass == stats.max_dropped_mass
    assert "hsr" in repr(stats) and "max_dropped_mass" in repr(stats)


# ---------------------------------------------------------------- bad input


GOOD = np.random.default_rng(11).standard_normal((5, 4))


def spoiled(value: float, shape: tuple[int, int] = (5, 4)) -> np.ndarray:
    """GOOD (cut to ``shape``) with one entry replaced by ``value``."""
    out = GOOD[: shape[0], : shape[1]].copy()
    out[1, 1] = value
    return out


def relu(**kwargs):
    args = dict(Q=GOOD, K=GOOD, V=GOOD[:, :2])
    args.update(kwargs)
    return lambda: relu_attention(**args)


def soft(**kwargs):
    args = dict(Q=GOOD, K=GOOD, V=GOOD[:, :2])
    args.update(kwargs)
    return lambda: softmax_attention(**args)


BAD = [
    (relu(Q=GOOD[0]), ValueError, "Q"),
    (relu(K=GOOD[:, :3]), ValueError, "K"),
    (relu(V=GOOD[:3]), ValueError, "V"),
    (relu(V=GOOD[:, 0]), ValueError, "V"),
    (relu(Q=spoiled(np.nan)), ValueError, "Q"),
    (relu(K=spoiled(-np.inf)), ValueError, "K"),
    (relu(V=spoiled(np.nan, (5, 2))), ValueError, "V"),
    (relu(Q=GOOD.astype(complex)), TypeError, "Q"),
    (relu(K=GOOD * 1e200), ValueError, "K"),
    (relu(Q=GOOD * 1e300), ValueError, "Q"),
    (relu(alpha=0), ValueError, "alpha"),
    (relu(alpha=-1), ValueError, "alpha"),
    (relu(alpha=1.5), TypeError, "alpha"),
    (relu(alpha=True), TypeError, "alpha"),
    (relu(b=np.nan), ValueError, "b"),
    (relu(b=np.inf), ValueError, "b"),
    (relu(b="0"), TypeError, "b"),
    (relu(method="sparse"), ValueError, "method"),
    (relu(backend="kdtree"), ValueError, "backend"),
    (relu(causal=True, Q=GOOD[:3]), ValueError, "causal"),
    (relu(causal="yes"), TypeError, "causal"),
    (relu(sinks=-1), ValueError, "sinks"),
    (relu(window=-2), ValueError, "window"),
    (relu(sinks=1.5), TypeError, "sinks"),
    (relu(window=True), TypeError, "window"),
    (soft(method="hsr"), ValueError, "b"),
    (soft(b=np.nan), ValueError, "b"),
    (soft(method="fast"), ValueError, "method"),
    (soft(causal=True, K=GOOD[:4], V=GOOD[:4]), ValueError, "causal"),
    (soft(measure_dropped=1), TypeError, "measure_dropped"),
    (lambda: Decoder(0), ValueError, "d"),
    (lambda: Decoder(2, kind="gelu"), ValueError, "kind"),
    (lambda: Decoder(2, alpha=2.0), TypeError, "alpha"),
    (lambda: Decoder(3, backend="layers"), ValueError, "layers"),
    (lambda: Decoder(2, keys=np.zeros((3, 2))), ValueError, "values"),
    (lambda: Decoder(2, keys=np.zeros((3, 2)), values=np.zeros((2, 1))), ValueError, "values"),
    (lambda: Decoder(2).attend([1.0, 0.0]), ValueError, "empty"),
    (lambda: Decoder(2).step([1.0], [1.0, 0.0], [1.0]), ValueError, "q"),
    (lambda: Decoder(2).step([1.0, 0.0], [1.0, np.nan], [1.0]), ValueError, "k_new"),
]


@pytest.mark.parametrize(("call", "error", "name"), BAD)
def test_bad_input_is_rejected_naming_the_argument(call, error, name):
    with pytest.raises(error, match=name):
        call()


def test_a_failed_step_changes_nothing():
    decoder = Decoder(2, keys=np.ones((3, 2)), values=np.ones((3, 1)))
    with pytest.raises(ValueError, match="v_new"):
        decoder.step([1.0, 0.0], [0.0, 1.0], [1.0, 2.0])  # d_v is 1
    assert len(decoder) == 3 and len(decoder.hsr) == 3


def test_inputs_are_never_modified():
    rng = np.random.default_rng(12)
    Q, K = rng.standard_normal((30, 3)).astype(np.float32), rng.standard_normal((30, 3))
    V = rng.standard_normal((30, 2))
    before = [x.copy() for x in (Q, K, V)]
    for method in ("dense", "hsr"):
        relu_attention(Q, K, V, 2, 0.1, causal=True, method=method, sinks=1, window=2)
        softmax_attention(Q, K, V, causal=True, method=method, b=0.1, sinks=1, window=2)
    Decoder(3, keys=K, values=V).step(Q[0], K[0], V[0])
    for x, y in zip((Q, K, V), before, strict=True):
        np.testing.assert_array_equal(x, y)


# ---------------------------------------------------------------- which kernel ran


def test_auto_takes_the_dense_kernel_where_the_tree_cannot_prune_and_says_so():
    """backend="auto": high d or few rows take the dense kernel (``hsr.plan.prefill``); the
    stats say kernel="dense" (and why, ``stats.plan``) and the rows are the dense rows. An
    explicit backend always asks its structure and says which."""
    rng = np.random.default_rng(21)
    for n, d, m in ((500, 32, 500), (200, 2, 200), (5000, 2, 3)):
        K, V, Q = (rng.standard_normal(shape) for shape in ((n, d), (n, 3), (m, d)))
        for causal in (False, True) if m == n else (False,):
            dense, dense_stats = relu_attention(Q, K, V, 2, 0.3, causal=causal,
                                                return_stats=True)
            fast, stats = relu_attention(Q, K, V, 2, 0.3, causal=causal, method="hsr",
                                         return_stats=True)
            assert (stats.method, stats.kernel) == ("hsr", "dense")
            assert stats.plan.kernel == "dense" and stats.plan.why and not stats.plan.seconds
            assert "kernel=dense" in repr(stats)
            np.testing.assert_array_equal(fast, dense)
            np.testing.assert_array_equal(stats.activated, dense_stats.activated)
            soft, soft_stats = softmax_attention(Q, K, V, causal=causal, b=0.3, method="hsr",
                                                 return_stats=True)
            assert soft_stats.kernel == "dense"
            close(soft, softmax_attention(Q, K, V, causal=causal, b=0.3), V)
            tree, tree_stats = relu_attention(Q, K, V, 2, 0.3, causal=causal, method="hsr",
                                              backend="numpy", return_stats=True)
            assert tree_stats.kernel == "numpy" and tree_stats.total_nodes_visited > 0
            close(tree, dense, V)


def test_auto_races_the_tree_against_the_dense_kernel_on_large_batches():
    """Past the rules the race decides (or, where a race would cost too much, the rule for
    low d); either way the rows are the dense rows, and ``stats.plan`` says which decided."""
    Q, K, V, b = paper_prefill(22)
    for causal in (False, True):
        fast, stats = relu_attention(Q, K, V, 1, b, causal=causal, method="hsr",
                                     return_stats=True)
        assert stats.kernel in ("dense", TREE.name)
        assert stats.plan.kernel == ("dense" if stats.kernel == "dense" else "tree")
        close(fast, relu_attention(Q, K, V, 1, b, causal=causal), V)


def test_decoder_auto_takes_the_dense_kernel_on_a_small_cache():
    from hsr_lab.hsr import plan

    rng = np.random.default_rng(23)
    K, V = rng.standard_normal((300, 3)), rng.standard_normal((300, 2))
    auto = Decoder(3, b=0.2, keys=K, values=V)
    tree = Decoder(3, b=0.2, keys=K, values=V, backend="numpy")
    assert len(auto) < plan.DECODE_MIN_KEYS
    for q in rng.standard_normal((5, 3)):
        (row, stats), (expected, _) = auto.attend(q), auto.attend_dense(q)
        assert (stats.method, stats.kernel) == ("hsr", "dense")
        assert "DECODE_MIN_KEYS" in stats.plan.why
        np.testing.assert_array_equal(row, expected)
        row, stats = tree.attend(q)
        assert stats.kernel == "numpy" and stats.total_nodes_visited > 0
        close(row, expected, V)
