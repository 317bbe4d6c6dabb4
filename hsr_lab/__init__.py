"""hsr_lab: half-space reporting (HSR) sparse attention, to learn, check and measure.

Layers, each importing only from those below it: ``hsr`` (reporting structures), then
``attention`` and ``theory``, then ``experiments``, then ``figures`` and ``widgets``.
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
