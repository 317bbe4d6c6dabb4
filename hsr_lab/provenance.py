"""Where a result comes from: the commit, the package versions, the BLAS, the machine.

Every figure (``python -m hsr_lab figures``: PDF and PNG metadata and ``provenance.json``) and
every benchmark table (``benchmarks/_common.py``) records ``environment()`` beside its seed and
the command that made it. Nothing here is a timestamp, so two runs of the same commit on the
same machine record the same provenance and figures stay byte-identical.

The commit is ``git rev-parse HEAD`` of the checkout that holds the package, with ``-dirty``
appended when a file differs from it (tracked or not, outside the folders passed as
``exclude``: the folder being written, whose files a run itself changes). Outside a git
checkout (an installed package, a tarball, no git) it is ``hsr_lab <version>`` and nothing
fails.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from collections.abc import Iterable
from pathlib import Path

import hsr_lab

ROOT = Path(hsr_lab.__file__).resolve().parents[1]  # the checkout, when there is one
PACKAGES = ("numpy", "scipy", "numba", "matplotlib", "threadpoolctl")
_GIT_TIMEOUT_S = 10


def git_commit(exclude: Iterable[str | os.PathLike[str]] = (), root: Path = ROOT) -> str:
    """The commit hsr_lab runs from, ``-dirty`` if files differ from it outside ``exclude``;
    ``hsr_lab <version>`` where ``root`` is not the top of a git checkout (see the module)."""
    fallback = f"hsr_lab {hsr_lab.__version__} (not a git checkout)"
    top = _git(["rev-parse", "--show-toplevel"], root)
    if top is None or Path(top).resolve() != root.resolve():  # another project's repository
        return fallback
    head = _git(["rev-parse", "HEAD"], root)
    if head is None:  # a repository without a commit yet
        return fallback
    skip = [f":(exclude){p.relative_to(root)}" for p in _inside(exclude, root)]
    status = _git(["status", "--porcelain", "--", ".", *skip], root)
    return f"{head}-dirty" if status else head


def _inside(paths: Iterable[str | os.PathLike[str]], root: Path) -> list[Path]:
    """The paths that lie inside ``root`` (resolved); git refuses pathspecs outside it."""
    found = []
    for path in paths:
        resolved = Path(path).resolve()
        if resolved != root.resolve() and resolved.is_relative_to(root.resolve()):
            found.append(resolved)
    return found


def _git(args: list[str], cwd: Path) -> str | None:
    """``git args`` run in ``cwd``: its stripped output, or None if git is missing or fails."""
    try:
        run = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                             timeout=_GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return run.stdout.strip() if run.returncode == 0 else None


def versions() -> dict[str, str]:
    """Python's, hsr_lab's and the numerical packages' versions ('not installed' for a missing
    optional one), read from the installed metadata without importing them."""
    found = {"python": platform.python_version(), "hsr_lab": hsr_lab.__version__}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def blas() -> list[str]:
    """Each BLAS that NumPy and SciPy load, as threadpoolctl reports it: 'numpy: openblas
    0.3.27 (Haswell, pthreads)'. Both packages are loaded first, so that the list does not
    depend on what ran before."""
    import numpy  # noqa: F401
    import scipy.linalg  # noqa: F401
    from threadpoolctl import threadpool_info

    found = []
    for lib in threadpool_info():
        if lib.get("user_api") != "blas":
            continue
        details = ", ".join(str(lib[k]) for k in ("architecture", "threading_layer") if lib.get(k))
        found.append(f"{_owner(lib.get('filepath', ''))}: {lib.get('internal_api')} "
                     f"{lib.get('version')}" + (f" ({details})" if details else ""))
    return sorted(found)


def _owner(filepath: str) -> str:
    """The package that ships a shared library ('numpy' for .../numpy.libs/libx.so), else its
    file name."""
    path = Path(filepath)
    for part in reversed(path.parts[:-1]):
        if part.endswith(".libs"):
            return part.removesuffix(".libs")
    return path.name


def cpu_model() -> str:
    """The processor's model name (Linux: /proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def environment(exclude: Iterable[str | os.PathLike[str]] = ()) -> dict[str, object]:
    """commit, versions, blas and platform in one dict (JSON-ready, no timestamps)."""
    return {"commit": git_commit(exclude), "versions": versions(), "blas": blas(),
            "platform": f"{platform.system()} {platform.machine()}"}
