# -*- test-case-name: tests.test_benchmark_pep -*-
"""
The C{pep} scenario side by side: Prosody, ejabberd and any xmppd adapter
in one run, through the team's harness (C{../shared/bench}), which has no
such scenario and is read-only.

  python3 benchmarks/pepbench.py --scale quick --repeat 1
  python3 benchmarks/pepbench.py --scale full --repeat 3 \\
      --servers prosody,ejabberd,benchmarks/xbench/adapter.toml

From the harness it uses, unchanged, what starts and stops a server and
provisions it (C{xbench.adapters.Adapter}: a fresh workdir under /tmp,
certificates, rendered templates, the adapter's own provisioning command,
C{taskset} pinning, stop and kill of the whole process tree) and the data
set writer (C{xbench.provision.make}: C{p1..pP} in cliques of K+1 with
subscription C{both}).  The load is this directory's generator
(C{xmppdbench.load pep}), run like the harness runs its own: a separate
process pinned to the generator's cores, given the server's PIDs to meter.

The harness's Prosody and ejabberd templates load no PEP: Prosody lacks
C{mod_pep} and ejabberd C{mod_pubsub}.  So each reference server runs from
a copy of its adapter in this run's own directory, with PEP switched on
in its copy of the config (L{enablePEP}), its own workdir
(C{/tmp/xbench/servers/pep-NAME}) and its ports moved by C{--port-offset},
so that it never collides with a harness run of the original.  Any other
adapter (xmppd's) is used as given: it passes once its PEP does.

Repetitions alternate the server order as C{xbench.run} does; every
(server, repetition) gets a freshly provisioned and started server, so no
PEP node or item survives from an earlier run.  Results: one JSON per
run, C{summary.json} and C{summary.md} (L{render}), C{run.log}.
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
BENCHMARKS = os.path.dirname(HERE)
REPOSITORY = os.path.dirname(BENCHMARKS)
DEFAULT_BENCH = os.path.join(os.path.dirname(REPOSITORY), "shared", "bench")
SCALES = {"full": (1050, 20), "quick": (210, 20)}
# The names xmppd's PEP may be registered under in xmppd.config.registry.FEATURES
# (issue 12 builds it); whichever the installed xmppd has is switched on.
XMPPD_PEP_FEATURES = ("pubsub", "pep")
# What xmppd's PEP needs beside it, switched on with it when installed: the
# server-side tracker of clients' caps (as ejabberd's PEP needs mod_caps),
# without which no contact is known to want +notify.
XMPPD_PEP_NEEDS = ("clientcaps",)

PROSODY_PEP = '"pep";'
EJABBERD_PEP = """\
  # PEP, switched on by xmppd's benchmarks/pepbench.py (not in the harness's template)
  mod_caps: {}
  mod_pubsub:
    access_createnode: local
    plugins:
      - "flat"
      - "pep"
    force_node_config: {}
