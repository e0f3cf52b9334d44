#!/usr/bin/env python3
"""
1:1 messages (and idle sessions) over WebSocket next to TCP, for Prosody,
ejabberd and xmppd in one run (issue 15 item 8), through the team's
harness in ../shared/bench; needs root, as the harness does.

    python3 benchmarks/wsbench.py --scale quick                  # ~3 minutes
    python3 benchmarks/wsbench.py --scale full --repeat 3 --set xmppd.xmppd_bin=VENV/bin

See benchmarks/README.md ("WebSocket side by side") and xmppdbench/wsside.py.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from xmppdbench.wsside import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
