"""A byte corpus every install holds: the Python standard library's own source, without tests.

The small language models of ``hsr_lab.data.relu_lm`` were trained on it (``train/``). The
recipe, deterministic on a given Python:

- the files: every ``*.py`` under ``sysconfig.get_paths()["stdlib"]``, except folders named
  ``test``, ``tests`` or ``idle_test`` (the test suites), ``site-packages`` and
  ``dist-packages`` (installed packages, not the standard library), ``config-*`` and
  ``_sysconfigdata_*`` (the build's configuration, which names this machine's paths) and
  ``pydoc_data`` (the language reference's help text as one 0.76 MB string, generated: English,
  not source, and one file that large would dominate whichever split drew it);
- the order: sorted by relative POSIX path;
- the split, BY FILE: a file is held out (validation) when the first byte of
  ``SHA-256(relative path)`` is below ``HELDOUT_BYTE`` (16 of 256: about 1 in 16 files);
- the stream: each split is its files' bytes, each followed by ``SEPARATOR`` (byte 0, which no
  source file contains), in that order. Tokens are bytes: a vocabulary of 256.

Python 3.11.7 (this lab's CI) gives the sizes and SHA-256 in ``RECORDED``; ``describe()`` says
whether the running Python gives the same bytes. Another Python version has other files, so
another corpus, but the split is decided by the path alone: a file held out here was held out
in training under every version, so ``heldout()`` is unseen text on every Python (the same
text, and the same numbers, only on 3.11.7).
"""

from __future__ import annotations

import functools
import hashlib
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SEPARATOR = 0  # the byte that ends every file in the stream
HELDOUT_BYTE = 16  # a file is held out when sha256(path)[0] < 16 (1/16 of paths)
_SKIP_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages",
                        "__pycache__", "pydoc_data"})
TRAINED_ON = (3, 11, 7)  # the Python whose standard library the models were trained on
RECORDED = {  # split -> (files, bytes with separators, SHA-256 of the stream), on TRAINED_ON
    "train": (680, 10_777_909,
              "2cba6766f750b453186e5c86b35715517fecc00b69ab24cebaf8e3f278886e4a"),
    "heldout": (50, 545_546,
                "c9a39d8f11c3bda60ad0b550e271166a3cb7fed6316e1b4516e5911beb3a4865"),
}


@dataclass(frozen=True)
class Corpus:
    """The two streams (uint8, read-only) and where they came from."""

    train: np.ndarray
    heldout: np.ndarray
    train_files: tuple[str, ...]
    heldout_files: tuple[str, ...]
    python: str

    def sha256(self, split: str) -> str:
        """SHA-256 of one split's stream ("train" or "heldout")."""
        return hashlib.sha256(_split(self, split).tobytes()).hexdigest()

    def __repr__(self) -> str:
        return (f"Corpus(Python {self.python} standard library: train {len(self.train_files)} "
                f"files, {self.train.size:,} bytes; held out {len(self.heldout_files)} files, "
                f"{self.heldout.size:,} bytes)")


def _split(corpus: Corpus, split: str) -> np.ndarray:
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout'; got {split!r}")
    return corpus.train if split == "train" else corpus.heldout


def stdlib_root() -> Path:
    """The folder of the running Python's standard library."""
    return Path(sysconfig.get_paths()["stdlib"])


def _kept(rel: Path) -> bool:
    """Is this relative path a standard-library source file of the recipe?"""
    if any(part in _SKIP_DIRS or part.startswith("config-") for part in rel.parts[:-1]):
        return False
    return not rel.name.startswith("_sysconfigdata_")


def source_files(root: Path | None = None) -> list[str]:
    """The recipe's files: relative POSIX paths, sorted."""
    root = stdlib_root() if root is None else Path(root)
    if not root.is_dir():
        raise ValueError(f"root must be a folder holding Python's standard library; got {root}")
    rels = (p.relative_to(root) for p in root.rglob("*.py") if p.is_file())
    return sorted(r.as_posix() for r in rels if _kept(r))


def is_heldout(rel: str) -> bool:
    """The split, by file: held out when the first byte of SHA-256(path) < HELDOUT_BYTE."""
    return hashlib.sha256(rel.encode()).digest()[0] < HELDOUT_BYTE


def _stream(root: Path, files: list[str]) -> np.ndarray:
    parts = []
    for rel in files:
        parts.append((root / rel).read_bytes())
        parts.append(bytes([SEPARATOR]))
    arr = np.frombuffer(b"".join(parts), dtype=np.uint8)
    return arr  # frombuffer over bytes is read-only already


@functools.lru_cache(maxsize=2)
def load(root: Path | None = None) -> Corpus:
    """The corpus of the running Python's standard library (or of ``root``), built in ~1 s."""
    root = stdlib_root() if root is None else Path(root)
    files = source_files(root)
    held = [f for f in files if is_heldout(f)]
    train = [f for f in files if not is_heldout(f)]
    return Corpus(_stream(root, train), _stream(root, held), tuple(train), tuple(held),
                  ".".join(map(str, sys.version_info[:3])))


def matches_training() -> bool:
    """Does the running Python give the corpus the models were trained on (same SHA-256)?"""
    corpus = load()
    return all(corpus.sha256(s) == RECORDED[s][2] for s in RECORDED)


def describe() -> str:
    """One line per split: files, bytes and SHA-256, and whether they match the recorded ones."""
    corpus = load()
    lines = [repr(corpus)]
    for split, (files, size, digest) in RECORDED.items():
        got = corpus.sha256(split)
        same = "the same as" if got == digest else "NOT the same as"
        lines.append(f"{split}: {len(getattr(corpus, split + '_files'))} files, "
                     f"{_split(corpus, split).size:,} bytes, sha256 {got[:16]}..., {same} the "
                     f"corpus of training (Python {'.'.join(map(str, TRAINED_ON))}: {files} "
                     f"files, {size:,} bytes)")
    return "\n".join(lines)


def heldout_windows(length: int, count: int, seed: int = 0) -> np.ndarray:
    """``count`` windows of ``length`` bytes of the held-out stream, (count, length) uint8,
    starting at offsets drawn without replacement from non-overlapping slots (fixed by seed)."""
    for name, value in (("length", length), ("count", count)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be a positive int; got {value!r}")
    stream = load().heldout
    slots = stream.size // length
    if count > slots:
        raise ValueError(f"count={count} windows of length {length} do not fit in the held-out "
                         f"text ({stream.size:,} bytes: at most {slots})")
    chosen = np.sort(np.random.default_rng(seed).choice(slots, size=count, replace=False))
    return np.stack([stream[s * length:(s + 1) * length] for s in chosen])


def write(path: str | Path) -> dict[str, str]:
    """Write both streams to ``path`` (.npz: ``train``, ``heldout``) for a machine without this
    package (the accelerator); returns their SHA-256, which ``train/`` checks on reading."""
    corpus = load()
    np.savez(path, train=corpus.train, heldout=corpus.heldout)
    return {s: corpus.sha256(s) for s in ("train", "heldout")}


if __name__ == "__main__":  # python -m hsr_lab.data.pystdlib [out.npz]
    print(describe())
    if len(sys.argv) > 1:
        print(write(sys.argv[1]))
