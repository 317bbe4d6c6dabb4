"""hsr_lab: half-space reporting (HSR) sparse attention, to learn, check and measure.

Layers, bottom to top; each imports only from the layers below it (the README's Layout lists
every module in this order, and ``tests/test_packaging.py`` checks the imports against it):

1. Utilities that import nothing of hsr_lab: ``validate`` (argument checks whose errors name
   the argument), ``optional`` (optional packages, or one line saying how to install them),
   ``config`` (settings read from the environment: ``HSR_LAB_QUICK``, ``HSR_LAB_CACHE_DIR``)
   and ``venues`` (journals' column widths).
2. ``theory`` (the paper's formulas: thresholds, expected sparsity, bounds).
3. ``hsr``: the reporting structures behind ``HSR`` (readable kd-tree ``reference``, its NumPy
   and compiled twins, the scan, convex layers), ``hsr.numerics`` and ``hsr.exact`` (the
   exact predicate) and ``hsr.plan``, the planner that picks tree or scan (and, for
   attention, tree or dense); it reads the paper's threshold from ``theory``.
4. ``attention`` (dense and HSR ReLU^alpha and softmax attention, the ``Decoder``) and
   ``peers`` (what practical systems do instead, made exact, for the benchmarks).
5. This module, the package's face (``HSR``, ``relu_attention``, ``softmax_attention``,
   ``Decoder``), then ``cache`` (sweep results on disk, keyed on parameters, this version and
   a fingerprint of the code) and ``provenance`` (what a figure or table records), which read
   the package's version and files and so import ``hsr_lab`` itself.
6. ``data`` (real attention of all-MiniLM-L6-v2 and SmolLM2-135M and the trained byte LMs,
   offline; optional packages), then ``experiments`` (cached sweeps, measurements,
   ``experiments.real_stats``).
7. ``figures`` (one ``fig_<name>`` per figure, the ``views`` behind the panels, the house
   style), then ``widgets`` (the notebooks' panels over those views; ``widgets.render`` draws
   them fast).
8. ``cli`` (``python -m hsr_lab figures``), then the notebooks in ``notebooks/``, which import
   from the layers below them and hold no logic of their own.
"""

__version__ = "0.1.0"

from .attention import AttentionStats, Decoder, relu_attention, softmax_attention
from .hsr import HSR, QueryStats

__all__ = [
    "HSR",
    "AttentionStats",
    "Decoder",
    "QueryStats",
    "__version__",
    "relu_attention",
    "softmax_attention",
]
