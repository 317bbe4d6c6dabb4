"""Every notebook: stored clean, written as a lesson, and runs top to bottom in quick mode."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from _course import refs_in
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks_numbered_in_reading_order():
    names = [p.name for p in NOTEBOOKS]
    assert len(names) >= 5, names
    numbers = [int(re.match(r"(\d\d)_[a-z0-9_]+\.ipynb$", name).group(1)) for name in names]
    assert numbers == list(range(len(names)))  # 00, the paper and the course map, comes first


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs_and_reads_as_a_lesson(path):
    cells = json.loads(path.read_text())["cells"]
    for cell in cells:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"{path.name} holds outputs: strip them"
            assert cell.get("execution_count") is None, f"{path.name} holds execution counts"
            source = "".join(cell["source"])
            # Library code belongs in hsr_lab, not in a notebook.
            assert not re.search(r"^\s*(def|class) ", source, re.M), source
            assert "sys.path" not in source
    first, last = "".join(cells[0]["source"]), "".join(cells[-1]["source"]).lower()
    assert cells[0]["cell_type"] == "markdown" and first.startswith("# ")
    assert "what you will see" in first.lower()
    assert cells[-1]["cell_type"] == "markdown" and "exercise" in last
    assert any("summary" in "".join(c["source"]).lower() for c in cells[-2:])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom_in_quick_mode(path, tmp_path, monkeypatch):
    monkeypatch.setenv("HSR_LAB_QUICK", "1")
    monkeypatch.setenv("HSR_LAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    errors = [out for cell in nb.cells if cell.cell_type == "code"
              for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    assert not errors
    streams = [out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
               for out in cell.get("outputs", []) if out.get("name") == "stderr"]
    assert not any("Traceback" in text for text in streams)
    # Every cell the claims table of notebook 00 points to in this notebook ran, without error.
    ran = {cell.get("id"): cell for cell in nb.cells if cell.cell_type == "code"}
    for cell_id in refs_in(path):
        assert cell_id in ran, f"{path.name}: the claims table cites cell {cell_id!r}, not found"
        assert ran[cell_id].get("execution_count") is not None, f"{path.name}:{cell_id} not run"
    # Every cell that draws a registered figure shows it (once), as the inline backend does.
    for cell in nb.cells:
        if cell.cell_type == "code" and "REGISTRY[" in cell.source:
            images = [out for out in cell.get("outputs", [])
                      if "image/png" in out.get("data", {})]
            assert len(images) == 1, f"{len(images)} images from: {cell.source}"
