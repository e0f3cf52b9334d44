# -*- test-case-name: tests.test_benchmark_smoke -*-
"""
The orchestrator behind C{python3 benchmarks/run.py}: one command that
benchmarks xmppd on this machine and leaves nothing behind.

  1. A temporary directory with a configuration of its own (L{writeConfig}:
     loopback, STARTTLS offered but not required, PLAIN allowed on plain
     TCP, no rate limits, the lean module set, a self-signed certificate the
     server makes itself).
  2. The data set as one XEP-0227 file, imported with C{xmppctl import}
     (timed: provisioning speed is reported too).
  3. For each repetition and scenario, a fresh C{twistd -n xmppd} pinned to
     one core, and the load generator (L{xmppdbench.load}) as a separate
     process pinned to another; the generator measures the server's phases.
  4. The server is stopped (SIGTERM, SIGKILL after a grace period) after
     each scenario, and on errors, Ctrl-C or SIGTERM.
  5. C{results.json} and C{results.md} in C{--out}.

twistd and xmppctl are taken from the directory of the interpreter running
this, so run it with the Python that has xmppd installed.
"""

import argparse
import ctypes
import importlib.metadata
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from . import dataset, report

HERE = os.path.dirname(os.path.abspath(__file__))
BENCHMARKS = os.path.dirname(HERE)
REPOSITORY = os.path.dirname(BENCHMARKS)
DOMAIN = "localhost"
STOP_GRACE = 15.0
START_TIMEOUT = 60.0

# Generator arguments per scenario and scale; "full" matches ../shared/bench.
SCENARIOS = {
    "full": {
        "login": ["login", "--n", "2000", "--concurrency", "100"],
        "login_tls": ["login", "--n", "1000", "--concurrency", "50", "--tls"],
        "login_scram": ["login", "--n", "1000", "--concurrency", "50", "--mech", "SCRAM-SHA-1"],
        "msg": ["msg", "--pairs", "500", "--window", "4", "--warmup", "3", "--duration", "20"],
        "msg_fixed": ["msg", "--pairs", "500", "--rate", "2000", "--warmup", "3",
                      "--duration", "20"],
        "presence": ["presence", "--users", "1050", "--roster-size", "20"],
        "muc": ["muc", "--rooms", "20", "--occupants", "50", "--senders", "5", "--window", "1",
                "--warmup", "3", "--duration", "20"],
        "idle": ["idle", "--levels", "1000,5000,10000", "--settle", "5", "--hold", "10",
                 "--concurrency", "200"],
    },
    "quick": {
        "login": ["login", "--n", "500", "--concurrency", "50"],
        "login_tls": ["login", "--n", "200", "--concurrency", "20", "--tls"],
        "login_scram": ["login", "--n", "500", "--concurrency", "20", "--mech", "SCRAM-SHA-1"],
        "msg": ["msg", "--pairs", "50", "--window", "4", "--warmup", "1", "--duration", "3"],
        "msg_fixed": ["msg", "--pairs", "50", "--rate", "500", "--warmup", "1", "--duration", "3"],
        "presence": ["presence", "--users", "210", "--roster-size", "20"],
        "muc": ["muc", "--rooms", "4", "--occupants", "20", "--senders", "2", "--window", "1",
                "--warmup", "1", "--duration", "3"],
        "idle": ["idle", "--levels", "200,500", "--settle", "1", "--hold", "2"],
    },
}


def xmppdTools(directory: str) -> tuple[str, str]:
    """The twistd and xmppctl in C{directory} (C{--xmppd-bin}), or a one-line exit."""
    tools = os.path.join(directory, "twistd"), os.path.join(directory, "xmppctl")
    for tool in tools:
        if not os.access(tool, os.X_OK):
            raise SystemExit("%s not found: run this with the Python that has xmppd installed, "
                             "or give --xmppd-bin" % tool)
    return tools


def _addRedisScenarios(table: dict) -> None:
    """
    The scenarios with Redis (issue 14 item 10), from the lone ones'
    generator arguments: a lone node on Redis storage (C{msg_redis},
    C{muc_redis}, C{idle_redis}), and two cluster nodes on the same Redis
    with 0, 50 or 100 % of the message pairs across nodes, a room's
    occupants on both nodes, and idle sessions on both.
    """
    for name in ("msg", "muc", "idle"):
        table[name + "_redis"] = list(table[name])
        table["cluster_" + name] = list(table[name])
    del table["cluster_msg"]
    for percent in (0, 50, 100):
        table["cluster_msg_%d" % percent] = table["msg"] + ["--cross", str(percent / 100)]


