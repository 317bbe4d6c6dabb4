"""hsr_lab.data.relu_lm and pystdlib: the NumPy byte LMs against train/model.py (torch), the
weights files' contract, and the corpus recipe.

The oracle is the training code's own forward pass (``train/model.py``), run on CPU with the
torch of the ``validate`` extra; those tests skip without torch.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hsr_lab import optional
from hsr_lab.data import pystdlib, relu_lm

ROOT = Path(__file__).resolve().parents[1]
needs_torch = pytest.mark.skipif(not optional.available("torch"),
                                 reason="the oracle needs torch: pip install 'hsr_lab[validate]'")


def rel_err(mine: np.ndarray, theirs: np.ndarray) -> float:
    """||mine - theirs|| / ||theirs|| (Frobenius)."""
    return float(np.linalg.norm(np.asarray(mine, np.float64) - theirs) / np.linalg.norm(theirs))


@pytest.fixture(scope="module")
def model_py():
    """train/model.py, imported from its path (it is not part of the package)."""
    pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location("relu_lm_train_model", ROOT / "train/model.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module


def torch_trace(model_py, path: Path, ids: np.ndarray, dtype) -> dict[str, np.ndarray]:
    """train/model.py's forward pass on the weights of ``path``: hidden states, Q, K, V, logits."""
    import torch

    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k not in ("config", "meta")}
        cfg = model_py.Config(**json.loads(str(z["config"])))
    model = model_py.load_exported(arrays, cfg, dtype)
    x = torch.as_tensor(ids)[None]
    with torch.no_grad():
        out = {k: torch.stack(v)[:, 0].double().numpy() for k, v in model.trace(x).items()}
        out["logits"] = model(x)[0].double().numpy()
    return out


def heldout_ids(n: int) -> np.ndarray:
    return pystdlib.heldout_windows(n, 1, seed=3)[0].astype(np.int64)


# ------------------------------------------------------------------- the oracle
@needs_torch
@pytest.mark.parametrize("seed", relu_lm.SEEDS)
@pytest.mark.parametrize("variant", relu_lm.VARIANTS)
def test_numpy_forward_matches_the_training_code(model_py, variant, seed):
    ids = heldout_ids(192)
    mine = relu_lm.run(relu_lm.load(variant, seed), ids)
    import torch

    for dtype, tol in ((torch.float32, 1e-4), (torch.float64, 1e-11)):
        theirs = torch_trace(model_py, relu_lm.weights_path(variant, seed), ids, dtype)
        for name in ("hidden", "Q", "K", "V", "logits"):
            err = rel_err(getattr(mine, name), theirs[name])
            assert err <= tol, f"{variant} {name} in {dtype}: relative error {err:.2e}"


@needs_torch
def test_rows_with_no_active_key_are_zero_rows_in_both(model_py, tmp_path):
    """b above every score: each ReLU row is empty, so attention adds nothing (no NaN)."""
    lm = relu_lm.load("relu2_learned")
    with np.load(relu_lm.weights_path("relu2_learned")) as z:
        arrays = {k: z[k] for k in z.files}
    for i in range(lm.config["n_layers"]):
        arrays[f"layers.{i}.b"] = np.full(lm.config["n_heads"], 1e4, np.float32)
    path = tmp_path / "empty.npz"
    np.savez(path, **arrays)
    ids = heldout_ids(64)
    mine = relu_lm.run(relu_lm.load(path), ids)
    Q, K, V = mine.Q[0], mine.K[0], mine.V[0]
    assert np.all(relu_lm.attention(Q, K, V, relu_lm.load(path), 0) == 0.0)
    theirs = torch_trace(model_py, path, ids, __import__("torch").float64)
    assert np.isfinite(mine.logits).all()
    assert rel_err(mine.logits, theirs["logits"]) < 1e-11
    # with no attention the stream only passes the MLPs: layer 0's input gets the MLP alone
    w, eps = lm.weights, lm.config["rms_eps"]
    h = relu_lm.rms_norm(mine.hidden[0], w["layers.0.mlp_norm"], eps)
    gate = h @ w["layers.0.w_gate"].T
    mlp = (gate / (1 + np.exp(-gate)) * (h @ w["layers.0.w_up"].T)) @ w["layers.0.w_down"].T
    np.testing.assert_allclose(mine.hidden[1], mine.hidden[0] + mlp, rtol=1e-12, atol=1e-12)


