"""pyproject.toml (pip) and environment.yml (conda) ask for the same set of packages."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _split(requirement: str) -> tuple[str, str]:
    """'numpy>=1.26' -> ('numpy', '>=1.26'), names normalised the PEP 503 way."""
    match = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(1)).lower(), match.group(2).replace(" ", "")


def test_environment_yml_installs_what_pyproject_declares():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_side = dict(map(_split, project["dependencies"]))
    for extra in project["optional-dependencies"].values():
        pip_side.update(map(_split, extra))
    pip_side.pop("hsr-lab", None)  # self-references such as hsr_lab[real]

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda_side, pip_section = {}, []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip_section += dep["pip"]
        else:
            conda_side.update([_split(dep)])
    assert "conda-forge" in env["channels"]
    python = conda_side.pop("python")
    conda_side.pop("pip")
    for requirement in pip_section:
        if requirement.startswith("-e"):
            continue
        conda_side.update([_split(requirement)])
    assert python == ">=" + project["requires-python"].removeprefix(">=")
    assert "-e ." in pip_section
    assert conda_side == pip_side