"""


def enablePEP(templateName: str, text: str,
              xmppdFeatures: list[str] | None = None) -> tuple[str, str | None]:
    """
    The config C{text} of template C{templateName} with PEP on, and what
    was changed (None if PEP was already on, or the template is none of
    the three servers', or xmppd has no PEP feature yet).

    Prosody: C{"pep"} joins C{modules_enabled} (mod_pep, XEP-0163, with
    its own caps handling).  ejabberd: C{mod_caps} and C{mod_pubsub} with
    the C{pep} plugin join C{modules:} (ejabberd's PEP is mod_pubsub's
    C{pep} node type; mod_caps gives it the contacts' +notify features).
    xmppd (C{xmppd.toml}): those of L{XMPPD_PEP_FEATURES} that the installed
    xmppd's feature registry has (C{xmppdFeatures}) join C{[server] modules}.
    """
    if templateName == "xmppd.toml":
        modules = re.search(r"^modules\s*=\s*\[([^\]]*)\]", text, re.M)
        installed = xmppdFeatures or []
        wanted = [name for name in XMPPD_PEP_FEATURES if name in installed]
        if wanted:
            wanted = [name for name in XMPPD_PEP_NEEDS if name in installed] + wanted
        if modules is None or not wanted:
            return text, None
        present = re.findall(r"""["']([^"']+)["']""", modules.group(1))
        added = [name for name in wanted if name not in present]
        if not added:
            return text, None
        text = (text[:modules.end(1)] + "".join(', "%s"' % name for name in added)
                + text[modules.end(1):])
        return text, "xmppd: added %s to [server] modules" % ", ".join(added)
    if templateName.endswith(".cfg.lua"):
        enabled = re.search(r"^modules_enabled\s*=\s*\{([^}]*)\}", text, re.M)
        if enabled is None:
            raise ValueError("%s: no modules_enabled list to add mod_pep to" % templateName)
        if re.search(r"""["']pep["']""", enabled.group(1)):
            return text, None
        text = (text[:enabled.start(1)] + enabled.group(1).rstrip() + " " + PROSODY_PEP + " "
                + text[enabled.end(1):])
        return text, 'Prosody: added "pep" (mod_pep) to modules_enabled'
    if templateName == "ejabberd.yml":
        if re.search(r"^\s+mod_pubsub:", text, re.M):
            if not re.search(r"""["']?pep["']?\s*$""", text, re.M):
                raise ValueError("ejabberd.yml has mod_pubsub without the pep plugin")
            return text, None
        modules = re.search(r"^modules:\s*\n", text, re.M)
        if modules is None:
            raise ValueError("ejabberd.yml: no modules: section to add mod_pubsub to")
        text = text[:modules.end()] + EJABBERD_PEP + text[modules.end():]
        return text, "ejabberd: added mod_caps and mod_pubsub (plugins flat, pep) to modules"
    return text, None


def installedFeatures(adapterConfig: dict) -> list[str] | None:
    """
    The feature names of the xmppd an xmppd adapter runs (its C{xmppd_bin}'s
    python, C{xmppd.config.registry.FEATURES}); None for another server.
    """
    binDir = adapterConfig.get("xmppd_bin")
    if not binDir:
        return None
    try:
        done = subprocess.run(
            [os.path.join(binDir, "python"), "-c",
             "from xmppd.config.registry import FEATURES; print(' '.join(FEATURES))"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=60, cwd="/")
    except OSError:
        return []
    return done.stdout.split()


def shiftPorts(adapterText: str, offset: int) -> str:
    """The adapter TOML with C{port} and every C{*_port} moved by C{offset}."""
    return re.sub(r"^(port|\w+_port)(\s*=\s*)(\d+)",
                  lambda m: "%s%s%d" % (m.group(1), m.group(2), int(m.group(3)) + offset),
                  adapterText, flags=re.M)


def pepAdapter(source: str, into: str, offset: int, log,
               overrides: dict | None = None) -> tuple[str, list[str]]:
    """
    A copy of the adapter at C{source} in C{into}/NAME with PEP enabled in
    its templates, workdir C{/tmp/xbench/servers/pep-NAME} and ports moved
    by C{offset}; returns its path and the changes made.  An adapter whose
    templates need no change (an xmppd without PEP) is returned as it is.
    C{overrides} are the run's C{--set} keys for this adapter.
    """
    directory = os.path.dirname(source)
    with open(source, "rb") as f:
        config = tomllib.load(f)
    config.update(overrides or {})
    features, notes = installedFeatures(config), []
    if features is not None and not set(XMPPD_PEP_FEATURES) & set(features):
        notes.append("the xmppd in %s has no PEP feature (%s): the pep scenario will fail"
                     % (config["xmppd_bin"], " or ".join(XMPPD_PEP_FEATURES)))
        log("  [%s] %s" % (config["name"], notes[-1]))
    changes, rendered = [], {}
    for template in config.get("templates", []):
        with open(os.path.join(directory, template)) as f:
            text, change = enablePEP(os.path.basename(template), f.read(), features)
        if change:
            changes.append(change)
            rendered[template] = text
    if not changes:
        return source, notes
    target = os.path.join(into, config["name"])
    if os.path.exists(target):
        shutil.rmtree(target)
    # The adapter and its templates; not the scripts beside them
    # (benchmarks/xbench also holds side-by-side.sh).
    shutil.copytree(directory, target, ignore=shutil.ignore_patterns("*.sh"))
    for template, text in rendered.items():
        with open(os.path.join(target, template), "w") as f:
            f.write(text)
    with open(source) as f:
        text = f.read()
    text = re.sub(r'^workdir\s*=\s*"[^"]*"', 'workdir = "/tmp/xbench/servers/pep-%s"'
                  % config["name"], text, flags=re.M)
    text = shiftPorts(text, offset)
    path = os.path.join(target, "adapter.toml")
    with open(path, "w") as f:
        f.write(text)
    with open(path, "rb") as f:
        check = tomllib.load(f)
    assert check["name"] == config["name"] and check["workdir"].startswith("/tmp/"), check
    if offset:
        changes.append("ports moved by %+d (c2s %d)" % (offset, check["port"]))
    for change in changes:
        log("  [%s] %s" % (config["name"], change))
    return path, changes


def generatorCommand(args, adapter, pids: list[int], jsonPath: str) -> list[str]:
    users, rosterSize = SCALES[args.scale]
    return ((["taskset", "-c", args.gen_cpus] if args.gen_cpus else [])
            + [args.gen_python, "-m", "xmppdbench.load", "pep", "--users", str(users),
               "--roster-size", str(rosterSize), "--host", adapter.host,
               "--port", str(adapter.port), "--domain", adapter.domain,
               "--timeout", str(args.pep_timeout), "--json-out", jsonPath]
            + sum((["--server-pid", str(pid)] for pid in pids), [])
            + args.gen_args.split())


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, pattern="%.0f"):
    return "-" if value is None else pattern % value


LEGEND = (
    "contacts = PEP notifications delivered to contacts (expected users x roster size); "
    "own = notifications to the publisher's own resource (XEP-0163 §4.3.2; servers differ). "
    "dup = further copies of a notification a client already had (not counted above). "
    "CPU ms/1k = server CPU milliseconds per 1000 notifications to contacts (the headline, "
    "as the harness reports per 1000 deliveries); all = per 1000 of contacts + own. "
    "rate = contacts' notifications / seconds from the first publish to the last one. "
    "≈/s per core = 1e6 / median CPU ms/1k. p50/p99: publish to a contact's notification. "
    "caps q = disco#info queries for the clients' node#ver the server sent (in setup). "
    "Medians over repetitions; CPU also the minimum (the least-disturbed run).")



def stopOnSIGTERM() -> list:
    """
    Make SIGTERM end the run like Ctrl-C (servers stopped, results kept);
    the list it returns holds the signal once one came (exit status 1).
    """
    stopping: list = []

    def onSignal(signum, frame):
        stopping.append(signum)
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, onSignal)
    return stopping


def saveSummary(out: str, meta: dict, runs: list, render) -> None:
    """Write C{summary.json} and its markdown (C{render}) into C{out}."""
    data = {"meta": meta, "runs": runs}
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(data, f, indent=1)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(render(data))


def finishRuns(servers, save, out: str, log) -> None:
    """Stop what still runs, write the summary and print it (a run's end, interrupted or not)."""
    for server in servers:
        if server.proc:
            server.stop()
    save()
    log("results: %s/summary.md" % out)
    with open(os.path.join(out, "summary.md")) as f:
        print(f.read())


def exitStatus(runs: list, stopping: list) -> int:
    """1 when stopped by a signal, 2 when a run failed (no phases, or an error), else 0."""
    failed = [r for r in runs if not (r.get("result") or {}).get("phases")
              or (r.get("result") or {}).get("error")]
    return 1 if stopping else 2 if failed else 0


def render(data: dict) -> str:
    """summary.json -> markdown: one row per server (medians), then failures."""
    meta = data.get("meta", {})
    lines = ["# PEP side by side (%s scale, %s users, cliques of %s)"
             % (meta.get("scale"), meta.get("users"), (meta.get("roster_size") or 0) + 1), "",
             "%s; load before %s; server on CPUs `%s`, generator on `%s`" % (
                 meta.get("time"), meta.get("loadavg"), meta.get("server_cpus"),
                 meta.get("gen_cpus")), ""]
    for name, server in meta.get("servers", {}).items():
        lines.append("- %s %s%s" % (name, server.get("version") or "",
                                    ": " + "; ".join(server["pep_changes"])
                                    if server.get("pep_changes") else ""))
    lines += ["", "| server | reps | contacts (expected) | own | dup | server CPU ms/1k (med / min) "
              "| all: CPU ms/1k | ≈/s per core | rate /s | gen CPU ms/1k | server util (+wait) "
              "| p50 ms | p99 ms | peak RSS MB | caps q | bound |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    byServer, problems = {}, []
    for run in data.get("runs", []):
        result = run.get("result") or {}
        phases = {p["phase"]: p for p in result.get("phases", [])}
        byServer.setdefault(run["server"], [])
        if result.get("error") or "pep" not in phases:
            problems.append("- %s rep %s FAILED: %s" % (run["server"], run["rep"],
                                                        result.get("error") or run.get("note")
                                                        or "no result"))
            continue
        pep, settle = phases["pep"], phases.get("caps-presence", {})
        byServer[run["server"]].append((pep, settle))
        if pep["count"] < pep.get("expected", 0) or pep.get("publish_errors") \
                or settle.get("incomplete_users") or pep.get("lost_connections"):
            problems.append("- %s rep %s: %d of %d notifications to contacts, publish errors %s, "
                            "%s users without a full roster, %s connections lost" % (
                                run["server"], run["rep"], pep["count"], pep.get("expected", 0),
                                pep.get("publish_errors"), settle.get("incomplete_users"),
                                pep.get("lost_connections")))
    for name, runs in byServer.items():
        if not runs:
            lines.append("| %s | 0 | FAILED |" % name + " |" * 13)
            continue
        peps = [pep for pep, _ in runs]

        def med(key, peps=peps):
            return median([p.get(key) for p in peps])
        cost = [p["server_cpu_ms_per_1k"] for p in peps if "server_cpu_ms_per_1k" in p]
        medCost = median(cost)
        lines.append("| %s | %d | %s (%s) | %s | %s | %s / %s | %s | %s | %s | %s | %s%% (+%s) "
                     "| %s | %s | %s | %s | %s |" % (
                         name, len(runs), fmt(med("count")), fmt(med("expected")),
                         fmt(med("owner_notifications")),
                         fmt(median([p.get("duplicate_notifications", 0)
                                     + p.get("owner_duplicate_notifications", 0) for p in peps])),
                         fmt(medCost, "%.1f"),
                         fmt(min(cost) if cost else None, "%.1f"),
                         fmt(med("server_cpu_ms_per_1k_all"), "%.1f"),
                         fmt(1e6 / medCost if medCost else None), fmt(med("rate_per_s")),
                         fmt(med("gen_cpu_ms_per_1k"), "%.1f"),
                         fmt(100 * (med("server_cpu_util") or 0)),
                         fmt(100 * (med("server_wait_util") or 0)),
                         fmt(median([(p.get("latency") or {}).get("p50_ms") for p in peps]), "%.1f"),
                         fmt(median([(p.get("latency") or {}).get("p99_ms") for p in peps]), "%.1f"),
                         fmt((med("server_rss_kb_peak") or 0) / 1024),
                         fmt(median([s.get("caps_queries_answered") for _, s in runs])),
                         ", ".join(sorted({p.get("bound", "?") for p in peps}))))
    if problems:
        lines += ["", "Problems:"] + problems
    lines += ["", LEGEND, ""]
    return "\n".join(lines)


def parseArgs(argv):
    parser = argparse.ArgumentParser(prog="pepbench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--servers", default="prosody,ejabberd",
        help="comma list: harness adapter names (its servers/NAME) or adapter.toml paths")
    add("--scale", default="quick", choices=sorted(SCALES))
    add("--repeat", type=int, default=1)
    add("--bench", default=DEFAULT_BENCH, help="the team's harness (read-only)")
    add("--out", default=None, help="results directory (default /tmp/xbench-results/pep-<time>)")
    add("--server-cpus", default="0")
    add("--gen-cpus", default="1")
    add("--gen-python", default="/tmp/xbench-venv/bin/python"
        if os.path.exists("/tmp/xbench-venv/bin/python") else sys.executable)
    add("--gen-args", default="", help="appended to every generator call")
    add("--set", action="append", default=[], metavar="SERVER.KEY=VALUE",
        help="override a top-level adapter key, e.g. xmppd.xmppd_bin=/venv/bin")
    add("--port-offset", type=int, default=50,
        help="move the PEP copies' ports away from the harness's (0: keep them)")
    add("--pep-timeout", type=float, default=60,
        help="generator: seconds to wait for presences, and for the notifications")
    add("--timeout", type=float, default=600, help="per generator run, seconds")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parseArgs(sys.argv[1:] if argv is None else argv)
    sys.path.insert(0, os.path.abspath(args.bench))
    from xbench import adapters, provision  # the harness, used read-only

    runId = time.strftime("%Y%m%d-%H%M%S")
    out = os.path.abspath(args.out or "/tmp/xbench-results/pep-" + runId)
    os.makedirs(out, exist_ok=True)
    logFile = open(os.path.join(out, "run.log"), "a")

    def log(message):
        line = "%s %s" % (time.strftime("%H:%M:%S"), message)
        print(line, flush=True)
        logFile.write(line + "\n")
        logFile.flush()

    overrides = {}
    for setting in args.set:
        key, value = setting.split("=", 1)
        server, key = key.split(".", 1)
        overrides.setdefault(server, {})[key] = value
    users, rosterSize = SCALES[args.scale]
    meta = {"run_id": runId, "argv": sys.argv, "scale": args.scale, "users": users,
            "roster_size": rosterSize, "server_cpus": args.server_cpus,
            "gen_cpus": args.gen_cpus, "gen_python": args.gen_python,
            "time": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "loadavg": open("/proc/loadavg").read().strip(), "servers": {}}
    adapterDir = os.path.join(out, "adapters")
    servers = []
    for spec in args.servers.split(","):
        source = adapters.find_adapter(spec)
        with open(source, "rb") as f:
            name = tomllib.load(f)["name"]
        path, changes = pepAdapter(source, adapterDir, args.port_offset, log,
                                   overrides.get(name))
        server = adapters.Adapter(path, runId, overrides.get(name), log=log)
        server.pepChanges = changes
        servers.append(server)

    stopping = stopOnSIGTERM()

    runs = []

    def save():
        saveSummary(out, meta, runs, render)

    try:
        dataset = os.path.join("/tmp/xbench", "dataset-pep-%s" % args.scale)
        log("dataset %s: %s" % (dataset, provision.make(dataset, servers[0].domain, 0,
                                                        users, rosterSize)))
        for server in servers:
            if server.domain != servers[0].domain:
                raise SystemExit("all servers must share one domain (the data set's JIDs)")
            meta["servers"][server.name] = {
                "adapter": server.path, "version": server.version(), "port": server.port,
                "workdir": server.workdir, "pep_changes": server.pepChanges}
        env = dict(os.environ, PYTHONPATH=BENCHMARKS)
        for rep in range(args.repeat):
            order = servers if rep % 2 == 0 else list(reversed(servers))
            for server in order:
                log("== rep %d  pep  on %s" % (rep + 1, server.name))
                jsonPath = os.path.join(out, "%s.pep.%d.json" % (server.name, rep + 1))
                result, note, command = None, None, None
                # fresh data for every run: no PEP node or item of an earlier run survives
                log("prepare %s in %s" % (server.name, server.workdir))
                server.prepare(dataset, args.server_cpus)
                server.start(args.server_cpus)
                try:
                    command = generatorCommand(args, server, server.measure_pids(), jsonPath)
                    log("  $ " + " ".join(command))
                    done = subprocess.run(command, cwd=BENCHMARKS, env=env, timeout=args.timeout,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          text=True)
                    for line in done.stdout.strip().splitlines()[-30:]:
                        log("  | " + line)
                    if os.path.exists(jsonPath):
                        with open(jsonPath) as f:
                            result = json.load(f)
                    else:
                        note = "generator exit %d without a result: %s" % (
                            done.returncode, done.stdout.strip()[-300:])
                except subprocess.TimeoutExpired:
                    note = "generator timed out after %.0f s" % args.timeout
                    log("  " + note)
                finally:
                    server.stop()
                runs.append({"server": server.name, "scenario": "pep", "rep": rep + 1,
                             "cmd": " ".join(command or []), "result": result, "note": note})
                save()
    except KeyboardInterrupt:
        log("interrupted")
    finally:
        finishRuns(servers, save, out, log)
    return exitStatus(runs, stopping)
