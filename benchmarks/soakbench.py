#!/usr/bin/env python3
"""
The soak (issue 18, item 3): 10,000 sessions with a realistic mix of chat,
presence changes, rooms, reconnects and archive queries for half an hour,
with the server's memory, metrics and latency sampled over time and every
accepted message counted end to end.  Run it with the Python that has
xmppd installed (twistd and xmppctl are taken from next to it):

    .venv/bin/python benchmarks/soakbench.py --sessions 1000 --minutes 2     # smoke
    .venv/bin/python benchmarks/soakbench.py --sessions 10000 --minutes 31 \\
        --out benchmarks/results/soak-DATE

See benchmarks/README.md ("Soak") and xmppdbench/soak.py.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from xmppdbench.soak import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
