"""Deprecated alias of ``hsr_lab.figures.views`` (the views behind the widget panels).

Importing it warns (``DeprecationWarning``); it goes away in the next release. Import from
``hsr_lab.figures.views`` instead.
"""

from __future__ import annotations

import warnings

from hsr_lab.figures.views import (
    view_query_cost,
    view_relu_attention,
    view_scaling,
    view_softmax_threshold,
)

__all__ = ["view_query_cost", "view_relu_attention", "view_scaling", "view_softmax_threshold"]

warnings.warn("hsr_lab.figures.interactive is deprecated: import from hsr_lab.figures.views",
              DeprecationWarning, stacklevel=2)
