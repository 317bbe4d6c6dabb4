"""Read the course's claims table and notation table out of notebook 00 (shared by the tests)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
COURSE = NOTEBOOKS / "00_paper_and_lab.ipynb"
CELL_REF = re.compile(r"`(\d\d):([A-Za-z0-9_-]+)`")  # `03:whp-check`: notebook 03, cell id
TEST_REF = re.compile(r"`(test_[a-z0-9_]+\.py)`<br>`::([a-z0-9_]+)`")  # file, then test
QUANTITY = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)`")  # `fit.slope`
# The columns of the claims table, in order.
COLUMNS = ("number", "claim", "quantity", "holds", "pays", "paper", "cell", "test")


def cells(path: Path) -> list[dict]:
    """The cells of a notebook, as stored."""
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def course_cell(cell_id: str) -> str:
    """The source of one cell of notebook 00, by id."""
    found = [source(c) for c in cells(COURSE) if c.get("id") == cell_id]
    assert found, f"notebook 00 has no cell with id {cell_id!r}"
    return found[0]


def claim_rows() -> list[str]:
    """The rows of the claims table (markdown lines starting with '| C<number>', the number
    possibly followed by a letter: C15a)."""
    return [line for line in course_cell("claims-table").splitlines()
            if re.match(r"\|\s*C\d+[a-z]?\s*\|", line)]


def claim_columns(row: str) -> dict[str, str]:
    """One row of the claims table by column name (``COLUMNS``); a pipe inside a cell is
    written \\| (markdown tables), e.g. in \\|q\\|."""
    columns = [c.strip() for c in re.split(r"(?<!\\)\|", row.strip().strip("|"))]
    assert len(columns) == len(COLUMNS), f"{len(columns)} columns, not {len(COLUMNS)}: {row}"
    return dict(zip(COLUMNS, columns, strict=True))


def quantities(row: str) -> list[str]:
    """The Python names (``fit.slope``) that the row's verdict rests on."""
    return QUANTITY.findall(claim_columns(row)["quantity"])


def cell_source(prefix: str, cell_id: str) -> str:
    """The source of the cell ``cell_id`` of the notebook ``prefix``."""
    found = [source(c) for c in cells(notebook_for(prefix)) if c.get("id") == cell_id]
    assert found, f"notebook {prefix} has no cell {cell_id!r}"
    return found[0]


def asserted_names(code: str) -> set[str]:
    """Every name and attribute chain that an ``assert`` statement of ``code`` uses, as written
    (``fit.slope``, ``fit``, ``np.all``...). Comments, strings and prints do not count."""
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Assert):
            names |= {ast.unparse(sub) for sub in ast.walk(node.test)
                      if isinstance(sub, ast.Name | ast.Attribute)}
    return names


def notebook_for(prefix: str) -> Path:
    """The notebook whose file name starts with ``prefix`` (two digits)."""
    matches = sorted(NOTEBOOKS.glob(f"{prefix}_*.ipynb"))
    assert len(matches) == 1, f"expected one notebook {prefix}_*.ipynb; got {matches}"
    return matches[0]


def cell_refs() -> list[tuple[str, str]]:
    """Every (notebook prefix, cell id) the claims table references."""
    return [ref for row in claim_rows() for ref in CELL_REF.findall(row)]


def refs_in(path: Path) -> set[str]:
    """The cell ids of this notebook that the claims table references."""
    prefix = path.name[:2]
    return {cell_id for nb, cell_id in cell_refs() if nb == prefix}


def notation_symbols() -> list[str]:
    """The first column of the notation table, one entry per row (LaTeX source)."""
    rows = [line for line in course_cell("notation").splitlines() if line.startswith("| ")]
    return [row.split("|")[1].strip() for row in rows[1:]]  # skip the header (the rule is "|---")
