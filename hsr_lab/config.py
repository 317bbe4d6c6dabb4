"""Settings read from the environment: quick mode and the cache folder.

``HSR_LAB_QUICK=1`` makes sweeps and figures run with tiny parameters (CI, a first look);
``HSR_LAB_CACHE_DIR`` moves the on-disk cache of sweep results (default ``./.hsr_lab_cache``).
"""

from __future__ import annotations

import os
from pathlib import Path

QUICK_ENV = "HSR_LAB_QUICK"
CACHE_DIR_ENV = "HSR_LAB_CACHE_DIR"
DEFAULT_CACHE_DIR = ".hsr_lab_cache"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


def quick_mode() -> bool:
    """True when the environment variable ``HSR_LAB_QUICK`` is 1/true/yes/on, False when it is
    unset, empty or 0/false/no/off (any case); a ValueError naming the value otherwise."""
    raw = os.environ.get(QUICK_ENV, "")
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    # A typo should not silently start the full, slow run.
    raise ValueError(f"{QUICK_ENV}={raw!r} is not a valid value: use one of 1/true/yes/on or "
                     "0/false/no/off")


def cache_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder: ``override``, else ``$HSR_LAB_CACHE_DIR``, else ``./.hsr_lab_cache``."""
    if override is not None:
        return Path(override)
    from_env = os.environ.get(CACHE_DIR_ENV, "").strip()
    return Path(from_env) if from_env else Path.cwd() / DEFAULT_CACHE_DIR