def _addWebSocketScenarios(table: dict) -> None:
    """
    C{msg_ws} and C{idle_ws} (issue 15 item 8): C{msg} and C{idle} with
    every client over WebSocket (RFC 7395, plain C{ws://} to the HTTP
    listener's C{/xmpp-websocket}), for the WebSocket/TCP cost ratio of one
    run; C{msg_bosh} and C{idle_bosh} the same over BOSH (XEP-0206, plain
    C{http://} to C{/http-bind} on the same listener).
    """
    for name in ("msg", "idle"):
        table[name + "_ws"] = table[name] + ["--transport", "ws"]
        table[name + "_bosh"] = table[name] + ["--transport", "bosh"]


for _table in SCENARIOS.values():
    _addRedisScenarios(_table)
    _addWebSocketScenarios(_table)
#: What runs the scenarios that are not a lone node on SQLite: (nodes, storage).
TOPOLOGY = {name: (2 if name.startswith("cluster_") else 1,
                   "redis" if name.startswith("cluster_") or name.endswith("_redis") else "sqlite")
            for name in SCENARIOS["full"]}
#: The scenarios of C{--cluster}: the cluster ones and their lone baselines, measured in one run.
CLUSTER_SET = ["msg", "msg_redis", "cluster_msg_0", "cluster_msg_50", "cluster_msg_100",
               "muc", "muc_redis", "cluster_muc", "idle", "idle_redis", "cluster_idle"]
#: The scenarios whose clients come over WebSocket: their server has an HTTP listener.
WS_SCENARIOS = frozenset(name for name in SCENARIOS["full"]
                         if name.endswith("_ws") or name.endswith("_bosh"))
#: The default scenarios: a lone node on SQLite, as the published numbers.
DEFAULT_SET = ["login", "login_tls", "login_scram", "msg", "msg_fixed", "presence", "muc", "idle"]

# Scenarios that run xmppd with its MUC service (only they: the others keep
# the module set their published numbers were measured with).
MUC_SCENARIOS = frozenset({"muc", "muc_redis", "cluster_muc"})
# (uN accounts, pN accounts, contacts per pN account)
DATASETS = {"full": (10000, 1050, 20), "quick": (1000, 210, 20)}

CONFIG = """\
# Written by benchmarks/xmppdbench: the settings ../shared/bench asks of
# every server (loopback only, STARTTLS offered but not required, PLAIN on
# plain TCP, no traffic shaping or rate limits, a lean feature set).
[server]
domains = ["{domain}"]
data_dir = "{dataDir}"
modules = ["presence", "roster", "messages", "disco", "ping", "offline"{moreModules}]

[c2s]
endpoint = "tcp:{port}:interface=127.0.0.1:backlog=1024"
direct_tls_endpoint = ""
require_tls = false
plain_without_tls = true

[s2s]
# No federation in a benchmark: nothing listens on 5269.
listen = ""

[http]
# Plain HTTP on loopback only for the WebSocket and BOSH scenarios (*_ws, *_bosh, the
# generator's --transport ws or bosh); no web listener at all for the others.
endpoint = "{httpEndpoint}"
tls_endpoint = ""

[tls]
# Empty: xmppd generates a self-signed certificate in data_dir/tls.
certificate = ""
private_key = ""

[limits]
negotiation_timeout = 300
connections_per_ip = 0
new_connections_per_second = 0
bytes_per_second = 0
stanzas_per_second = 0
auth_failure_delay = 0
auth_failure_delay_max = 0

[ping]
idle_timeout = 0
{moreSections}"""

# For the MUC scenarios: the rooms' service on conference.{domain}, with the
# settings ../shared/bench gives Prosody and ejabberd: 20 messages of
# history; any local account may create a room, which the instant-room
# submission unlocks; at most 200 occupants (ejabberd's default, Prosody has
# no limit); no limit on an occupant's message rate (neither runs one).
MUC_CONFIG = """
[muc]
domain = "conference.{domain}"
history_length = 20
max_occupants = 200
rate = 0
"""

