"""Run every benchmark script in this folder (``make bench``); pass ``--quick`` for a smoke run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    status = 0
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"\n=== {script.name} ===", flush=True)
        status |= subprocess.call([sys.executable, str(script), *argv], cwd=HERE)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
