#!/usr/bin/env python3
"""Thin entry script for jobscripts: `python analysis/analyze_run.py RUN_DIR [--partial]`.
Same as `python -m hpc_brunel analyze RUN_DIR`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hpc_brunel.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["analyze", *sys.argv[1:]]))
