"""The peers (faiss, ball reduction, Quest pages) against the brute-force scan, ties included."""

from __future__ import annotations

import numpy as np
import pytest

from hsr_lab import HSR
from hsr_lab.peers import BallReduction, FaissFlat, QuestPages


def _faiss(keys):
    pytest.importorskip("faiss", reason="faiss-cpu (the `peers` extra) is not installed")
    return FaissFlat(keys)


def _ball(kind):
    def build(keys):
        if kind.startswith("sklearn"):
            pytest.importorskip("sklearn", reason="scikit-learn (the `peers` extra) is not "
                                "installed")
        return BallReduction(keys, kind=kind)
    return build


PEERS = {
    "faiss-flat": _faiss,
    "sklearn-ball": _ball("sklearn-ball"),
    "sklearn-kd": _ball("sklearn-kd"),
    "scipy-ckd": _ball("scipy-ckd"),
    "quest": QuestPages,
    "quest-5": lambda keys: QuestPages(keys, page_size=5),
}


def gaussian(rng, n, d):
    return rng.standard_normal((n, d))


def clustered(rng, n, d):
    centers = 4.0 * rng.standard_normal((7, d))
    return centers[rng.integers(0, 7, n)] + 0.1 * rng.standard_normal((n, d))


def integers(rng, n, d):
    return rng.integers(-3, 4, (n, d)).astype(np.float64)


def duplicates(rng, n, d):
    return np.repeat(rng.standard_normal((max(1, n // 8), d)), 8, axis=0)[:n]


DATA = {"gaussian": gaussian, "clustered": clustered, "integers": integers,
        "duplicates": duplicates}


def thresholds(keys, a, rng):
    """Thresholds at existing scores (ties) where scores are exact, else between two scores.

    Integer keys and queries give exact scores, so ``t`` equal to a score is a true tie. With
    float data two correct float64 evaluations of ``<a, k>`` (a gemv over all of K, a product
    over a gathered subset) may differ in the last bit, so ``t`` is put between scores instead.
    """
    scores = np.unique(keys @ a)
    if np.all(keys == np.round(keys)) and np.all(a == np.round(a)):
        picks = [*rng.choice(scores, 4), scores.max(), scores.min()]
    else:
        mids = np.concatenate([[scores[0] - 1.0], (scores[1:] + scores[:-1]) / 2])
        picks = [*rng.choice(mids, 4), mids.max(), mids.min()]
    return [*map(float, picks), float(np.median(scores)) + 0.25, scores.max() + 1.0,
            scores.min() - 1.0, 0.0]


@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("data", DATA)
@pytest.mark.parametrize("n, d", [(1, 1), (1, 5), (37, 2), (300, 3), (500, 8), (257, 33)])
def test_peer_matches_brute_force(peer, data, n, d):
    rng = np.random.default_rng(n * 1000 + d)
    keys = DATA[data](rng, n, d)
    index, oracle = PEERS[peer](keys), HSR(keys, backend="brute")
    queries = [rng.integers(-2, 3, d).astype(np.float64) for _ in range(3)]
    queries += [rng.standard_normal(d) for _ in range(3)] + [np.zeros(d)]
    for a in queries:
        for t in thresholds(keys, a, rng):
            got = index.query(a, t)
            assert got.dtype == np.int64
            np.testing.assert_array_equal(got, oracle.query(a, t), err_msg=f"{peer} t={t}")


@pytest.mark.parametrize("peer", PEERS)
def test_ties_exactly_at_t_are_reported(peer):
    keys = np.array([[1.0, 2.0], [2.0, 1.0], [3.0, 0.0], [0.0, 0.0], [1.0, 2.0]])
    index = PEERS[peer](keys)
    np.testing.assert_array_equal(index.query([1.0, 1.0], 3.0), [0, 1, 2, 4])
    np.testing.assert_array_equal(index.query([0.0, 0.0], 0.0), [0, 1, 2, 3, 4])
    assert len(index.query([0.0, 0.0], 1e-300)) == 0


def test_large_scale_keys_keep_ties():
    """Key norms far from 1: the margins scale with M and ||a||."""
    rng = np.random.default_rng(3)
    keys = 1e6 * rng.integers(-5, 6, (400, 6)).astype(np.float64)
    oracle = HSR(keys, backend="brute")
    for build in PEERS.values():
        index = build(keys)
        for _ in range(5):
            a = 1e-3 * rng.integers(-3, 4, 6).astype(np.float64)
            t = float(rng.choice(keys @ a))
            np.testing.assert_array_equal(index.query(a, t), oracle.query(a, t))


def test_bad_input_is_explained():
    with pytest.raises(ValueError, match="kind must be one of"):
        BallReduction(np.ones((3, 2)), kind="annoy")
    with pytest.raises(ValueError, match="2-D"):
        QuestPages(np.ones(3))
    with pytest.raises(ValueError):
        QuestPages(np.ones((3, 2))).query(np.ones(3), 0.0)
    assert "page_size=16" in repr(QuestPages(np.ones((3, 2))))


@pytest.mark.parametrize("module, build", [
    ("faiss", lambda keys: FaissFlat(keys)),
    ("sklearn", lambda keys: BallReduction(keys, kind="sklearn-ball")),
])
def test_missing_optional_package_names_the_extra(monkeypatch, module, build):
    import sys

    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    monkeypatch.setitem(sys.modules, f"{module}.neighbors", None)
    with pytest.raises(ImportError, match=r"hsr_lab\[peers\]"):
        build(np.ones((3, 2)))


@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize(("key_exp", "a_exp"), [(-560, 0), (-1000, 990), (0, -1000), (450, -460),
                                                (-60, -60), (60, 0), (55, -160), (-150, 0)])
def test_margins_hold_at_every_scale(peer, key_exp, a_exp):
    """Margins built from squared norms would vanish below about 1e-162. Keys scaled by
    2^key_exp, queries by 2^a_exp and t by both: exact dyadic scores, the same answers."""
    if peer == "faiss-flat" and max(key_exp, a_exp) > 55:
        pytest.skip("FaissFlat works in float32: magnitudes up to 1e18")
    rng = np.random.default_rng(11)
    base = rng.integers(-4, 5, (60, 3)).astype(np.float64)
    keys = np.ldexp(base, key_exp)
    index, oracle = PEERS[peer](keys), HSR(base, backend="brute")
    for _ in range(6):
        a = rng.integers(-3, 4, 3).astype(np.float64)
        t0 = float(rng.choice(base @ a)) if rng.random() < 0.7 else float(rng.integers(-5, 6))
        got = index.query(np.ldexp(a, a_exp), float(np.ldexp(t0, key_exp + a_exp)))
        np.testing.assert_array_equal(got, oracle.query(a, t0), err_msg=f"{peer} t0={t0}")
