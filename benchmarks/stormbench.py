#!/usr/bin/env python3
"""
The reconnect storm (issue 16, item 7) side by side with Prosody and
ejabberd in one run, through the team's harness in ../shared/bench; needs
root, as the harness does.

    python3 benchmarks/stormbench.py --scale smoke                # 50 clients, ~2 minutes
    python3 benchmarks/stormbench.py --scale full                 # 5000 clients

See benchmarks/README.md ("Reconnect storm") and xmppdbench/stormside.py.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from xmppdbench.stormside import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