# Redis storage, for a lone node on Redis and the nodes of a cluster.
REDIS_CONFIG = """
[storage]
backend = "redis"
redis = "{url}"
"""

# One node of a cluster (README "A cluster"); the Redis is [storage] redis.
CLUSTER_CONFIG = """
[cluster]
node = "{node}"
"""


def writeConfig(directory: str, port: int, domain: str = DOMAIN, muc: bool = False,
                redis: str = "", node: str = "", http: int = 0) -> str:
    """
    Write the benchmark's configuration into C{directory} and return its
    path: C{xmppd.toml}, or with C{muc} C{xmppd-muc.toml}, the same plus
    the MUC service.  Both share one data directory.  With C{redis} (a
    URL) the storage is that Redis, and with C{node} too the server is that
    node of a cluster on it; each node has a data directory of its own
    (its certificate), named after it.  With C{http} (a port) the HTTP
    service listens there on 127.0.0.1, plain, for WebSocket clients
    (C{xmppd-ws.toml}).
    """
    stem = ("xmppd" + ("-redis" if redis else "") + ("-" + node if node else "")
            + ("-ws" if http else ""))
    path = os.path.join(directory, stem + ("-muc.toml" if muc else ".toml"))
    more = MUC_CONFIG.format(domain=domain) if muc else ""
    if redis:
        more += REDIS_CONFIG.format(url=redis)
    if node:
        more += CLUSTER_CONFIG.format(node=node)
    with open(path, "w") as f:
        f.write(CONFIG.format(domain=domain, port=port,
                              dataDir=os.path.join(directory, "data" + ("-" + node if node else "")),
                              moreModules=', "muc"' if muc else "", moreSections=more,
                              httpEndpoint="tcp:%d:interface=127.0.0.1:backlog=1024" % http
                              if http else ""))
    return path


def mucDomain(domain: str = DOMAIN) -> str:
    """The MUC service's domain in L{MUC_CONFIG}, for the generator."""
    return "conference." + domain


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dieWithParent() -> None:
    """
    In a child before exec: get SIGTERM if the orchestrator dies, so even a
    SIGKILLed run leaves no server or generator behind (PR_SET_PDEATHSIG).
    """
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def checkoutEnvironment() -> dict:
    """
    The environment of xmppctl and the servers: this checkout first on the
    path, so that the code measured is the code the report names (its git
    commit), not an older copy installed into the virtualenv.
    """
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [REPOSITORY, os.environ.get("PYTHONPATH")])))


def pinned(cpus: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", cpus] + argv if cpus else argv


def provision(xmppctl: str, config: str, workdir: str, scale: str, log,
              accounts: int = 0, population: tuple[int, int, int] | None = None) -> dict:
    """
    Write the data set as XEP-0227 and import it with C{xmppctl import};
    timed.  C{accounts}: only that many C{uN} accounts and no C{pN} (a
    smoke run of the scenarios that need no rosters); C{population}: (uN
    accounts, pN accounts, contacts per pN account) instead of the
    scale's (the soak's own).
    """
    users, presenceUsers, rosterSize = (population if population else (accounts, 0, 0)
                                        if accounts else DATASETS[scale])
    pie = os.path.join(workdir, "dataset.xml")
    started = time.perf_counter()
    accountCount = dataset.writePIE(pie, DOMAIN, users, presenceUsers, rosterSize)
    written = time.perf_counter() - started
    command = [xmppctl, "--config", config, "import", pie]
    log("$ " + " ".join(command))
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800,
                          env=checkoutEnvironment())
    seconds = time.perf_counter() - started
    log("  " + (done.stdout + done.stderr).strip())
    if done.returncode:
        raise RuntimeError("xmppctl import failed (%d)" % done.returncode)
    return {"accounts": accountCount, "roster_items": dataset.presenceUserCount(
                presenceUsers, rosterSize) * rosterSize,
            "file_bytes": os.path.getsize(pie), "write_s": round(written, 3),
            "import_s": round(seconds, 3), "accounts_per_s": round(accountCount / seconds, 1),
            "output": done.stdout.strip()}


class ServerStartError(RuntimeError):
    """xmppd exited or did not listen at start; its log says why."""


