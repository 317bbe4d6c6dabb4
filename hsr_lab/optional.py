"""Optional dependencies: import them when needed, or say in one line how to install them.

The core (``hsr``, ``attention``, ``theory``, the sweeps and figures) needs only NumPy, SciPy
and matplotlib. The real-model data (``hsr_lab[real]``), the peers (``hsr_lab[peers]``) and the
compiled kd-tree (``hsr_lab[fast]``: Numba) are extras; a feature that needs a missing one
raises ``MissingOptional``, an ``ImportError`` whose message names the package and the command
that installs it, instead of a traceback from deep inside an import.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType


class MissingOptional(ImportError):
    """An optional package is not installed; ``str(err)`` says which and how to install it."""

    def __init__(self, module: str, extra: str, purpose: str) -> None:
        self.module, self.extra = module, extra
        self.install = f"pip install 'hsr_lab[{extra}]'"
        super().__init__(f"{purpose} needs the optional package {module!r}; install it with: "
                         f"{self.install}", name=module)

    def _render_traceback_(self) -> list[str]:
        """What IPython shows instead of a traceback: the one line that says what to install."""
        return [f"{type(self).__name__}: {self}"]


def available(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """``import module``, or raise ``MissingOptional`` naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingOptional(module, extra, purpose) from err
