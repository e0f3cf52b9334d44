# -*- test-case-name: tests.test_benchmark_smoke -*-
"""
1:1 messages and idle sessions over WebSocket next to the same over TCP,
for Prosody, ejabberd and xmppd in one run (issue 15 item 8: a message
between two WebSocket clients may cost xmppd at most 1.5 times a TCP one),
through the team's harness (C{../shared/bench}), which has no WebSocket
scenario and is read-only.

  python3 benchmarks/wsbench.py --scale quick --repeat 1
  python3 benchmarks/wsbench.py --scale full --repeat 3 \\
      --servers prosody,ejabberd,benchmarks/xbench/adapter.toml \\
      --set xmppd.xmppd_bin=VENV/bin

As L{xmppdbench.pepside} does, it uses the harness's adapters unchanged
(workdir, certificates, provisioning, C{taskset}, start and stop of the
whole process tree) and its data set writer, each server from a copy of
its adapter in this run's directory whose config switches WebSocket on
(L{enableWebSocket}), with its own workdir (C{/tmp/xbench/servers/ws-NAME})
and its ports moved by C{--port-offset}.  The load is this directory's
generator, with C{--transport ws} for the C{*_ws} scenarios: plain
C{ws://} on loopback to C{/xmpp-websocket} on each server's HTTP port, as
the TCP clients use plain TCP (no TLS for any server: the comparison is of
the framing, not of TLS, which costs the same on both transports).

Every server is prepared (provisioned) once; then, as C{xbench.run} does,
each (repetition, scenario, server) runs on a freshly started instance,
the server order alternating between repetitions, TCP and WebSocket of one
server back to back.  An xmppd adapter runs this checkout (it is put first
on C{PYTHONPATH}), so the report measures the commit it names.
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

from .pepside import (exitStatus, finishRuns, fmt, median, saveSummary, shiftPorts,
                      stopOnSIGTERM)

HERE = os.path.dirname(os.path.abspath(__file__))
BENCHMARKS = os.path.dirname(HERE)
REPOSITORY = os.path.dirname(BENCHMARKS)
DEFAULT_BENCH = os.path.join(os.path.dirname(REPOSITORY), "shared", "bench")
WS_PATH = "/xmpp-websocket"

#: Generator arguments per scale; the C{*_ws} ones are the same over WebSocket.
SCENARIOS = {
    "full": {"msg": ["msg", "--pairs", "500", "--window", "4", "--warmup", "3",
                     "--duration", "20"],
             "idle": ["idle", "--levels", "1000", "--settle", "5", "--hold", "5",
                      "--concurrency", "100"]},
    "quick": {"msg": ["msg", "--pairs", "50", "--window", "4", "--warmup", "1",
                      "--duration", "3"],
              "idle": ["idle", "--levels", "200", "--settle", "1", "--hold", "2"]},
}
for _table in SCENARIOS.values():
    for _name in list(_table):
        _table[_name + "_ws"] = _table[_name] + ["--transport", "ws"]
        _table[_name + "_bosh"] = _table[_name] + ["--transport", "bosh"]
ORDER = ["msg", "msg_ws", "msg_bosh", "idle", "idle_ws", "idle_bosh"]
#: u1..uN the data set needs: both sides of every pair, every idle session.
USERS = {"full": 1000, "quick": 200}

PROSODY_WS = '"websocket";'
EJABBERD_WS = "      %s: ejabberd_http_ws\n" % WS_PATH
#: The c2s listener's backlog in the harness's template, given to the HTTP
#: listener too: with ejabberd's default (5) a storm of WebSocket logins
#: loses SYNs, and some clients wait out TCP's retransmission back-off.
EJABBERD_BACKLOG = "backlog: 1024"
BOSH_PATH = "/http-bind"
PROSODY_BOSH = '"bosh";'
EJABBERD_BOSH = "      %s: mod_bosh\n" % BOSH_PATH
EJABBERD_BOSH_MODULE = "  mod_bosh: {}\n"
XMPPD_HTTP = 'endpoint = "tcp:{http_port}:interface={host}:backlog=1024"'


def enableWebSocket(templateName: str, text: str) -> tuple[str, str | None]:
    """
    The config C{text} of template C{templateName} with XMPP over WebSocket
    at C{/xmpp-websocket} on the server's plain HTTP port, and what was
    changed (None if nothing had to be).

    Prosody (0.12): C{"websocket"} (mod_websocket, which serves
    C{/xmpp-websocket} on C{http_ports}) joins C{modules_enabled}.
    ejabberd: C{/xmpp-websocket: ejabberd_http_ws} joins the
    C{request_handlers} of its C{ejabberd_http} listener.  xmppd: the
    C{[http]} C{endpoint} listens on C{{http_port}} of C{{host}}.
    """
    if templateName == "xmppd.toml":
        section = re.search(r"^\[http\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
        if section is None:
            return text + "\n[http]\n" + XMPPD_HTTP + '\ntls_endpoint = ""\n', \
                "xmppd: [http] endpoint on the http_port"
        body = section.group(1)
        endpoint = re.search(r'^endpoint\s*=\s*"([^"]*)"', body, re.M)
        if endpoint is not None and endpoint.group(1):
            return text, None
        if endpoint is None:
            body = "\n" + XMPPD_HTTP + body
        else:
            body = body[:endpoint.start()] + XMPPD_HTTP + body[endpoint.end():]
        return (text[:section.start(1)] + body + text[section.end(1):],
                "xmppd: [http] endpoint on the http_port (plain, loopback)")
    if templateName.endswith(".cfg.lua"):
        enabled = re.search(r"^modules_enabled\s*=\s*\{([^}]*)\}", text, re.M)
        if enabled is None:
            raise ValueError("%s: no modules_enabled list to add mod_websocket to"
                             % templateName)
        if re.search(r"""["']websocket["']""", enabled.group(1)):
            return text, None
        if not re.search(r"^http_ports\s*=", text, re.M):
            raise ValueError("%s: no http_ports for mod_websocket to serve on" % templateName)
        text = (text[:enabled.start(1)] + enabled.group(1).rstrip() + " " + PROSODY_WS + " "
                + text[enabled.end(1):])
        return text, 'Prosody: added "websocket" (mod_websocket) to modules_enabled'
    if templateName == "ejabberd.yml":
        if "ejabberd_http_ws" in text:
            return text, None
        handlers = re.search(r"^(\s+)module: ejabberd_http\s*\n(?:\1.*\n)*?\1request_handlers:\s*\n",
                             text, re.M)
        if handlers is None:
            raise ValueError("ejabberd.yml: no ejabberd_http listener with request_handlers")
        text = text[:handlers.end()] + EJABBERD_WS + text[handlers.end():]
        change = "ejabberd: added %s: ejabberd_http_ws to the ejabberd_http listener" % WS_PATH
        listener = text[handlers.start():handlers.end()]
        if "backlog:" not in listener:
            indent = handlers.group(1).rsplit("\n", 1)[-1]
            at = handlers.start() + len(handlers.group(1)) - len(indent)
            text = text[:at] + indent + EJABBERD_BACKLOG + "\n" + text[at:]
            change += ", with the c2s listener's %s" % EJABBERD_BACKLOG
        return text, change
    return text, None


def enableBosh(templateName: str, text: str) -> tuple[str, str | None]:
    """
    The config C{text} (WebSocket already on, L{enableWebSocket}) with BOSH
    (XEP-0206) at C{/http-bind} on the same plain HTTP port, and what was
    changed (None if nothing had to be).

    Prosody: C{"bosh"} (mod_bosh) joins C{modules_enabled}.  ejabberd:
    C{/http-bind: mod_bosh} joins the C{ejabberd_http} listener's
    C{request_handlers} and C{mod_bosh: {}} the C{modules}.  xmppd serves
    C{/http-bind} wherever its C{[http]} endpoint listens: nothing to do.
    """
    if templateName.endswith(".cfg.lua"):
        enabled = re.search(r"^modules_enabled\s*=\s*\{([^}]*)\}", text, re.M)
        if enabled is None:
            raise ValueError("%s: no modules_enabled list to add mod_bosh to" % templateName)
        if re.search(r"""["']bosh["']""", enabled.group(1)):
            return text, None
        text = (text[:enabled.start(1)] + enabled.group(1).rstrip() + " " + PROSODY_BOSH + " "
                + text[enabled.end(1):])
        return text, 'Prosody: added "bosh" (mod_bosh) to modules_enabled'
    if templateName == "ejabberd.yml":
        if "mod_bosh" in text:
            return text, None
        handlers = re.search(r"^(\s+)request_handlers:\s*\n", text, re.M)
        modules = re.search(r"^modules:\s*\n", text, re.M)
        if handlers is None or modules is None:
            raise ValueError("ejabberd.yml: no request_handlers or modules to add mod_bosh to")
        text = (text[:handlers.end()] + EJABBERD_BOSH + text[handlers.end():modules.end()]
                + EJABBERD_BOSH_MODULE + text[modules.end():])
        return text, "ejabberd: added %s: mod_bosh to the ejabberd_http listener, mod_bosh: {}" \
            % BOSH_PATH
    return text, None


def wsAdapter(source: str, into: str, offset: int, log) -> tuple[str, list[str]]:
    """
    A copy of the adapter at C{source} in C{into}/NAME with WebSocket on in
    its templates, workdir C{/tmp/xbench/servers/ws-NAME}, an C{http_port}
    (xmppd's adapter has none: its c2s port + 58) and every port moved by
    C{offset}; returns its path and the changes made.
    """
    directory = os.path.dirname(source)
    with open(source, "rb") as f:
        config = tomllib.load(f)
    changes, rendered = [], {}
    for template in config.get("templates", []):
        with open(os.path.join(directory, template)) as f:
            text, change = enableWebSocket(os.path.basename(template), f.read())
        text, boshChange = enableBosh(os.path.basename(template), text)
        changes += [c for c in (change, boshChange) if c]
        if change or boshChange:
            rendered[template] = text
    target = os.path.join(into, config["name"])
    if os.path.exists(target):
        shutil.rmtree(target)
    shutil.copytree(directory, target, ignore=shutil.ignore_patterns("*.sh"))
    for template, text in rendered.items():
        with open(os.path.join(target, template), "w") as f:
            f.write(text)
    with open(source) as f:
        text = f.read()
    text = re.sub(r'^workdir\s*=\s*"[^"]*"', 'workdir = "/tmp/xbench/servers/ws-%s"'
                  % config["name"], text, flags=re.M)
    if "http_port" not in config.get("vars", {}):
        vars_ = re.search(r"^\[vars\]\s*\n", text, re.M)
        line = "http_port = %d\n" % (config["port"] + 58)
        text = (text[:vars_.end()] + line + text[vars_.end():] if vars_
                else text + "\n[vars]\n" + line)
    text = shiftPorts(text, offset)
    path = os.path.join(target, "adapter.toml")
    with open(path, "w") as f:
        f.write(text)
    with open(path, "rb") as f:
        check = tomllib.load(f)
    assert check["name"] == config["name"] and check["workdir"].startswith("/tmp/"), check
    changes.append("ports moved by %+d (c2s %d, http %d)"
                   % (offset, check["port"], check["vars"]["http_port"]))
    for change in changes:
        log("  [%s] %s" % (config["name"], change))
    return path, changes


def generatorCommand(args, adapter, scenario: str, pids: list[int], jsonPath: str) -> list[str]:
    return ((["taskset", "-c", args.gen_cpus] if args.gen_cpus else [])
            + [args.gen_python, "-m", "xmppdbench.load", *SCENARIOS[args.scale][scenario],
               "--host", adapter.host, "--port", str(adapter.port), "--domain", adapter.domain,
               "--ws-port", str(adapter.values["http_port"]), "--ws-path", WS_PATH,
               "--bosh-path", BOSH_PATH,
               "--json-out", jsonPath]
            + sum((["--server-pid", str(pid)] for pid in pids), [])
            + args.gen_args.split())


LEGEND = (
    "CPU ms/1k = server CPU milliseconds per 1000 delivered 1:1 messages (msg: 500 pairs, "
    "window 4, 20 s measured after 3 s; each sender's next message leaves when its receiver "
    "got one), median / minimum over the repetitions; ws/tcp = the ratio of the medians "
    "(and, in brackets, the median of each repetition's own ratio). rate = delivered "
    "messages per second; bound: the side whose demand reached 0.85 core (only `server` "
    "measures the server's capacity). KB/session = (server RSS with the idle sessions - "
    "without) / sessions, after settling; login CPU ms/1k = server CPU per 1000 logins "
    "(connect, stream, SASL PLAIN, bind, presence and its echo) while stepping up.")


#: The transports compared with TCP: scenario suffix, name in the tables.
TRANSPORTS = [("_ws", "WebSocket"), ("_bosh", "BOSH")]


def transportTable(meta: dict, values, ratio, suffix: str, label: str) -> list[str]:
    """The rows of one transport (C{suffix}) next to TCP, one per server."""
    short = label if label == "BOSH" else "ws"
    lines = ["", "| server | reps | TCP: CPU ms/1k (med / min) | %s: CPU ms/1k (med / min) "
             "| %s/tcp | TCP rate /s | %s rate /s | gen CPU ms/1k tcp / %s | bound tcp / %s "
             "| KB/session tcp / %s | login CPU ms/1k tcp / %s |"
             % ((label,) + (short.lower(),) * 6),
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in meta.get("servers", {}):
        tcp, ws = values(name, "msg", "server_cpu_ms_per_1k"), \
            values(name, "msg" + suffix, "server_cpu_ms_per_1k")
        tcpMed, wsMed = median(tcp), median(ws)
        cleanT, cleanW = [v for v in tcp if v], [v for v in ws if v]
        lines.append("| %s | %d | %s / %s | %s / %s | %s (%s) | %s | %s | %s / %s | %s / %s "
                     "| %s / %s | %s / %s |" % (
                         name, max(len(tcp), len(ws)),
                         fmt(tcpMed, "%.1f"), fmt(min(cleanT) if cleanT else None, "%.1f"),
                         fmt(wsMed, "%.1f"), fmt(min(cleanW) if cleanW else None, "%.1f"),
                         fmt(wsMed / tcpMed if tcpMed and wsMed else None, "%.2fx"),
                         fmt(ratio(name, suffix), "%.2fx"),
                         fmt(median(values(name, "msg", "rate_per_s"))),
                         fmt(median(values(name, "msg" + suffix, "rate_per_s"))),
                         fmt(median(values(name, "msg", "gen_cpu_ms_per_1k")), "%.1f"),
                         fmt(median(values(name, "msg" + suffix, "gen_cpu_ms_per_1k")), "%.1f"),
                         ",".join(sorted({b for b in values(name, "msg", "bound") if b})) or "-",
                         ",".join(sorted({b for b in values(name, "msg" + suffix, "bound")
                                          if b})) or "-",
                         fmt(median(values(name, "idle", "kb_per_session")), "%.1f"),
                         fmt(median(values(name, "idle" + suffix, "kb_per_session")), "%.1f"),
                         fmt(median(values(name, "idle", "server_cpu_ms_per_1k")), "%.0f"),
                         fmt(median(values(name, "idle" + suffix, "server_cpu_ms_per_1k")),
                             "%.0f")))
    return lines


def render(data: dict) -> str:
    """summary.json -> markdown: one row per server, then the failures."""
    meta = data.get("meta", {})
    lines = ["# 1:1 messages over WebSocket, BOSH and TCP side by side (%s scale)" % meta.get("scale"),
             "", "%s; load before %s; server on CPUs `%s`, generator on `%s`; plain TCP, "
             "plain ws:// and plain http:// (BOSH) on 127.0.0.1, no TLS for any server" % (
                 meta.get("time"), meta.get("loadavg"), meta.get("server_cpus"),
                 meta.get("gen_cpus")), ""]
    for name, server in meta.get("servers", {}).items():
        lines.append("- %s %s: %s" % (name, server.get("version") or "",
                                      "; ".join(server.get("ws_changes") or [])))
    phases, problems = {}, []
    for run in data.get("runs", []):
        result = run.get("result") or {}
        found = [p for p in result.get("phases", []) if p.get("phase") in ("messages",)
                 or p.get("phase", "").startswith("idle-")]
        if result.get("error") or not found:
            problems.append("- %s %s rep %s FAILED: %s" % (
                run["server"], run["scenario"], run["rep"],
                result.get("error") or run.get("note") or "no result"))
            continue
        phase = found[0]
        phases.setdefault((run["server"], run["scenario"]), []).append((run["rep"], phase))
        if phase.get("errors") or phase.get("undelivered_after_drain") \
                or phase.get("lost_connections"):
            problems.append("- %s %s rep %s: errors %s, undelivered %s, connections lost %s" % (
                run["server"], run["scenario"], run["rep"], phase.get("errors"),
                phase.get("undelivered_after_drain"), phase.get("lost_connections")))

    def values(server, scenario, key):
        return [p.get(key) for _, p in phases.get((server, scenario), [])]

    def ratio(server, suffix="_ws", key="server_cpu_ms_per_1k"):
        tcp = dict(phases.get((server, "msg"), []))
        ws = dict(phases.get((server, "msg" + suffix), []))
        return median([ws[r][key] / tcp[r][key] for r in tcp if r in ws
                       and tcp[r].get(key) and ws[r].get(key)])

    for suffix, label in TRANSPORTS:
        if not any(run.get("scenario", "").endswith(suffix) for run in data.get("runs", [])):
            continue
        lines += transportTable(meta, values, ratio, suffix, label)
    if problems:
        lines += ["", "Problems:"] + problems
    lines += ["", LEGEND, ""]
    return "\n".join(lines)


def parseArgs(argv):
    parser = argparse.ArgumentParser(prog="wsbench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--servers", default="prosody,ejabberd," + os.path.join(BENCHMARKS, "xbench",
                                                                 "adapter.toml"),
        help="comma list: harness adapter names (its servers/NAME) or adapter.toml paths")
    add("--scenarios", default=",".join(ORDER), help="comma list among " + ", ".join(ORDER))
    add("--scale", default="quick", choices=sorted(SCENARIOS))
    add("--repeat", type=int, default=1)
    add("--bench", default=DEFAULT_BENCH, help="the team's harness (read-only)")
    add("--out", default=None, help="results directory (default /tmp/xbench-results/ws-<time>)")
    add("--server-cpus", default="0")
    add("--gen-cpus", default="1")
    add("--gen-python", default=sys.executable)
    add("--gen-args", default="", help="appended to every generator call")
    add("--set", action="append", default=[], metavar="SERVER.KEY=VALUE",
        help="override a top-level adapter key, e.g. xmppd.xmppd_bin=/venv/bin")
    add("--port-offset", type=int, default=60,
        help="move the copies' ports away from the harness's (and pepbench's, +50)")
    add("--timeout", type=float, default=300, help="per generator run, seconds")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parseArgs(sys.argv[1:] if argv is None else argv)
    sys.path.insert(0, os.path.abspath(args.bench))
    from xbench import adapters, provision  # the harness, used read-only

    scenarios = [name for name in args.scenarios.split(",") if name]
    unknown = [name for name in scenarios if name not in SCENARIOS[args.scale]]
    if unknown:
        raise SystemExit("unknown scenario(s) %s; have %s" % (", ".join(unknown),
                                                              ", ".join(ORDER)))
    runId = time.strftime("%Y%m%d-%H%M%S")
    out = os.path.abspath(args.out or "/tmp/xbench-results/ws-" + runId)
    os.makedirs(out, exist_ok=True)
    logFile = open(os.path.join(out, "run.log"), "a")

    def log(message):
        line = "%s %s" % (time.strftime("%H:%M:%S"), message)
        print(line, flush=True)
        logFile.write(line + "\n")
        logFile.flush()

    # xmppd adapters run (and xmppctl imports with) this checkout's code.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [REPOSITORY, os.environ.get("PYTHONPATH")]))
    overrides = {}
    for setting in args.set:
        key, value = setting.split("=", 1)
        server, key = key.split(".", 1)
        overrides.setdefault(server, {})[key] = value
    meta = {"run_id": runId, "argv": sys.argv, "scale": args.scale, "scenarios": scenarios,
            "server_cpus": args.server_cpus, "gen_cpus": args.gen_cpus,
            "gen_python": args.gen_python, "time": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "loadavg": open("/proc/loadavg").read().strip(), "servers": {},
            "commit": subprocess.run(["git", "-C", REPOSITORY, "describe", "--always",
                                      "--dirty"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True).stdout.strip() or os.path.basename(REPOSITORY)}
    adapterDir = os.path.join(out, "adapters")
    servers = []
    for spec in args.servers.split(","):
        source = adapters.find_adapter(spec)
        with open(source, "rb") as f:
            name = tomllib.load(f)["name"]
        path, changes = wsAdapter(source, adapterDir, args.port_offset, log)
        server = adapters.Adapter(path, runId, overrides.get(name), log=log)
        server.wsChanges = changes
        servers.append(server)

    stopping = stopOnSIGTERM()
    runs = []

    def save():
        saveSummary(out, meta, runs, render)

    try:
        dataset = os.path.join("/tmp/xbench", "dataset-ws-%s" % args.scale)
        log("dataset %s: %s" % (dataset, provision.make(dataset, servers[0].domain,
                                                        USERS[args.scale], 0, 0)))
        for server in servers:
            if server.domain != servers[0].domain:
                raise SystemExit("all servers must share one domain (the data set's JIDs)")
            meta["servers"][server.name] = {
                "adapter": server.path, "version": server.version(), "port": server.port,
                "http_port": server.values["http_port"], "workdir": server.workdir,
                "ws_changes": server.wsChanges}
            log("prepare %s in %s" % (server.name, server.workdir))
            server.prepare(dataset, args.server_cpus)
        env = dict(os.environ, PYTHONPATH=BENCHMARKS)
        for rep in range(args.repeat):
            order = servers if rep % 2 == 0 else list(reversed(servers))
            for server in order:
                for scenario in scenarios:
                    log("== rep %d  %s  on %s" % (rep + 1, scenario, server.name))
                    jsonPath = os.path.join(out, "%s.%s.%d.json" % (server.name, scenario,
                                                                    rep + 1))
                    result, note, command = None, None, None
                    server.start(args.server_cpus)
                    try:
                        command = generatorCommand(args, server, scenario,
                                                   server.measure_pids(), jsonPath)
                        log("  $ " + " ".join(command))
                        done = subprocess.run(command, cwd=BENCHMARKS, env=env,
                                              timeout=args.timeout, stdout=subprocess.PIPE,
                                              stderr=subprocess.STDOUT, text=True)
                        for line in done.stdout.strip().splitlines()[-20:]:
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
                    runs.append({"server": server.name, "scenario": scenario, "rep": rep + 1,
                                 "cmd": " ".join(command or []), "result": result,
                                 "note": note})
                    save()
    except KeyboardInterrupt:
        log("interrupted")
    finally:
        finishRuns(servers, save, out, log)
    return exitStatus(runs, stopping)
