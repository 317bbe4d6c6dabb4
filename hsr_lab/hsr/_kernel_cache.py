"""Where the compiled kernels' machine code is cached: a folder named after their sources.

Numba's ``cache=True`` keys the machine code of a function on the source of the file that
defines it, and nothing else. The kernels of ``compiled.py`` also inline functions and
constants of other modules (``numerics``: the margins, the float32 band), so an edit there
(say ``MAX_PRODUCT32`` from 2^100 to 2^90) would leave machine code on disk that still follows
the old rule. Here the cache folder is named after a SHA-256 of every module of this package
that the kernels' file imports, directly or through those modules (found by reading their
``import`` statements, so a module added later is covered without a list to keep up):
new sources, a new folder, fresh machine code.

The folder is ``hsr_lab/hsr/__pycache__/numba-<hash>`` (in ``$NUMBA_CACHE_DIR`` instead when
that is set); where it cannot be written the kernels are compiled in each process, uncached,
rather than cached where a stale copy could be read.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent  # hsr_lab/hsr
PACKAGE_NAME = "hsr_lab.hsr"


def _imported(path: Path) -> set[Path]:
    """The modules of this package that ``path`` imports (relative or absolute imports)."""
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.level == 1:  # from .x import / from . import x
            names = [node.module] if node.module else [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith(PACKAGE_NAME + "."):
                names = [node.module[len(PACKAGE_NAME) + 1:]]
            elif node.module == PACKAGE_NAME:
                names = [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name[len(PACKAGE_NAME) + 1:] for a in node.names
                     if a.name.startswith(PACKAGE_NAME + ".")]
        for name in names:
            module = path.parent / (name.split(".")[0] + ".py")
            if module.is_file():
                found.add(module.resolve())
    return found


def inlined_sources(kernels_file: str | os.PathLike[str]) -> list[Path]:
    """``kernels_file`` and every module of its package it imports, transitively, sorted."""
    todo, seen = [Path(kernels_file).resolve()], set()
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(_imported(path) - seen)
    return sorted(seen)


def sources_digest(kernels_file: str | os.PathLike[str]) -> str:
    """SHA-256 over the names and bytes of ``inlined_sources(kernels_file)``."""
    digest = hashlib.sha256()
    for path in inlined_sources(kernels_file):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@cache
def cache_dir(kernels_file: str) -> str | None:
    """The writable folder for the kernels of ``kernels_file``, named after their sources'
    digest; None if it cannot be written (then nothing is cached)."""
    import numba

    base = Path(numba.config.CACHE_DIR or Path(kernels_file).parent / "__pycache__")
    folder = base / f"numba-{sources_digest(kernels_file)[:20]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError:
        return None
    return str(folder)


@contextlib.contextmanager
def _numba_cache_dir(folder: str) -> Iterator[None]:
    """Numba's cache folder set to ``folder`` while a function is decorated (Numba reads it
    then, for that function only), and restored after."""
    import numba

    before = numba.config.CACHE_DIR
    numba.config.CACHE_DIR = folder
    try:
        yield
    finally:
        numba.config.CACHE_DIR = before


def cached_njit(fn: Callable[..., Any], **options: Any) -> Any:
    """``numba.njit(cache=True, **options)(fn)``, cached in ``cache_dir`` of fn's file."""
    import numba

    folder = cache_dir(str(Path(fn.__code__.co_filename).resolve()))
    if folder is None:
        return numba.njit(cache=False, **options)(fn)
    with _numba_cache_dir(folder):
        return numba.njit(cache=True, **options)(fn)