class Server:
    """One C{twistd -n xmppd} process, in its own process group."""

    def __init__(self, twistd: str, config: str, port: int, cpus: str, logPath: str):
        self.argv = pinned(cpus, [twistd, "-n", "--pidfile=", "xmppd", "--config", config])
        self.port, self.logPath, self.process = port, logPath, None

    def start(self) -> int:
        """Start and wait until the port accepts; return the server's PID."""
        with open(self.logPath, "ab") as logFile:
            # taskset execs the server, so the PID is the server's own.
            self.process = subprocess.Popen(self.argv, stdout=logFile, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True,
                                            env=checkoutEnvironment(),
                                            preexec_fn=dieWithParent)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerStartError("xmppd exited with %s at start; see %s"
                                       % (self.process.returncode, self.logPath))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self.process.pid
            except OSError:
                time.sleep(0.1)
        raise ServerStartError("xmppd did not listen on %d within %ds"
                               % (self.port, START_TIMEOUT))

    def stop(self) -> int | None:
        """SIGTERM the process group, SIGKILL it after L{STOP_GRACE}; the exit status."""
        process, self.process = self.process, None
        if process is None:
            return None
        return terminate(process, STOP_GRACE)


def terminate(process: subprocess.Popen, grace: float) -> int | None:
    """SIGTERM C{process}'s group, SIGKILL it if still there after C{grace}; its status."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        if process.poll() is not None:
            break
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            pass
    return process.poll()


class RedisServer:
    """
    A redis-server of the benchmark's own: a free port on loopback, its
    data in the work directory, every write fsynced (C{appendfsync always},
    as xmppd's Redis storage requires), pinned like the server.
    """

    def __init__(self, binary: str, directory: str, cpus: str, logPath: str):
        self.port = freePort()
        self.directory, self.logPath, self.process = directory, logPath, None
        os.makedirs(directory, exist_ok=True)
        self.argv = pinned(cpus, [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", directory,
            "--save", "", "--appendonly", "yes", "--appendfsync", "always",
            "--daemonize", "no", "--protected-mode", "no", "--logfile", logPath])

    @property
    def url(self) -> str:
        return "redis://127.0.0.1:%d/0" % self.port

    def start(self) -> int:
        self.process = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                        start_new_session=True, preexec_fn=dieWithParent)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerStartError("redis-server exited at start; see %s" % self.logPath)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return self.process.pid
            except OSError:
                pass
            time.sleep(0.05)
        raise ServerStartError("redis-server did not answer on %d" % self.port)

    def stop(self) -> int | None:
        process, self.process = self.process, None
        return None if process is None else terminate(process, STOP_GRACE)


def runGenerator(argv: list[str], timeout: float, log) -> None:
    """Run the generator to completion (or C{timeout}), killing it on any way out."""
    log("$ " + " ".join(argv))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [BENCHMARKS, os.environ.get("PYTHONPATH")])))
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=env, stdin=subprocess.DEVNULL, start_new_session=True,
                               preexec_fn=dieWithParent)
    try:
        output, _ = process.communicate(timeout=timeout)
        for line in output.strip().splitlines()[-20:]:
            log("  | " + line)
    except subprocess.TimeoutExpired:
        log("  generator timed out after %ds" % timeout)
    finally:
        terminate(process, 5.0)


def machine() -> dict:
    def sh(command):
        try:
            return subprocess.run(["sh", "-c", command], capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"time": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "nproc": os.cpu_count(),
            "loadavg": open("/proc/loadavg").read().strip(),
            "cpu_model": sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"),
            "kernel": platform.release(), "python": sys.version.split()[0],
            "root": os.geteuid() == 0}


def xmppdVersion() -> str:
    try:
        version = importlib.metadata.version("xmppd")
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    commit = subprocess.run(["git", "-C", REPOSITORY, "describe", "--always", "--dirty"],
                            capture_output=True, text=True).stdout.strip()
    return "%s (%s)" % (version, commit) if commit else version


def parseArgs(argv):
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--scale", default="quick", choices=sorted(SCENARIOS),
        help="quick: a smoke run of under a minute; full: the sizes of ../shared/bench")
    add("--scenarios", default=",".join(DEFAULT_SET),
        help="comma list among: " + ", ".join(SCENARIOS["full"]))
    add("--cluster", action="store_true",
        help="run the cluster scenarios and their lone baselines: " + ",".join(CLUSTER_SET))
    add("--redis-server", default=shutil.which("redis-server") or "redis-server",
        help="the redis-server binary for the scenarios with Redis")
    add("--node2-cpus", default=None,
        help="taskset CPU list of a cluster's second node (default: --server-cpus)")
    add("--redis-cpus", default=None, help="taskset CPU list of Redis (default: --server-cpus)")
    add("--repeat", type=int, default=1, help="repetitions of every scenario")
    add("--out", help="results directory (default: a new temporary directory)")
    add("--port", type=int, default=0, help="c2s port (default: a free one)")
    add("--server-cpus", default="0", help="taskset CPU list of the server ('' = unpinned)")
    add("--gen-cpus", default="1", help="taskset CPU list of the generator ('' = unpinned)")
    add("--gen-python", default=sys.executable,
        help="interpreter of the generator (one with uvloop is cheaper)")
    add("--gen-args", default="", help="extra generator arguments for every scenario")
    add("--xmppd-bin", default=os.path.dirname(sys.executable),
        help="directory holding twistd and xmppctl")
    add("--accounts", type=int, default=0,
        help="import only u1..uN and no presence cliques (smoke runs of msg, muc, idle)")
    add("--timeout", type=float, default=900, help="seconds per generator run")
    add("--keep-workdir", action="store_true", help="keep the configuration and data")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parseArgs(sys.argv[1:] if argv is None else argv)
    table = SCENARIOS[args.scale]
    names = CLUSTER_SET if args.cluster else [n for n in args.scenarios.split(",") if n]
    unknown = [n for n in names if n not in table]
    if unknown:
        raise SystemExit("unknown scenario(s) %s; have %s" % (", ".join(unknown), ", ".join(table)))
    withRedis = [n for n in names if TOPOLOGY[n][1] == "redis"]
    if withRedis and not shutil.which(args.redis_server):
        raise SystemExit("%s not found: needed by %s" % (args.redis_server, ", ".join(withRedis)))
    twistd, xmppctl = xmppdTools(args.xmppd_bin)
    if (args.server_cpus or args.gen_cpus) and not shutil.which("taskset"):
        print("taskset not found: running unpinned", file=sys.stderr)
        args.server_cpus = args.gen_cpus = ""
    # Every session is a socket on both sides: let the server and generator use them all.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    out = args.out or tempfile.mkdtemp(prefix="xmppdbench-results-")
    os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="xmppdbench-")
    logFile = open(os.path.join(out, "run.log"), "a")

    def log(message):
        line = "%s %s" % (time.strftime("%H:%M:%S"), message)
        print(line, flush=True)
        logFile.write(line + "\n")
        logFile.flush()

    def interrupted(signum, frame):
        raise KeyboardInterrupt
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)

    port = args.port or freePort()
    port2 = freePort()
    config = writeConfig(workdir, port)
    httpPort = freePort()
    wsConfig = writeConfig(workdir, port, http=httpPort) if WS_SCENARIOS & set(names) else None
    mucConfig = writeConfig(workdir, port, muc=True) if MUC_SCENARIOS & set(names) else None
    if args.node2_cpus is None:
        args.node2_cpus = args.server_cpus
    if args.redis_cpus is None:
        args.redis_cpus = args.server_cpus
    redis = RedisServer(args.redis_server, os.path.join(workdir, "redis"), args.redis_cpus,
                        os.path.join(out, "logs", "redis.log")) if withRedis else None

    def configsFor(name: str) -> list[tuple[str, int, str]]:
        """(configuration, port, CPUs) of each node that runs scenario C{name}."""
        nodes, storage = TOPOLOGY[name]
        muc = name in MUC_SCENARIOS
        if storage == "sqlite":
            chosen = mucConfig if muc else wsConfig if name in WS_SCENARIOS else config
            return [(chosen, port, args.server_cpus)]
        if nodes == 1:
            return [(writeConfig(workdir, port, muc=muc, redis=redis.url), port, args.server_cpus)]
        return [(writeConfig(workdir, p, muc=muc, redis=redis.url, node=node), p, cpus)
                for node, p, cpus in (("n1", port, args.server_cpus),
                                      ("n2", port2, args.node2_cpus))]
    data = {"meta": {"argv": sys.argv, "scale": args.scale, "scenarios": names,
                     "repeat": args.repeat, "server_cpus": args.server_cpus,
                     "gen_cpus": args.gen_cpus, "gen_python": args.gen_python,
                     "node2_cpus": args.node2_cpus, "redis_cpus": args.redis_cpus,
                     "xmppd": xmppdVersion(), "port": port, "workdir": workdir,
                     "machine_before": machine()},
            "provisioning": None, "runs": []}
    servers: list = []
    status = 0

    def save():
        with open(os.path.join(out, "results.json"), "w") as f:
            json.dump(data, f, indent=1)

    try:
        log("xmppd %s; work directory %s; results %s" % (data["meta"]["xmppd"], workdir, out))
        if len(withRedis) < len(names):
            data["provisioning"] = provision(xmppctl, config, workdir, args.scale, log,
                                              args.accounts)
            log("provisioned %(accounts)d accounts in %(import_s).1f s (%(accounts_per_s).0f/s)"
                % data["provisioning"])
        if redis is not None:
            redisPid = redis.start()
            log("redis-server %d on port %d (appendfsync always)" % (redisPid, redis.port))
            redisConfig = writeConfig(workdir, port, redis=redis.url)
            data["provisioning_redis"] = provision(xmppctl, redisConfig, workdir, args.scale,
                                                    log, args.accounts)
            log("provisioned Redis with %(accounts)d accounts in %(import_s).1f s"
                % data["provisioning_redis"])
            data["provisioning"] = data["provisioning"] or data["provisioning_redis"]
        for rep in range(1, args.repeat + 1):
            for name in names:
                log("== %s (repetition %d)" % (name, rep))
                tag = "%s.%d" % (name, rep)
                jsonPath = os.path.join(out, tag + ".json")
                nodes = configsFor(name)
                servers = [Server(twistd, path, nodePort, cpus,
                                  os.path.join(out, "logs", "server.%s.%s.log" % (tag, i + 1)))
                           for i, (path, nodePort, cpus) in enumerate(nodes)]
                processes = ["n%d" % (i + 1) for i in range(len(nodes))] if len(nodes) > 1 \
                    else ["xmppd"]
                result = None
                try:
                    pids = [server.start() for server in servers]
                    more = []
                    if TOPOLOGY[name][1] == "redis":
                        pids.append(redis.process.pid)
                        processes.append("redis")
                        more += ["--redis-port", str(redis.port)]
                    if len(nodes) > 1:
                        more += ["--port2", str(nodes[1][1])]
                    if name in WS_SCENARIOS:
                        more += ["--ws-port", str(httpPort)]
                    generator = pinned(args.gen_cpus, [
                        args.gen_python, "-m", "xmppdbench.load", *table[name],
                        "--port", str(port), "--domain", DOMAIN, "--muc-domain", mucDomain(),
                        *[a for pid in pids for a in ("--server-pid", str(pid))],
                        "--json-out", jsonPath, *more, *args.gen_args.split()])
                    runGenerator(generator, args.timeout, log)
                    if os.path.exists(jsonPath):
                        with open(jsonPath) as f:
                            result = json.load(f)
                except ServerStartError as e:
                    # e.g. a feature this scenario needs is not installed: this
                    # scenario fails, the others still run
                    log("  %s" % e)
                    result = {"error": "server did not start: %s" % e}
                finally:
                    exitStatus = [server.stop() for server in servers]
                    servers = []
                data["runs"].append({"scenario": name, "rep": rep, "result": result,
                                     "processes": processes,
                                     "server_exit": exitStatus[0] if len(exitStatus) == 1
                                     else exitStatus})
                if result is None or result.get("error"):
                    status = 1
                save()
    except KeyboardInterrupt:
        log("interrupted; stopping")
        status = 130
    except Exception as e:  # noqa: BLE001 - reported, and the server is still stopped
        log("failed: %s: %s" % (type(e).__name__, e))
        status = 1
    finally:
        for server in servers:
            server.stop()
        if redis is not None:
            redis.stop()
        data["meta"]["machine_after"] = machine()
        save()
        markdown = report.render(data)
        with open(os.path.join(out, "results.md"), "w") as f:
            f.write(markdown)
        if args.keep_workdir:
            log("work directory kept: %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        print()
        print(markdown)
        log("results: %s/results.md and results.json" % out)
        logFile.close()
    return status
