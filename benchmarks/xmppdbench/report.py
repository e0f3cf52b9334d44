# -*- test-case-name: tests.test_benchmark_smoke -*-
"""
results.json -> markdown: one row per scenario phase (the median over
repetitions, and for the server's CPU cost also the minimum, the
least-disturbed run), a table of memory per idle session, provisioning.

  python -m xmppdbench.report RESULTS.json
"""

import json
import statistics
import sys

LEGEND = (
    "CPU ms/1k = CPU milliseconds per 1000 units (logins, delivered messages, groupchat "
    "deliveries to each occupant, unique presences): the number that stays comparable on "
    "a shared, noisy machine. "
    "≈/s per core = 1e6 / median server CPU ms/1k, the rate one whole core would sustain. "
    "util = CPU seconds per wall second (100% = one core); +wait = runnable but not "
    "running (schedstat); other = CPU used by the rest of the machine. bound = the side "
    "whose demand (util + wait) reached 0.85 core: only a server-bound row measures the "
    "server's capacity. Closed-loop latencies (msg, muc) are queueing (in flight / rate); "
    "msg_fixed gives latency at a fixed, unsaturated rate; presence latency is the time "
    "from sending initial presence to a full roster of contacts' presences.")


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, pattern="%.0f"):
    return "-" if value is None else pattern % value


def phasesByRow(data: dict) -> dict:
    """(scenario, phase) -> the phase dicts of every repetition; failures as empty lists."""
    rows: dict = {}
    for run in data.get("runs", []):
        result = run.get("result") or {}
        if result.get("error") or not result.get("phases"):
            error = result.get("error") or "no result"
            rows.setdefault((run["scenario"], "FAILED: " + error[:100]), [])
        for phase in result.get("phases", []):
            if phase["phase"] == "hold":
                continue
            rows.setdefault((run["scenario"], phase["phase"]), []).append(phase)
    return rows


