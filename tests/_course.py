"""Read the course's claims table and notation table out of notebook 00 (shared by the tests)."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
COURSE = NOTEBOOKS / "00_paper_and_lab.ipynb"
CELL_REF = re.compile(r"`(\d\d):([A-Za-z0-9_-]+)`")  # `03:whp-check`: notebook 03, cell id
TEST_REF = re.compile(r"`(test_[a-z0-9_]+\.py)`<br>`::([a-z0-9_]+)`")  # file, then test


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
    """The rows of the claims table (markdown lines starting with '| C<number>')."""
    return [line for line in course_cell("claims-table").splitlines()
            if re.match(r"\|\s*C\d+\s*\|", line)]


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