@needs_torch
def test_a_fresh_training_run_is_read_back_exactly(model_py, tmp_path):
    """train/train.py, 3 steps of the CPU configuration with the paper's ramped b (the rule
    with the most state), on a slice of the corpus: its file loads and agrees with torch."""
    corpus = pystdlib.load()
    np.savez(tmp_path / "corpus.npz", train=corpus.train[:100_000],
             heldout=corpus.heldout[:20_000])
    cmd = [sys.executable, str(ROOT / "train/train.py"), "--variant", "relu2_paper", "--small",
           "--steps", "3", "--batch", "2", "--eval-every", "3", "--eval-windows", "2",
           "--warmup", "1", "--corpus", str(tmp_path / "corpus.npz"), "--out", str(tmp_path)]
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT, timeout=300)
    lm = relu_lm.load(tmp_path / "relu2_paper.npz")
    assert lm.meta["steps_done"] == 3 and len(lm.log) == 1 and lm.config["context"] == 256
    assert np.all(lm.b > 0)  # b = ramp sqrt(0.4 ln n) sigma_h, the ramp past 0 after step 1
    ids = heldout_ids(lm.config["context"])
    theirs = torch_trace(model_py, tmp_path / "relu2_paper.npz", ids, __import__("torch").float64)
    assert rel_err(relu_lm.run(lm, ids).logits, theirs["logits"]) < 1e-11


# ------------------------------------------------------------------- the shipped files
@pytest.mark.parametrize("seed", relu_lm.SEEDS)
@pytest.mark.parametrize("variant", relu_lm.VARIANTS)
def test_shipped_weights_are_float16_and_small(variant, seed):
    path = relu_lm.weights_path(variant, seed)
    assert path.stat().st_size <= 8 * 10**6
    with np.load(path, allow_pickle=False) as z:
        dtypes = {z[k].dtype.name for k in z.files if k not in ("config", "meta")
                  and not k.endswith(".b")}
    assert dtypes == {"float16"}
    lm = relu_lm.load(variant, seed)
    assert lm.seed == seed and lm.name == variant
    assert lm.meta["steps_done"] == 2500 and lm.log[-1]["step"] == 2500
    assert [r["step"] for r in lm.log] == list(range(250, 2501, 250))
    assert lm.meta["corpus_sha256"]["train"] == pystdlib.RECORDED["train"][2]
    assert (lm.b is None) == (variant == "softmax")


def _flag(argv: list[str], name: str, default: str | None = None) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else default


def _without(argv: list[str], names: set[str]) -> list[str]:
    """argv less the flags ``names`` and their values."""
    return [a for i, a in enumerate(argv) if a not in names and (i == 0 or argv[i - 1]
                                                                  not in names)]


@pytest.mark.parametrize("seed", relu_lm.SEEDS)
def test_every_variant_saw_the_same_run(seed):
    metas = [relu_lm.load(v, seed).meta for v in relu_lm.VARIANTS]
    argvs = [_without(m["argv"], {"--variant"}) for m in metas]
    assert all(a == argvs[0] for a in argvs)
    configs = [{k: v for k, v in relu_lm.load(v, seed).config.items()
                if k not in ("attention", "alpha", "threshold")} for v in relu_lm.VARIANTS]
    assert all(c == configs[0] for c in configs)


@pytest.mark.parametrize("variant", relu_lm.VARIANTS)
def test_the_seeds_differ_in_seed_alone_and_share_the_validation_windows(variant):
    """Every training seed ran the same command but for --seed (and --eval-seed, which keeps
    the held-out windows of seed 0's run: its default is seed + 1); the weights differ."""
    metas = [relu_lm.load(variant, r).meta for r in relu_lm.SEEDS]
    rest = [_without(m["argv"], {"--seed", "--eval-seed", "--out", "--corpus"}) for m in metas]
    assert all(a == rest[0] for a in rest)
    seeds = [int(_flag(m["argv"], "--seed", "0")) for m in metas]
    assert seeds == list(relu_lm.SEEDS)
    assert all(int(_flag(m["argv"], "--eval-seed", str(r + 1))) == 1
               for m, r in zip(metas, seeds, strict=True))
    assert all(m["corpus_sha256"] == metas[0]["corpus_sha256"] for m in metas)
    w0, w1 = (relu_lm.load(variant, r).weights["layers.0.wq"] for r in relu_lm.SEEDS[:2])
    assert not np.array_equal(w0, w1)


