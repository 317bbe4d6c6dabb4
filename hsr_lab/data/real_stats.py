"""Deprecated alias of ``hsr_lab.experiments.real_stats`` (a cached sweep, so an experiment).

Importing it warns (``DeprecationWarning``); it goes away in the next release. Import from
``hsr_lab.experiments.real_stats`` instead.
"""

from __future__ import annotations

import warnings

from hsr_lab.experiments.real_stats import (
    C,
    RealSweep,
    dropped_mass,
    gaussian_share,
    hsr_work,
    qq_points,
    real_sweep,
    row_thresholds,
    share_activated,
    sweep,
)

__all__ = ["C", "RealSweep", "dropped_mass", "gaussian_share", "hsr_work", "qq_points",
           "real_sweep", "row_thresholds", "share_activated", "sweep"]

warnings.warn("hsr_lab.data.real_stats is deprecated: import from hsr_lab.experiments.real_stats",
              DeprecationWarning, stacklevel=2)
