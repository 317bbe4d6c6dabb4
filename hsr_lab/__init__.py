"""hsr_lab: half-space reporting (HSR) sparse attention, to learn, check and measure.

Layers, bottom to top; each imports only from the layers below it (and the shared utilities):

1. ``theory`` (the paper's formulas: thresholds, expected sparsity, bounds) and
   ``hsr.numerics`` (unit roundoff, rounding margins, overflow limits, the score <a, x>).
2. ``hsr``: the reporting structures behind ``HSR`` (readable kd-tree ``reference``, its NumPy
   twin, the scan, convex layers) and ``hsr.plan``, the planner that picks tree or scan (and,
   for attention, tree or dense);
   it reads the paper's threshold from ``theory``. ``peers`` (what practical systems do
   instead, for the benchmarks) sits beside it.
3. ``attention``: dense and HSR ReLU^alpha and softmax attention, the ``Decoder``.
4. ``experiments`` (cached sweeps, measurements, ``experiments.real_stats``) and ``data``
   (real attention of all-MiniLM-L6-v2 and SmolLM2-135M, offline; optional packages).
5. ``figures`` (one ``fig_<name>`` per figure, the ``views`` behind the panels, the house
   style) and ``widgets`` (the notebooks' panels over those views; ``widgets.render`` draws
   them fast).
6. ``cli`` (``python -m hsr_lab figures``), then the notebooks in ``notebooks/``, which import
   from the layers below them and hold no logic of their own.

Shared utilities, usable from every layer: ``validate`` (argument checks whose errors name the
argument), ``optional`` (optional packages, or one line saying how to install them),
``cache`` (sweep results on disk, keyed on parameters and code) and ``config`` (settings read
from the environment: ``HSR_LAB_QUICK``, ``HSR_LAB_CACHE_DIR``).
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