def test_package_data_ships_every_weights_and_log_file():
    """pyproject's package-data globs cover every file in relu_lms/ (both seeds)."""
    import fnmatch
    import tomllib

    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["hsr_lab"]
    files = sorted(p.relative_to(ROOT / "hsr_lab").as_posix()
                   for p in relu_lm.WEIGHTS_DIR.iterdir())
    assert len(files) == 2 * len(relu_lm.VARIANTS) * len(relu_lm.SEEDS)
    for f in files:
        assert any(fnmatch.fnmatch(f, g) for g in globs), f


def _broken(tmp_path: Path, change) -> Path:
    with np.load(relu_lm.weights_path("relu2_learned")) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("change, message", [
    (lambda a: a.update({"layers.1.wq": a["layers.1.wq"].astype(np.float32)}),
     r"layers\.1\.wq must be float16 of shape \(256, 256\); got float32"),
    (lambda a: a.update({"layers.0.w_up": a["layers.0.w_up"][:-1]}),
     r"layers\.0\.w_up must be float16 of shape \(704, 256\); got float16 of shape \(703, 256\)"),
    (lambda a: a.pop("layers.3.b"), r"missing arrays \['layers\.3\.b'\]"),
    (lambda a: a.pop("config"), r"holds no 'config' entry"),
    (lambda a: a.update({"embed": np.full_like(a["embed"], np.inf)}), "non-finite"),
])
def test_bad_weights_name_the_file(tmp_path, change, message):
    path = _broken(tmp_path, change)
    with pytest.raises(ValueError, match=message) as err:
        relu_lm.load(path)
    assert str(path) in str(err.value)


def test_a_truncated_file_names_the_file(tmp_path):
    data = relu_lm.weights_path("softmax").read_bytes()
    path = tmp_path / "cut.npz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable weights file") as err:
        relu_lm.load(path)
    assert str(path) in str(err.value)


def test_bad_ids_and_variants_are_refused():
    lm = relu_lm.load("softmax")
    with pytest.raises(ValueError, match="bytes"):
        relu_lm.run(lm, [0, 256])
    with pytest.raises(ValueError, match="at most 2048"):
        relu_lm.run(lm, np.zeros(2049, np.int64))
    with pytest.raises(ValueError, match="1-D array of ints"):
        relu_lm.run(lm, np.zeros(3))
    with pytest.raises(ValueError, match="variant must be one of"):
        relu_lm.load("relu3")
    with pytest.raises(ValueError, match=r"seed must be one of \(0, 1\); got 2"):
        relu_lm.load("softmax", 2)
    with pytest.raises(ValueError, match="seed must be one of"):
        relu_lm.weights_path("softmax", True)
    with pytest.raises(ValueError, match="give a Path alone"):
        relu_lm.load(relu_lm.weights_path("softmax"), seed=1)


# ------------------------------------------------------------------- the corpus
def test_the_split_is_by_file_and_deterministic():
    corpus = pystdlib.load()
    assert not set(corpus.train_files) & set(corpus.heldout_files)
    assert all(pystdlib.is_heldout(f) for f in corpus.heldout_files)
    assert not any(pystdlib.is_heldout(f) for f in corpus.train_files)
    assert np.count_nonzero(corpus.train == pystdlib.SEPARATOR) == len(corpus.train_files)
    assert np.count_nonzero(corpus.heldout == pystdlib.SEPARATOR) == len(corpus.heldout_files)
    assert not any("/test/" in f or f.startswith(("test/", "site-packages/"))
                   for f in corpus.train_files + corpus.heldout_files)
    pystdlib.load.cache_clear()
    assert pystdlib.load().sha256("train") == corpus.sha256("train")


@pytest.mark.skipif(sys.version_info[:3] != pystdlib.TRAINED_ON,
                    reason="the recorded corpus is Python 3.11.7's standard library")
def test_the_recorded_corpus_is_this_pythons():
    corpus = pystdlib.load()
    for split, (files, size, digest) in pystdlib.RECORDED.items():
        assert len(getattr(corpus, f"{split}_files")) == files
        assert getattr(corpus, split).size == size
        assert corpus.sha256(split) == digest
    assert pystdlib.matches_training()


def test_heldout_windows_are_disjoint_slices():
    w = pystdlib.heldout_windows(1000, 5, seed=1)
    assert w.shape == (5, 1000) and w.dtype == np.uint8
    stream = pystdlib.load().heldout.tobytes()
    starts = sorted(stream.find(row.tobytes()) for row in w)
    assert all(b - a >= 1000 for a, b in itertools.pairwise(starts))
    with pytest.raises(ValueError, match="do not fit"):
        pystdlib.heldout_windows(2048, 10**6)
