# -*- test-case-name: tests.test_benchmark_smoke -*-
"""
Run twistd under cProfile timed by the process's CPU clock, from the
moment the reactor runs (imports, configuration and storage opening are
left out), and dump the statistics when it stops:

    python cpuprofile.py [--wall] OUT.prof twistd -n --pidfile= xmppd --config FILE

twistd's own C{--profiler=cprofile} times with the wall clock, which on a
loaded machine charges a function for the time the process waited for the
CPU; CPU time is what the storm benchmark reports.  Timing each call by the
CPU clock is slow (a system call per event): the profiled server runs
several times slower and calls that do little weigh more than they
should.  C{--wall} times with the wall clock instead (cheap): on a quiet
machine with the server pinned to its own CPU, the difference is the time
spent waiting in the reactor's poll, which shows as such.

Beside it, C{OUT.prof.gc.json}: the garbage collector's collections and
their CPU time per generation, which cProfile charges to whatever function
allocated when a collection began.
"""

import cProfile
import gc
import json
import sys
import time


def main() -> None:
    args = sys.argv[1:]
    timer = time.process_time
    if args[0] == "--wall":
        timer = time.perf_counter
        args = args[1:]
    out, sys.argv = args[0], args[1:]
    profile = cProfile.Profile(timer)
    from twisted.internet import reactor
    from twisted.scripts.twistd import run
    # The garbage collector's own time, which cProfile charges to whatever
    # allocated when a collection started: OUT.gc.json, per generation.
    collections = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}
    started = [0.0]

    def collecting(phase, info):
        if phase == "start":
            started[0] = time.thread_time()
        elif profiling[0]:
            entry = collections[info["generation"]]
            entry[0] += 1
            entry[1] += time.thread_time() - started[0]

    profiling = [False]

    def enable():
        profiling[0] = True
        profile.enable()

    def dump():
        profile.disable()
        profiling[0] = False
        profile.dump_stats(out)
        with open(out + ".gc.json", "w") as f:
            json.dump({"generation %d" % g: {"collections": n, "cpu_s": round(t, 4)}
                       for g, (n, t) in collections.items()}, f, indent=1)

    gc.callbacks.append(collecting)

    reactor.callWhenRunning(enable)
    # twistd ends a process stopped by a signal with that signal again,
    # from inside run(): dump before, once the reactor has shut down.
    reactor.addSystemEventTrigger("after", "shutdown", dump)
    run()


if __name__ == "__main__":
    main()
