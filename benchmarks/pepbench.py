#!/usr/bin/env python3
"""
The PEP scenario side by side with Prosody and ejabberd in one run (issue
12), through the team's harness in ../shared/bench; needs root, as the
harness does.

    python3 benchmarks/pepbench.py --scale quick                  # ~1 minute
    python3 benchmarks/pepbench.py --scale full --repeat 3 \\
        --servers prosody,ejabberd,benchmarks/xbench/adapter.toml --set xmppd.xmppd_bin=VENV/bin

See benchmarks/README.md ("PEP side by side") and xmppdbench/pepside.py.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from xmppdbench.pepside import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
