"""On-disk cache of sweep results, so that notebooks and figures rerun in seconds.

A sweep is a function ``compute() -> dict[str, np.ndarray]``. Its result is stored in
``<cache_dir>/<name>-<key>.npz``, where

    key = sha256(JSON of {"name": name, "params": params, "version": hsr_lab.__version__,
                          "code": code_fingerprint()})

with sorted keys, so changing a parameter, upgrading hsr_lab or editing the code that computes
results (every module but the drawing ones, see ``code_fingerprint``) computes afresh. Files
are plain ``.npz`` (read with ``allow_pickle=False``) and are written atomically; a file that
cannot be read back, or whose stored parameters differ, is recomputed with a warning, never an
error.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import secrets
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

import hsr_lab
from hsr_lab import config

PARAMS_KEY = "__params__"  # 0-d str array: the JSON that was hashed, checked on load
KEYS_KEY = "__keys__"  # 1-d str array: the result's keys in order, so a partial file is caught
# A name that is a file name on every system, without folder: letters, digits, '_', '.', '-'
# (not first). Cache entries, saved figures and registered figures all use it.
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

Arrays = dict[str, np.ndarray]


def cached(
    name: str,
    params: Mapping[str, Any],
    compute: Callable[[], Mapping[str, Any]],
    *,
    force: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Arrays:
    """Return ``compute()``, read from the cache if this sweep already ran with these params.

    ``force=True`` recomputes and overwrites. The cache folder is ``cache_dir``, else
    ``$HSR_LAB_CACHE_DIR``, else ``./.hsr_lab_cache``.
    """
    identity = _identity(name, params)
    path = _path_for(name, identity, cache_dir)
    if not force and path.exists():
        try:
            return _load(path, identity)
        except Exception as err:  # whatever is wrong with the file, recomputing fixes it
            warnings.warn(
                f"cache file '{path}' is unreadable or stale ({type(err).__name__}: {err}); "
                "recomputing it and overwriting the file",
                stacklevel=2,
            )
    result = _as_arrays(name, compute())
    try:
        _save(path, identity, result)
    except OSError as err:  # the result is still good; only the cache is lost
        warnings.warn(f"could not write cache file '{path}': {err}", stacklevel=2)
    return result


def cache_path(
    name: str, params: Mapping[str, Any], *, cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """The file that ``cached(name, params, ...)`` reads and writes."""
    return _path_for(name, _identity(name, params), cache_dir)


def is_file_name(name: object) -> bool:
    """Whether ``name`` is a string that ``FILE_NAME`` matches whole."""
    return isinstance(name, str) and FILE_NAME.fullmatch(name) is not None


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Yield a temporary file next to ``path``; on success it replaces ``path`` in one step.

    Readers see the old file or the new one, never half of one; on error nothing is left behind.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):  # already renamed, or never created
            tmp.unlink()


# Modules that only draw, wire things up or describe the run (provenance, journal widths):
# editing them changes no sweep's numbers, and no module that computes imports them.
_NOT_COMPUTING = ("figures", "widgets", "cli.py", "__main__.py", "provenance.py", "venues.py")


@functools.cache
def code_fingerprint(root: str | os.PathLike[str] | None = None) -> str:
    """sha256 (16 hex digits) of every ``.py`` file under the package that computes results.

    ``root`` defaults to the installed ``hsr_lab`` folder; files are hashed by relative path and
    content in sorted order, so the same code gives the same key on every machine.
    """
    root = Path(root) if root is not None else Path(hsr_lab.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if relative.split("/")[0] in _NOT_COMPUTING:
            continue
        digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _identity(name: str, params: Mapping[str, Any]) -> str:
    """The canonical JSON of (name, params, version) that is hashed and stored."""
    if not is_file_name(name):
        raise ValueError(
            "name must be a non-empty file-name-safe string (letters, digits, '_', '.', '-'); "
            f"got {name!r}"
        )
    if not isinstance(params, Mapping):
        raise TypeError(
            f"params must be a dict of JSON-serialisable values; got {type(params).__name__}"
        )
    record = {"name": name, "params": params, "version": hsr_lab.__version__,
              "code": code_fingerprint()}
    try:
        return json.dumps(record, sort_keys=True, separators=(",", ":"), default=_json_scalar)
    except (TypeError, ValueError) as err:
        raise TypeError(
            "params must hold only JSON-serialisable values (str, int, float, bool, None, "
            f"lists and dicts with str keys); {err}"
        ) from err


def _json_scalar(value: object) -> object:
    """Let NumPy scalars (np.int64 from a sweep grid, say) stand for Python numbers."""
    if isinstance(value, np.generic):
        return value.item()
    hint = " (use .tolist())" if isinstance(value, np.ndarray) else ""
    raise TypeError(f"a value of type {type(value).__name__} is not JSON-serialisable{hint}")


def _path_for(name: str, identity: str, cache_dir: str | os.PathLike[str] | None) -> Path:
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()
    return config.cache_dir(cache_dir) / f"{name}-{digest[:16]}.npz"


def _as_arrays(name: str, result: object) -> Arrays:
    """Check what ``compute()`` returned and turn each value into an array."""
    if not isinstance(result, Mapping):
        raise TypeError(
            f"compute() for sweep {name!r} must return a dict of arrays; "
            f"got {type(result).__name__}"
        )
    arrays = {}
    for key, value in result.items():
        if not isinstance(key, str) or not key or key.startswith("__"):
            raise ValueError(
                f"compute() for sweep {name!r} returned the key {key!r}; keys must be non-empty "
                "strings not starting with '__' (reserved)"
            )
        arr = np.asarray(value)
        if arr.dtype.hasobject:
            raise TypeError(
                f"compute() for sweep {name!r} returned {key!r} with dtype object, which .npz "
                "cannot hold without pickle; return numeric, bool or str arrays"
            )
        arrays[key] = arr
    return arrays


def _save(path: Path, identity: str, arrays: Arrays) -> None:
    """Write ``arrays`` plus the identity and key list as an uncompressed ``.npz``."""
    folder = path.parent
    created = not folder.is_dir()
    folder.mkdir(parents=True, exist_ok=True)
    if created:  # only a folder we made ourselves: never hide a user's own folder from git
        (folder / ".gitignore").write_text("# created by hsr_lab.cache\n*\n")
    keys = np.array(list(arrays), dtype=str) if arrays else np.zeros(0, dtype="U1")
    entries = {PARAMS_KEY: np.array(identity), KEYS_KEY: keys, **arrays}
    # Written member by member (as np.savez does) so that a key such as "file" cannot clash
    # with an argument name of np.savez; a fixed timestamp makes equal results equal bytes.
    with atomic_write(path) as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as archive:
        for key, arr in entries.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)


def _load(path: Path, identity: str) -> Arrays:
    """Read a cache file back, raising if it is not exactly what ``_save`` wrote for identity."""
    data = np.load(path, allow_pickle=False)
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError("not an .npz archive")
    with data:
        if PARAMS_KEY not in data.files or KEYS_KEY not in data.files:
            raise ValueError(f"no {PARAMS_KEY} or {KEYS_KEY} entry")
        stored = data[PARAMS_KEY]
        if stored.shape != () or stored.dtype.kind != "U" or stored.item() != identity:
            raise ValueError("the stored name, parameters or version differ")
        keys = data[KEYS_KEY].tolist()
        found = sorted(set(data.files) - {PARAMS_KEY, KEYS_KEY})
        if sorted(keys) != found:
            raise ValueError(f"expected the keys {sorted(keys)}; found {found}")
        return {key: data[key] for key in keys}  # reading every member checks its CRC
