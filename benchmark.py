#!/usr/bin/env python3
"""`./benchmark.py <workload> [options]`: the benchmark CLI (the same as `python -m bench`); see bench/README.md."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # runnable from any directory

from bench.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
