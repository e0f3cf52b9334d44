"""
soakbench.py --gc-log: this directory goes on the server's PYTHONPATH, so
the twistd process logs each of CPython's garbage collections of
generation 2, and any other taking over 20 ms, to $XMPPD_GC_LOG: wall
time, generation, milliseconds, objects collected.  Other processes that
import it (xmppctl) log nothing.
"""

import gc
import os
import sys
import time

if os.environ.get("XMPPD_GC_LOG") and os.path.basename((sys.argv or [""])[0]) == "twistd":
    _log = open(os.environ["XMPPD_GC_LOG"], "a", buffering=1)
    _started = [0.0]

    def _collected(phase, info):
        if phase == "start":
            _started[0] = time.perf_counter()
            return
        took = time.perf_counter() - _started[0]
        if info["generation"] == 2 or took > 0.02:
            _log.write("%.3f %d %.1f %d\n" % (time.time(), info["generation"], took * 1e3,
                                              info["collected"]))

    gc.callbacks.append(_collected)
