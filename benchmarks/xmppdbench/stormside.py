# -*- test-case-name: tests.test_benchmark_smoke -*-
"""
The reconnect storm side by side (issue 16, item 7): xmppd, Prosody and
ejabberd in one run, through the team's harness (C{../shared/bench},
read-only) for starting, provisioning and stopping each server, and this
directory's generator (L{xmppdbench.storm}) for the load.

  python3 benchmarks/stormbench.py --scale quick             # ~2 minutes
  python3 benchmarks/stormbench.py --scale full --repeat 1   # 5000 clients

Each server runs from a copy of its harness adapter in the run's own
directory (C{OUT/adapters/NAME}, workdir C{/tmp/xbench/servers/storm-NAME},
ports moved by C{--port-offset}), with what the storm needs switched on
(L{STORM_SERVERS}): stream management with resumption everywhere
(Prosody's bundled C{mod_smacks}, ejabberd's C{mod_stream_mgmt}, xmppd's
C{sm}), FAST for xmppd, and hashed password storage for the SCRAM runs
(Prosody's C{internal_hashed}, SCRAM-SHA-1 keys only; ejabberd's
C{auth_password_format: scram} with C{auth_scram_hash: sha256}).  The
issue's reference, ejabberd's PLAIN login with plaintext passwords, runs
from the harness's own ejabberd configuration.

Every server is provisioned once per run; then for each kind of
reconnect (L{PLAN}) it is started, the generator logs its clients in, and:
for the restart kinds the server is stopped (its stop command, or SIGTERM
to its process group) and started again on the same data, and the
generator is told the new PIDs; for the resume kinds (XEP-0198 sessions
live in memory and cannot outlive the process) the server keeps running
and the generator breaks all its TCP connections at once.  Then all
clients come back and the generator measures the server.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib

from .pepside import (BENCHMARKS, DEFAULT_BENCH, HERE, REPOSITORY, exitStatus, finishRuns, fmt,
                      median, saveSummary, shiftPorts, stopOnSIGTERM)

SCALES = {"full": 5000, "quick": 500, "smoke": 50}


def prosodySmacks(text: str) -> str:
    enabled = re.search(r"^modules_enabled\s*=\s*\{([^}]*)\}", text, re.M)
    if enabled is None:
        raise ValueError("prosody.cfg.lua: no modules_enabled")
    text = (text[:enabled.end(1)].rstrip() + ' "smacks"; ' + text[enabled.end(1):])
    return text + "\n-- storm: sessions stay resumable through the whole run\n" \
                  "smacks_hibernation_time = 600\n"


def ejabberdStreamMgmt(text: str) -> str:
    modules = re.search(r"^modules:\s*\n", text, re.M)
    if modules is None:
        raise ValueError("ejabberd.yml: no modules: section")
    return (text[:modules.end()] + "  mod_stream_mgmt:\n    resume_timeout: 600\n"
            + text[modules.end():])


def ejabberdScram(text: str) -> str:
    if not re.search(r"^auth_password_format: plain$", text, re.M):
        raise ValueError("ejabberd.yml: no auth_password_format: plain to replace")
    text = re.sub(r"^auth_password_format: plain$",
                  "auth_password_format: scram\nauth_scram_hash: sha256", text, flags=re.M)
    return ejabberdStreamMgmt(text)


def xmppdStorm(text: str) -> str:
    modules = re.search(r"^modules\s*=\s*\[([^\]]*)\]", text, re.M)
    if modules is None:
        raise ValueError("xmppd.toml: no [server] modules")
    return text[:modules.end(1)] + ', "sm", "fast"' + text[modules.end(1):]


#: name -> (harness adapter or path, port offset, template edits, what changed)
STORM_SERVERS = {
    "prosody-hashed": ("prosody-hashed", 160, {"prosody.cfg.lua": prosodySmacks},
                       "mod_smacks (XEP-0198) added; internal_hashed (SCRAM-SHA-1 keys)"),
    "ejabberd-scram": ("ejabberd", 170, {"ejabberd.yml": ejabberdScram},
                       "auth_password_format: scram, auth_scram_hash: sha256; "
                       "mod_stream_mgmt added"),
    "ejabberd-plain": ("ejabberd", 180, {"ejabberd.yml": ejabberdStreamMgmt},
                       "the harness's plaintext storage (the issue's reference); "
                       "mod_stream_mgmt added"),
    "xmppd": (os.path.join(BENCHMARKS, "xbench", "adapter.toml"), 160,
              {"xmppd.toml": xmppdStorm}, 'modules + "sm", "fast"'),
}

#: server -> kinds of reconnect measured on it (xmppdbench.storm.KINDS).
#: Prosody 0.12 and ejabberd 23.01 have no SASL2, Bind 2 or FAST.
PLAN = {
    "prosody-hashed": ["scram", "resume"],
    "ejabberd-scram": ["scram", "resume"],
    "ejabberd-plain": ["plain"],
    "xmppd": ["scram", "sasl2", "fast", "fast_new", "resume", "fast_resume"],
}
RESTART_KINDS = ("scram", "plain", "sasl2", "fast", "fast_new")


#: ejabberd imports this many accounts per C{import_piefxis} call: one call
#: with 5000 passwords to hash into SCRAM outlasts ejabberdctl's 60 s RPC
#: timeout on a loaded machine.
EJABBERD_CHUNK = 500
EJABBERD_CHUNKED = ('provision = "for f in {dataset}/chunks/*.xml; do {ctl} import_piefxis $f '
                    '|| exit 1; done; {ctl} registered_users {domain} | wc -l"')


def splitPIE(dataset: str, size: int = EJABBERD_CHUNK) -> int:
    """
    C{dataset}/xep227.xml (accounts without rosters, one C{<user>} a line,
    as C{xbench.provision} writes it) as files of C{size} accounts in
    C{dataset}/chunks; returns how many.
    """
    with open(os.path.join(dataset, "xep227.xml")) as f:
        lines = f.read().splitlines()
    users = [line for line in lines if line.startswith("<user ")]
    head = [line for line in lines[:3] if not line.startswith("<user ")]
    os.makedirs(os.path.join(dataset, "chunks"), exist_ok=True)
    for n, start in enumerate(range(0, len(users), size)):
        with open(os.path.join(dataset, "chunks", "%04d.xml" % n), "w") as f:
            f.write("\n".join(head + users[start:start + size] + ["</host>", "</server-data>", ""]))
    return (len(users) + size - 1) // size


def stormAdapter(name: str, into: str, overrides: dict, log, profile: str = "") -> str:
    """
    A copy of the harness adapter for C{name} with L{STORM_SERVERS}'s edits;
    with C{profile} (C{"cpu"} or C{"wall"}), an xmppd runs under cProfile
    timed by that clock (L{xmppdbench.cpuprofile}) and dumps its statistics to
    C{log/xmppd.prof} in its workdir when stopped.
    """
    from xbench import adapters
    spec, offset, edits, _ = STORM_SERVERS[name]
    source = adapters.find_adapter(spec)
    directory = os.path.dirname(source)
    target = os.path.join(into, name)
    if os.path.exists(target):
        shutil.rmtree(target)
    shutil.copytree(directory, target, ignore=shutil.ignore_patterns("*.sh"))
    for template, edit in edits.items():
        with open(os.path.join(directory, template)) as f:
            text = edit(f.read())
        with open(os.path.join(target, template), "w") as f:
            f.write(text)
    with open(source) as f:
        text = f.read()
    text = re.sub(r'^name\s*=\s*"[^"]*"', 'name = "%s"' % name, text, flags=re.M)
    text = re.sub(r'^workdir\s*=\s*"[^"]*"', 'workdir = "/tmp/xbench/servers/storm-%s"' % name,
                  text, flags=re.M)
    text = shiftPorts(text, offset)
    if name == "ejabberd-scram":
        text, n = re.subn(r"^provision\s*=.*$", EJABBERD_CHUNKED.replace("\\", "\\\\"), text,
                          count=1, flags=re.M)
        assert n == 1, "ejabberd adapter without a provision command"
    if profile and "{xmppd_bin}/twistd -n" in text:
        # CPU time, from the reactor's start (L{xmppdbench.cpuprofile})
        wrapper = "{xmppd_bin}/python %s%s {workdir}/log/xmppd.prof " % (
            os.path.join(HERE, "cpuprofile.py"), " --wall" if profile == "wall" else "")
        text = text.replace("{xmppd_bin}/twistd -n", wrapper + "{xmppd_bin}/twistd -n")
    path = os.path.join(target, "adapter.toml")
    with open(path, "w") as f:
        f.write(text)
    with open(path, "rb") as f:
        check = tomllib.load(f)
    assert check["name"] == name and check["workdir"].startswith("/tmp/"), check
    log("  [%s] %s; c2s port %d" % (name, STORM_SERVERS[name][3], check["port"]))
    return path


def generatorCommand(args, server, kind: str, clients: int, pids, jsonPath: str) -> list[str]:
    return ((["taskset", "-c", args.gen_cpus] if args.gen_cpus else [])
            + [args.gen_python, "-m", "xmppdbench.storm", "--kind", kind,
               "--clients", str(clients), "--host", server.host, "--port", str(server.port),
               "--domain", server.domain, "--window", str(args.window),
               "--json-out", jsonPath]
            + sum((["--server-pid", str(pid)] for pid in pids), [])
            + args.gen_args.split())


def runOne(args, server, kind: str, clients: int, jsonPath: str, log) -> tuple:
    """One storm of C{kind} on a provisioned C{server}; (result, note, command)."""
    server.start(args.server_cpus)
    command = generatorCommand(args, server, kind, clients, server.measure_pids(), jsonPath)
    log("  $ " + " ".join(command))
    env = dict(os.environ, PYTHONPATH=BENCHMARKS)
    proc = subprocess.Popen(command, cwd=BENCHMARKS, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    note, output = None, []
    try:
        deadline = time.monotonic() + args.timeout
        line = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            output.append(line.rstrip())
            if line.startswith("CONNECTED"):
                break
        if line.startswith("CONNECTED"):
            log("  | " + line.strip())
            if kind in RESTART_KINDS:
                t0 = time.monotonic()
                server.stop()
                server.start(args.server_cpus)
                log("  restarted in %.1f s" % (time.monotonic() - t0))
            pids = server.measure_pids()
            proc.stdin.write("GO %s\n" % " ".join(map(str, pids)))
            proc.stdin.flush()
        else:
            proc.stdin.close()
        rest, _ = proc.communicate(timeout=max(10, deadline - time.monotonic()))
        output += rest.splitlines()
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        note = "generator timed out after %.0f s" % args.timeout
        log("  " + note)
    finally:
        server.stop()
    profile = os.path.join(server.workdir, "log", "xmppd.prof")
    if os.path.exists(profile):
        # the last start's: the server the storm came to
        shutil.move(profile, jsonPath[:-len(".json")] + ".prof")
        if os.path.exists(profile + ".gc.json"):
            shutil.move(profile + ".gc.json", jsonPath[:-len(".json")] + ".gc.json")
    for line in output[-12:]:
        log("  | " + line)
    result = None
    if os.path.exists(jsonPath):
        with open(jsonPath) as f:
            result = json.load(f)
    elif note is None:
        note = "generator exit %s without a result: %s" % (proc.returncode,
                                                          " / ".join(output[-5:]))
    return result, note, command


LEGEND = (
    "CPU ms/1k = server CPU milliseconds per 1000 reconnects (the headline; median / min "
    "over repetitions). all back = seconds from the first reconnect to the last client "
    "back (presence echo; `<resumed/>` for the resume kinds). p50/p99 = one client's "
    "reconnect, from connect() to back, in ms. Restart kinds: the server was stopped and "
    "started again before the storm; resume kinds: no restart, the generator broke all TCP "
    "connections at once (RST) and every client resumed its XEP-0198 session.")

KIND_NAMES = {
    "scram": "(a) SCRAM + RFC 6120 bind, after a restart",
    "plain": "PLAIN, plaintext passwords, after a restart (the reference)",
    "sasl2": "SASL2 SCRAM-SHA-256 + Bind 2, after a restart",
    "fast": "(b) SASL2 + Bind 2 + FAST (HT-SHA-256-NONE), after a restart",
    "fast_new": "(b) the same, each token's first use (promoted: a write)",
    "resume": "(c) SCRAM + XEP-0198 resume, connections broken",
    "fast_resume": "(c) SASL2 + FAST + inline XEP-0198 resume, connections broken",
}


def render(data: dict) -> str:
    meta = data.get("meta", {})
    lines = ["# Reconnect storm side by side (%s scale, %s clients)"
             % (meta.get("scale"), meta.get("clients")), "",
             "%s; load before %s; server on CPUs `%s`, generator on `%s`, %s in flight" % (
                 meta.get("time"), meta.get("loadavg"), meta.get("server_cpus"),
                 meta.get("gen_cpus"), meta.get("window")), ""]
    for name, server in meta.get("servers", {}).items():
        lines.append("- %s %s: %s" % (name, server.get("version") or "", server.get("changes")))
    lines += ["", "| reconnect | server | mechanism | reps | back | CPU ms/1k (med / min) "
              "| all back s | p50 ms | p99 ms | gen CPU ms/1k | server util (+wait) "
              "| peak RSS MB | bound |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    groups, problems = {}, []
    for run in data.get("runs", []):
        result = run.get("result") or {}
        phases = {p["phase"]: p for p in result.get("phases", [])}
        key = (run["kind"], run["server"])
        groups.setdefault(key, [])
        if "reconnect" not in phases:
            problems.append("- %s %s rep %s FAILED: %s" % (
                run["server"], run["kind"], run["rep"],
                result.get("error") or run.get("note") or "no result"))
            continue
        phase = phases["reconnect"]
        groups[key].append(phase)
        if result.get("error") or phase.get("errors"):
            problems.append("- %s %s rep %s: %s; %s" % (run["server"], run["kind"], run["rep"],
                                                        result.get("error"), phase.get("errors")))
    for (kind, server), phases in sorted(groups.items(),
                                         key=lambda item: list(KIND_NAMES).index(item[0][0])):
        if not phases:
            lines.append("| %s | %s | FAILED |" % (KIND_NAMES[kind], server) + " |" * 10)
            continue

        def med(key, phases=phases):
            return median([p.get(key) for p in phases])
        cost = [p["server_cpu_ms_per_1k"] for p in phases if "server_cpu_ms_per_1k" in p]
        lines.append("| %s | %s | %s | %d | %s/%s | %s / %s | %s | %s | %s | %s | %s%% (+%s) "
                     "| %s | %s |" % (
                         KIND_NAMES[kind], server,
                         ", ".join(sorted({m for p in phases for m in p.get("mechanisms", {})
                                           if m})),
                         len(phases), fmt(med("count")), fmt(med("clients")),
                         fmt(median(cost)), fmt(min(cost) if cost else None),
                         fmt(med("all_back_s"), "%.2f"),
                         fmt(median([(p.get("latency") or {}).get("p50_ms") for p in phases]),
                             "%.1f"),
                         fmt(median([(p.get("latency") or {}).get("p99_ms") for p in phases]),
                             "%.1f"),
                         fmt(med("gen_cpu_ms_per_1k")),
                         fmt(100 * (med("server_cpu_util") or 0)),
                         fmt(100 * (med("server_wait_util") or 0)),
                         fmt((med("server_rss_kb_peak") or 0) / 1024),
                         ", ".join(sorted({p.get("bound", "?") for p in phases}))))
    if problems:
        lines += ["", "Problems:"] + problems
    lines += ["", LEGEND, ""]
    return "\n".join(lines)


def parseArgs(argv):
    parser = argparse.ArgumentParser(prog="stormbench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--servers", default=",".join(PLAN), help="comma list of " + ", ".join(PLAN))
    add("--kinds", default="", help="comma list: only these kinds of reconnect")
    add("--scale", default="quick", choices=sorted(SCALES))
    add("--clients", type=int, default=0, help="instead of the scale's")
    add("--repeat", type=int, default=1)
    add("--window", type=int, default=1000, help="connections in flight (0: all)")
    add("--bench", default=DEFAULT_BENCH, help="the team's harness (read-only)")
    add("--out", default=None)
    add("--server-cpus", default="0")
    add("--gen-cpus", default="1")
    add("--gen-python", default="/tmp/storm-venv/bin/python"
        if os.path.exists("/tmp/storm-venv/bin/python") else sys.executable)
    add("--gen-args", default="")
    add("--set", action="append", default=[], metavar="SERVER.KEY=VALUE",
        help="override a top-level adapter key, e.g. xmppd.xmppd_bin=/venv/bin")
    add("--timeout", type=float, default=900, help="per generator run, seconds")
    add("--profile-xmppd", nargs="?", const="cpu", default="", choices=["cpu", "wall"],
        help="run xmppd under cProfile timed by CPU time (or the wall clock: cheaper, right "
             "on a quiet machine; xmppdbench/cpuprofile.py): NAME.KIND.REP.prof beside the "
             "JSON, the profile of the server the storm reconnected to, from its reactor's "
             "start")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parseArgs(sys.argv[1:] if argv is None else argv)
    sys.path.insert(0, os.path.abspath(args.bench))
    from xbench import adapters, provision  # the harness, used read-only

    # xmppd runs this checkout (the adapter's environment inherits PYTHONPATH)
    os.environ["PYTHONPATH"] = REPOSITORY + (
        os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")
    runId = time.strftime("%Y%m%d-%H%M%S")
    out = os.path.abspath(args.out or "/tmp/xbench-results/storm-" + runId)
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
        name, key = key.split(".", 1)
        overrides.setdefault(name, {})[key] = value
    overrides.setdefault("xmppd", {}).setdefault(
        "xmppd_bin", os.path.dirname(sys.executable)
        if os.path.exists(os.path.join(os.path.dirname(sys.executable), "twistd"))
        else "/work/main/.venv/bin")
    clients = args.clients or SCALES[args.scale]
    kinds = set(args.kinds.split(",")) if args.kinds else None
    commit = subprocess.run(["git", "-C", REPOSITORY, "describe", "--always", "--dirty"],
                            stdout=subprocess.PIPE, text=True).stdout.strip()
    meta = {"run_id": runId, "argv": sys.argv, "scale": args.scale, "clients": clients,
            "window": args.window, "server_cpus": args.server_cpus, "gen_cpus": args.gen_cpus,
            "gen_python": args.gen_python, "xmppd_commit": commit,
            "time": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "loadavg": open("/proc/loadavg").read().strip(), "servers": {}}
    servers = []
    for name in args.servers.split(","):
        path = stormAdapter(name, os.path.join(out, "adapters"), overrides.get(name), log,
                            args.profile_xmppd)
        server = adapters.Adapter(path, runId, overrides.get(name), log=log)
        servers.append(server)
        meta["servers"][name] = {"adapter": path, "version": server.version(),
                                 "port": server.port, "changes": STORM_SERVERS[name][3]}
    meta["servers"].get("xmppd", {})["version"] = "xmppd " + commit
    runs = []

    def save():
        saveSummary(out, meta, runs, render)

    stopping = stopOnSIGTERM()
    try:
        dataset = os.path.join(out, "dataset")
        log("dataset %s: %s, %d chunks for ejabberd-scram" % (
            dataset, provision.make(dataset, servers[0].domain, clients, 0, 20),
            splitPIE(dataset)))
        for rep in range(args.repeat):
            order = servers if rep % 2 == 0 else list(reversed(servers))
            for server in order:
                if rep == 0:
                    # once: a storm changes no account (ejabberd's import of
                    # 5000 SCRAM-hashed passwords also nears ejabberdctl's
                    # 60 s RPC timeout on a loaded machine)
                    log("== %s: prepare in %s" % (server.name, server.workdir))
                    server.prepare(dataset, args.server_cpus)
                for kind in PLAN[server.name]:
                    if kinds is not None and kind not in kinds:
                        continue
                    log("== rep %d  %s  on %s" % (rep + 1, kind, server.name))
                    jsonPath = os.path.join(out, "%s.%s.%d.json" % (server.name, kind, rep + 1))
                    result, note, command = runOne(args, server, kind, clients, jsonPath, log)
                    runs.append({"server": server.name, "kind": kind, "rep": rep + 1,
                                 "cmd": " ".join(command), "result": result, "note": note})
                    save()
    except KeyboardInterrupt:
        log("interrupted")
    finally:
        finishRuns(servers, save, out, log)
    return exitStatus(runs, stopping)


__all__ = ["main", "render", "stormAdapter", "PLAN", "STORM_SERVERS"]