def render(data: dict) -> str:
    meta = data.get("meta", {})
    before = meta.get("machine_before", {})
    lines = ["# xmppd benchmark (%s scale)" % meta.get("scale", "?"), "",
             "xmppd %s; %s cores, %s; load before %s; server on CPUs `%s`, generator on `%s`; %s"
             % (meta.get("xmppd"), before.get("nproc"), (before.get("cpu_model") or "").strip(),
                before.get("loadavg"), meta.get("server_cpus"), meta.get("gen_cpus"),
                before.get("time")), ""]
    pie = data.get("provisioning")
    if pie:
        lines += ["Provisioning: `xmppctl import` of %d accounts (%d roster items, %.1f MB "
                  "XEP-0227) in %.1f s: %.0f accounts/s (password hashing uses every core)." % (
                      pie["accounts"], pie["roster_items"], pie["file_bytes"] / 1e6,
                      pie["import_s"], pie["accounts_per_s"]), ""]
    lines += ["| scenario | phase | reps | count | rate /s | server CPU ms/1k (med / min) "
              "| ≈/s per core | gen CPU ms/1k | server util (+wait) | gen util (+wait) "
              "| other | p50 ms | p99 ms | peak RSS MB | bound |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = phasesByRow(data)
    for (scenario, name), phases in rows.items():
        if not phases:
            lines.append("| %s | %s | 0 |" % (scenario, name) + " |" * 12)
            continue

        def med(key, phases=phases):
            return median([p.get(key) for p in phases])

        def lat(key, phases=phases):
            return median([(p.get("latency") or {}).get(key) for p in phases])
        cost = [p["server_cpu_ms_per_1k"] for p in phases if "server_cpu_ms_per_1k" in p]
        medCost = median(cost)
        lines.append("| %s | %s | %d | %s | %s | %s / %s | %s | %s | %s%% (+%s) | %s%% (+%s) "
                     "| %s%% | %s | %s | %s | %s |" % (
                         scenario, name, len(phases), fmt(med("count")), fmt(med("rate_per_s")),
                         fmt(medCost), fmt(min(cost) if cost else None),
                         fmt(1e6 / medCost if medCost else None), fmt(med("gen_cpu_ms_per_1k")),
                         fmt(100 * (med("server_cpu_util") or 0)),
                         fmt(100 * (med("server_wait_util") or 0)),
                         fmt(100 * (med("gen_cpu_util") or 0)),
                         fmt(100 * (med("gen_wait_util") or 0)),
                         fmt(100 * (med("other_cpu_util") or 0)),
                         fmt(lat("p50_ms"), "%.1f"), fmt(lat("p99_ms"), "%.1f"),
                         fmt((med("server_rss_kb_peak") or 0) / 1024),
                         ", ".join(sorted({p.get("bound", "?") for p in phases}))))
    lines += clusterTable(data, rows)
    idle = [p for (scenario, _), phases in rows.items() if scenario == "idle" for p in phases]
    if idle:
        lines += ["", "| idle sessions | RSS without sessions MB | RSS MB | KB per session "
                  "| idle server CPU |", "|---|---|---|---|---|"]
        for p in idle:
            lines.append("| %s | %.1f | %.1f | %.1f | %.2f%% |" % (
                p.get("sessions"), p.get("rss_base_kb", 0) / 1024, p.get("rss_kb", 0) / 1024,
                p.get("kb_per_session", 0), 100 * p.get("idle_server_cpu_util", 0)))
    others = [(scenario, p) for (scenario, _), phases in rows.items()
              if scenario != "idle" and "idle" in scenario for p in phases]
    if others:
        lines += ["", "| idle, all server processes | sessions | RSS without sessions MB | RSS MB "
                  "| KB per session | idle server CPU |", "|---|---|---|---|---|---|"]
        for scenario, p in others:
            lines.append("| %s | %s | %.1f | %.1f | %.1f | %.2f%% |" % (
                scenario, p.get("sessions"), p.get("rss_base_kb", 0) / 1024,
                p.get("rss_kb", 0) / 1024, p.get("kb_per_session", 0),
                100 * p.get("idle_server_cpu_util", 0)))
    notes = []
    for run in data.get("runs", []):
        for p in (run.get("result") or {}).get("phases", []):
            if p.get("errors"):
                notes.append("- %s rep %s, %s: %s" % (run["scenario"], run["rep"], p["phase"],
                                                      p["errors"]))
            if p.get("incomplete_users"):
                notes.append("- %s rep %s: %d users never saw a full roster"
                             % (run["scenario"], run["rep"], p["incomplete_users"]))
            if p.get("undelivered_after_drain") or p.get("lost_connections"):
                notes.append("- %s rep %s: %s undelivered, %s connections lost" % (
                    run["scenario"], run["rep"], p.get("undelivered_after_drain"),
                    p.get("lost_connections")))
    if notes:
        lines += ["", "Problems:"] + notes
    lines += ["", LEGEND, ""]
    return "\n".join(lines)


def clusterTable(data: dict, rows: dict) -> list[str]:
    """
    The scenarios run with Redis (a lone node on Redis storage, the nodes of
    a cluster): each process's CPU per 1000 units and Redis commands per unit,
    medians over the repetitions, with the spread (min-max) of the total.
    """
    labels = {run["scenario"]: run.get("processes") for run in data.get("runs", [])}
    out = []
    for (scenario, name), phases in rows.items():
        names = labels.get(scenario)
        if not phases or not names or len(names) < 2 and "redis" not in names:
            continue
        cost = [p["server_cpu_ms_per_1k"] for p in phases if "server_cpu_ms_per_1k" in p]
        parts = []
        for i, label in enumerate(names):
            value = median([(p.get("server_cpu_ms_per_1k_by_process") or [None] * len(names))[i]
                            for p in phases])
            parts.append("%s %s" % (label, fmt(value)))
        out.append("| %s | %s | %d | %s (%s-%s) | %s | %s |" % (
            scenario, name, len(phases), fmt(median(cost)), fmt(min(cost) if cost else None),
            fmt(max(cost) if cost else None), ", ".join(parts),
            fmt(median([p.get("redis_calls_per_unit") for p in phases]), "%.2f")))
    if not out:
        return []
    return ["", "| with Redis | phase | reps | all processes CPU ms/1k, median (min-max) "
            "| per process, median | Redis commands per unit |", "|---|---|---|---|---|---|"] + out


def main(argv=None) -> None:
    for path in (sys.argv[1:] if argv is None else argv):
        with open(path) as f:
            print(render(json.load(f)))


if __name__ == "__main__":
    main()
