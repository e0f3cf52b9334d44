# -*- test-case-name: tests.test_benchmark_smoke -*-
"""
CPU, scheduler and memory accounting straight from /proc (Linux, no
dependencies), for the server process tree, this process and the machine.

  - CPU time: utime + stime of every thread (C{/proc/PID/stat} fields 14 and
    15, in clock ticks), summed over the server's process tree.
  - Demand: run + run-queue wait from C{/proc/PID/task/*/schedstat}; wait is
    CPU a side wanted and did not get, so run + wait near one core means that
    side was the bottleneck even on a machine shared with other tenants.
  - Memory: C{VmRSS}, and C{VmHWM} as the peak after resetting it by writing
    5 to C{/proc/PID/clear_refs} (Linux 4.0+, root or the owner); without the
    right the peak falls back to the sampled RSS.
"""

import os
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def processTree(roots: list[int]) -> list[int]:
    """The live PIDs among C{roots} and all their descendants."""
    seen: set[int] = set()
    todo, found = list(roots), []
    while todo:
        pid = todo.pop()
        if pid in seen or not os.path.exists(f"/proc/{pid}"):
            continue
        seen.add(pid)
        found.append(pid)
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                todo += [int(c) for c in _read(f"/proc/{pid}/task/{tid}/children").split()]
            except OSError:
                pass
    return found


def parseStatCPU(stat: bytes) -> float:
    """utime + stime in seconds from the text of a C{/proc/PID/stat} file."""
    # The command name may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpuSeconds(pid: int) -> float:
    """CPU seconds used so far by one process (all threads); 0 once it is gone."""
    try:
        return parseStatCPU(_read(f"/proc/{pid}/stat"))
    except OSError:
        return 0.0


def schedNanoseconds(pid: int) -> tuple[int, int]:
    """(running, runnable-but-waiting) nanoseconds over all threads of C{pid}."""
    run = wait = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0, 0
    for tid in tids:
        try:
            fields = _read(f"/proc/{pid}/task/{tid}/schedstat").split()
            run += int(fields[0])
            wait += int(fields[1])
        except (OSError, IndexError, ValueError):
            pass
    return run, wait


def statusKB(pid: int, key: bytes) -> int:
    """A kB figure of C{/proc/PID/status} (C{b"VmRSS:"}, C{b"VmHWM:"}); 0 if absent."""
    try:
        for line in _read(f"/proc/{pid}/status").splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rssKB(pid: int) -> int:
    return statusKB(pid, b"VmRSS:")


def resetPeak(pid: int) -> bool:
    """Reset VmHWM to the current RSS; False without the right to."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def machineJiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    line = _read("/proc/stat").split(b"\n", 1)[0].split()
    values = [int(v) for v in line[1:9]]  # guest time is already inside user
    idle = values[3] + values[4]          # idle + iowait
    return sum(values) - idle, sum(values)


def ownCPUSeconds() -> float:
    times = os.times()
    return times.user + times.system


class Meter:
    """
    Snapshots of a server process tree, this process and the machine; the
    difference of two snapshots (L{delta}) describes one measured phase.
    """

    def __init__(self, serverPids: list[int]):
        self.roots = list(serverPids)
        self.peakReset = False

    def pids(self) -> list[int]:
        return processTree(self.roots)

    def serverRSS(self) -> int:
        return sum(rssKB(pid) for pid in self.pids())

    def resetPeak(self) -> None:
        pids = self.pids()
        self.peakReset = bool(pids) and all([resetPeak(pid) for pid in pids])

    def peakRSS(self) -> int | None:
        """Sum of VmHWM since L{resetPeak}, or None if it could not be reset."""
        if not self.peakReset:
            return None
        return sum(statusKB(pid, b"VmHWM:") for pid in self.pids())

    def snapshot(self) -> dict:
        pids = self.pids()
        sched = [schedNanoseconds(pid) for pid in pids]
        return {
            "t": time.perf_counter(),
            "rootCPU": [sum(cpuSeconds(pid) for pid in processTree([root])) for root in self.roots],
            "serverCPU": sum(cpuSeconds(pid) for pid in pids),
            "serverSched": (sum(s[0] for s in sched), sum(s[1] for s in sched)),
            "serverRSS": sum(rssKB(pid) for pid in pids),
            "genCPU": ownCPUSeconds(),
            "genSched": schedNanoseconds(os.getpid()),
            "machine": machineJiffies(),
            "cpus": os.cpu_count() or 1,
        }


def delta(before: dict, after: dict) -> dict:
    """
    What happened between two L{Meter.snapshot}s: wall seconds, CPU seconds
    of each side, each side's utilisation and demand (run + wait) in cores,
    and the CPU the rest of the machine used (other tenants, kernel).
    """
    wall = after["t"] - before["t"]
    d = {"wall_s": wall,
         "server_cpu_s": after["serverCPU"] - before["serverCPU"],
         "gen_cpu_s": after["genCPU"] - before["genCPU"],
         "server_rss_kb_start": before["serverRSS"],
         "server_rss_kb_end": after["serverRSS"]}
    if "rootCPU" in before and "rootCPU" in after:
        # each server process (a node of a cluster, its Redis) on its own
        d["server_cpu_s_by_process"] = [b - a for a, b in zip(before["rootCPU"], after["rootCPU"])]
    if wall <= 0:
        return d
    busy = after["machine"][0] - before["machine"][0]
    total = after["machine"][1] - before["machine"][1]
    machineCores = busy / total * after["cpus"] if total > 0 else 0.0
    for side in ("server", "gen"):
        run0, wait0 = before[side + "Sched"]
        run1, wait1 = after[side + "Sched"]
        d[side + "_cpu_util"] = d[side + "_cpu_s"] / wall
        d[side + "_wait_util"] = max(0, wait1 - wait0) / 1e9 / wall
        d[side + "_demand"] = (max(0, run1 - run0) + max(0, wait1 - wait0)) / 1e9 / wall
    d["other_cpu_util"] = max(0.0, machineCores - d["server_cpu_util"] - d["gen_cpu_util"])
    return d
