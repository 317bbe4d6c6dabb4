"""The compiled kernels' disk cache follows their sources: an edit of any module they inline
gives fresh machine code (``hsr_lab.hsr._kernel_cache``), checked end to end in fresh
interpreters on a copy of the package in tmp_path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hsr_lab
from hsr_lab.hsr import _kernel_cache, compiled

pytest.importorskip("numba")

PROBE = """
import numpy as np
from hsr_lab.hsr import compiled
compiled.CompiledKDTree(np.random.default_rng(0).standard_normal((64, 5)), np.arange(64), 4)
args = (5, 2.0**92, 1.0, 0.0)  # float32_safe(5, 2^92, 1): True iff 5 * 2^92 <= MAX_PRODUCT32
print(compiled._rules(*args)[5], compiled._rules.py_func(*args)[5],
      compiled._rules.stats.cache_hits and 'hit' or 'miss', compiled.__file__)
"""


def copy_package(tmp_path: Path) -> Path:
    """hsr_lab copied into tmp_path/src, without any cached bytecode or machine code."""
    src = tmp_path / "src"
    shutil.copytree(Path(hsr_lab.__file__).parent, src / "hsr_lab",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return src


def probe(src: Path, cache: Path) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(src), "NUMBA_CACHE_DIR": str(cache)}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                          text=True, timeout=600, cwd=src)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_an_edited_constant_in_numerics_is_recompiled_not_read_from_the_cache(tmp_path):
    """MAX_PRODUCT32 from 2^100 to 2^90 changes float32_safe(5, 2^92, 1) from True to False;
    the sample check of ``_fresh`` does not probe it, so only the cache key can see it."""
    src, cache = copy_package(tmp_path), tmp_path / "cache"
    first = probe(src, cache)
    assert first[:3] == ["True", "True", "miss"] and first[3].startswith(str(src))
    assert probe(src, cache)[:3] == ["True", "True", "hit"]  # the cache is used
    numerics = src / "hsr_lab" / "hsr" / "numerics.py"
    text = numerics.read_text()
    assert text.count("MAX_PRODUCT32 = 2.0**100") == 1
    numerics.write_text(text.replace("MAX_PRODUCT32 = 2.0**100", "MAX_PRODUCT32 = 2.0**90"))
    assert probe(src, cache)[:3] == ["False", "False", "miss"]


def test_the_key_covers_every_module_the_kernels_import_even_a_new_one(tmp_path):
    src = copy_package(tmp_path)
    hsr = src / "hsr_lab" / "hsr"
    kernels = hsr / "compiled.py"
    names = {p.name for p in _kernel_cache.inlined_sources(kernels)}
    assert {"compiled.py", "numerics.py"} <= names
    assert "structure.py" not in names and "plan.py" not in names  # they import compiled
    before = _kernel_cache.sources_digest(kernels)
    (hsr / "extra_rule.py").write_text("SCALE = 2.0\n")
    numerics = hsr / "numerics.py"
    numerics.write_text(numerics.read_text() + "\nfrom .extra_rule import SCALE  # noqa\n")
    assert "extra_rule.py" in {p.name for p in _kernel_cache.inlined_sources(kernels)}
    middle = _kernel_cache.sources_digest(kernels)
    (hsr / "extra_rule.py").write_text("SCALE = 4.0\n")
    assert len({before, middle, _kernel_cache.sources_digest(kernels)}) == 3


def test_the_kernels_of_this_checkout_are_cached_under_their_sources_digest():
    folder = _kernel_cache.cache_dir(str(Path(compiled.__file__).resolve()))
    if folder is None:
        pytest.skip("the cache folder is not writable here: kernels are compiled uncached")
    assert Path(folder).name == f"numba-{_kernel_cache.sources_digest(compiled.__file__)[:20]}"
    assert compiled._walk._cache.cache_path.startswith(folder)


def test_repr_names_the_compiled_tree():
    tree = compiled.CompiledKDTree(np.zeros((10, 2)), np.arange(10), 4)
    assert repr(tree).startswith("CompiledKDTree(n=10, d=2, leaf_size=4")
