"""``python -m hsr_lab COMMAND ...``; see ``hsr_lab.cli``."""

from hsr_lab.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
