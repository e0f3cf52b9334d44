#!/usr/bin/env python3
"""
Benchmark xmppd on this machine: one command, run with the Python that has
xmppd installed (twistd and xmppctl are taken from next to it).

    .venv/bin/python benchmarks/run.py                   # quick smoke run, under a minute
    .venv/bin/python benchmarks/run.py --scale full --repeat 3 --out /tmp/xmppd-bench

See benchmarks/README.md for the scenarios and how to read the results.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from xmppdbench.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
