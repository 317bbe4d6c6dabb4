"""Every registered figure: it draws in quick mode, the same bytes twice, and has a README entry."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from hsr_lab import cli, config
from hsr_lab.figures import REGISTRY, save_figure

README = Path(__file__).resolve().parents[1] / "figures" / "README.md"
NAMES = sorted(REGISTRY)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    """One cache folder for the module: each quick sweep runs once, not once per test."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _isolated(shared_cache, monkeypatch):
    """Sweeps write to a temporary cache, never to the repository's; figures are closed."""
    monkeypatch.setenv(config.CACHE_DIR_ENV, str(shared_cache))
    monkeypatch.delenv(config.QUICK_ENV, raising=False)
    yield
    plt.close("all")


@pytest.mark.parametrize("name", NAMES)
def test_figure_renders_in_quick_mode(name):
    fig = REGISTRY[name].func(quick=True, seed=0)
    assert isinstance(fig, Figure)
    assert any(ax.has_data() for ax in fig.axes), f"{name}: no axes holds any data"
    fig.canvas.draw()  # layout and text rendering errors show up only when drawn


@pytest.mark.parametrize("name", NAMES)
def test_drawing_and_saving_twice_gives_identical_bytes(name, tmp_path):
    paths = []
    for folder in ("first", "second"):
        fig = REGISTRY[name].func(quick=True, seed=0)
        paths.append(save_figure(fig, tmp_path / folder, name))
        plt.close(fig)
    for a, b in zip(*paths, strict=True):
        assert a.name == b.name
        assert a.read_bytes() == b.read_bytes(), f"{a.name} differs between two draws"


def test_readme_has_a_section_for_every_listed_figure(capsys):
    assert cli.main(["figures", "--list"]) == 0
    listed = [line.split(": ", 1)[0] for line in capsys.readouterr().out.splitlines()]
    assert listed, "figures --list printed nothing"
    headings = set(re.findall(r"^## +(\S+)\s*$", README.read_text(encoding="utf-8"), re.M))
    missing = [name for name in listed if name not in headings]
    assert not missing, f"figures/README.md has no '## <name>' section for: {missing}"


def test_cli_renders_one_figure_and_writes_both_files(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["figures", "--only", "hsr_plane", "--quick", "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        str(out / "hsr_plane.pdf"),
        str(out / "hsr_plane.png"),
    ]
    assert (out / "hsr_plane.pdf").read_bytes().startswith(b"%PDF")
    assert (out / "hsr_plane.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("angle", [0.6, 2.0, 4.0])
def test_plane_query_counts_the_inner_products_of_the_tree_walk(angle):
    from hsr_lab.experiments import plane_query
    from hsr_lab.experiments.plane import _structures

    pq = plane_query(n=200, angle=angle, t=0.5)
    tree = _structures(200, 8, 0)[1]
    _, stats = tree.query(pq.a, pq.t)
    assert pq.inner_products == stats.inner_products
    fig = REGISTRY["hsr_plane"].func(angle=angle, t=0.5)
    assert f"= {stats.inner_products} inner products" in fig.axes[0].get_title()


@pytest.mark.parametrize("t", [-0.4, 0.3, 1.7])
def test_the_plane_query_reports_what_hsr_query_reports_at_the_same_t(t):
    """The panel's offset is HSR.query's t: the same points, the same closed half-plane."""
    from hsr_lab import HSR
    from hsr_lab.experiments import plane_query

    pq = plane_query(n=50, angle=1.0, t=t)
    assert pq.t == t
    np.testing.assert_array_equal(pq.reported, HSR(pq.points, backend="brute").query(pq.a, t))
    assert 0 < len(pq.reported) < 50
