"""
Tests for the pure parts of the benchmark in C{benchmarks/}: its
configuration loads, its XEP-0227 data set imports with C{xmppctl import},
and its accounting and percentile helpers compute what the report says.
No load is generated and nothing is timed: the benchmark itself runs
separately (C{python3 benchmarks/run.py}).
"""

import asyncio
import base64
import concurrent.futures
import hmac
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib

import pytest
import pytest_twisted

from benchmarks.xmppdbench import (bench, client, dataset, load, procstat, redisstat, report,
                                   stats, storm, stormside, wsside)
from tests.test_ctl import xmppctl
from tests.test_ctl_pie import withStorage
from xmppd.config import loadConfig
from xmppd.config.registry import FEATURES, isInstalled
from xmppd.core.scram import checkPassword

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "benchmarks")
XBENCH = os.path.join(BENCHMARKS, "xbench")


@pytest_twisted.ensureDeferred
async def test_datasetImports(tmp_path, capsys):
    """The benchmark's own configuration loads, and its data set imports with every account, password and clique roster."""
    configPath = bench.writeConfig(str(tmp_path), port=0)
    config = loadConfig(configPath)
    assert config.c2s.plain_without_tls and not config.c2s.require_tls
    assert config.limits.stanzas_per_second == 0
    pie = str(tmp_path / "dataset.xml")

    assert dataset.writePIE(pie, "localhost", users=3, presenceUsers=7, rosterSize=2) == 9
    assert await xmppctl(configPath, "import", pie) == 0
    assert capsys.readouterr().out.startswith(
        "imported 9 new accounts and 0 replaced (12 roster items,")

    async def read(storage):
        return (await storage.users.listUsers("localhost"),
                await storage.users.getCredentials("u2", "localhost"),
                await storage.rosters.getRoster("p5", "localhost"))
    users, credentials, roster = await withStorage(configPath, read)
    assert sorted(name for name, _ in users) == [
        "p1", "p2", "p3", "p4", "p5", "p6", "u1", "u2", "u3"]
    assert checkPassword("SCRAM-SHA-1", credentials["SCRAM-SHA-1"], "pw2")
    assert {jid: item.subscription for jid, item in roster.items.items()} == {
        "p4@localhost": "both", "p6@localhost": "both"}


def test_percentiles():
    """Percentiles are nearest-rank over sorted values, and a summary is in milliseconds."""
    values = list(range(1, 101))
    assert stats.percentile(values, 50) == 51
    assert stats.percentile(values, 99) == 99
    assert stats.percentile(values, 100) == 100
    assert stats.percentile([], 50) is None
    summary = stats.latencySummary([0.003, 0.001, 0.002], 1e3)
    assert summary == {"n": 3, "p50_ms": 2.0, "p90_ms": 3.0, "p99_ms": 3.0, "max_ms": 3.0,
                       "mean_ms": 2.0}
    assert stats.latencySummary([], 1e3) == {}


def test_phaseFigures():
    """CPU per 1000 units, the rate and the bound side come from one phase's accounting."""
    accounting = {"wall_s": 2.0, "server_cpu_s": 1.5, "gen_cpu_s": 0.25,
                  "server_demand": 0.95, "gen_demand": 0.3}
    figures = stats.phaseFigures(accounting, 5000, "messages delivered")
    assert figures["rate_per_s"] == 2500
    assert figures["server_cpu_ms_per_1k"] == 300
    assert figures["gen_cpu_ms_per_1k"] == 50
    assert figures["bound"] == "server"
    assert stats.boundSide(0.5, 0.9) == "generator"
    assert stats.boundSide(0.9, 0.9) == "both"
    assert stats.boundSide(0.1, 0.1) == "neither"


def test_procAccounting():
    """CPU time is read past a process name holding parentheses, and a delta splits the machine's CPU among server, generator and others."""
    stat = (b"42 (twistd (x) y) S 1 42 42 0 -1 4194560 100 0 0 0 "
            b"%d %d 0 0 20 0 3 0" % (3 * procstat.CLOCK_TICKS, procstat.CLOCK_TICKS))
    assert procstat.parseStatCPU(stat) == 4.0
    before = {"t": 10.0, "serverCPU": 1.0, "genCPU": 0.5, "serverRSS": 100,
              "serverSched": (0, 0), "genSched": (0, 0), "machine": (0, 0), "cpus": 2}
    after = {"t": 12.0, "serverCPU": 2.8, "genCPU": 0.9, "serverRSS": 150,
             "serverSched": (1_800_000_000, 200_000_000), "genSched": (400_000_000, 0),
             "machine": (300, 400), "cpus": 2}
    d = procstat.delta(before, after)
    assert d["server_cpu_util"] == pytest.approx(0.9)
    assert d["server_demand"] == pytest.approx(1.0)
    assert d["gen_cpu_util"] == pytest.approx(0.2)
    assert d["other_cpu_util"] == pytest.approx(0.4)
    assert (d["server_rss_kb_start"], d["server_rss_kb_end"]) == (100, 150)


def test_generatorScanning():
    """The generator finds complete elements and attributes in raw bytes, whichever quotes the server uses."""
    buf = b"<iq type='result' id='b'><bind><jid>a@b/c</jid></bind></iq><presence from=\"a@b/c\"/><pres"
    assert client.findElement(buf, b"iq") == (0, 59)
    i, end = client.findElement(buf, b"presence")
    assert client.attribute(buf[i:end], b"from") == b"a@b/c"
    assert client.findElement(buf, b"presence", end) is None
    assert client.findElement(b"<iq type='result'><query>", b"iq") is None


def test_scramClient():
    """The generator's SCRAM-SHA-1 client matches the exchange of RFC 5802 §5."""
    final, serverFinal = client.scramProof(
        "user", "pencil", "fyko+d2lbbFgONRv9qkxdawL",
        "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
    assert final == "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
    assert serverFinal == "v=rmF9pqV8S7suAoZWja4dJRkFsKQ="
    assert base64.b64decode(final.split("p=")[1])


def test_reportRendersEveryScenario():
    """The markdown report has a row per measured phase, the memory per idle session and failed runs."""
    phase = stats.phaseFigures({"wall_s": 1.0, "server_cpu_s": 0.5, "gen_cpu_s": 0.1,
                                "server_rss_kb_peak": 2048}, 1000, "logins")
    idle = dict(phase, phase="idle-1000", sessions=1000, rss_base_kb=1024, rss_kb=2048,
                kb_per_session=1.0, idle_server_cpu_util=0.0)
    data = {"meta": {"scale": "quick"},
            "provisioning": {"accounts": 10, "roster_items": 4, "file_bytes": 1000,
                             "import_s": 0.5, "accounts_per_s": 20.0},
            "runs": [{"scenario": "login", "rep": 1,
                      "result": {"phases": [dict(phase, phase="login")]}},
                     {"scenario": "idle", "rep": 1, "result": {"phases": [idle]}},
                     {"scenario": "msg", "rep": 1, "result": None}]}
    text = report.render(data)
    assert "| login | login | 1 | 1000 | 1000 | 500 / 500 | 2000 |" in text
    assert "| 1000 | 1.0 | 2.0 | 1.0 | 0.00% |" in text
    assert "| msg | FAILED: no result | 0 |" in text
    assert "10 accounts" in text


def mucInstalled() -> bool:
    return "muc" in FEATURES and isInstalled("muc")


def test_mucConfiguration(tmp_path):
    """Only the muc scenario's configuration runs the MUC service, on conference.localhost with the reference servers' history of 20."""
    plain = bench.writeConfig(str(tmp_path), port=5222)
    withMUC = bench.writeConfig(str(tmp_path), port=5222, muc=True)
    assert plain != withMUC
    with open(plain, "rb") as f:
        document = tomllib.load(f)
    assert "muc" not in document["server"]["modules"] and "muc" not in document
    with open(withMUC, "rb") as f:
        document = tomllib.load(f)
    assert document["server"]["modules"][-1] == "muc"
    assert document["muc"] == {"domain": "conference.localhost", "history_length": 20,
                               "max_occupants": 200, "rate": 0}
    assert document["muc"]["domain"] == bench.mucDomain()
    assert document["server"]["data_dir"] == str(tmp_path / "data")
    if mucInstalled():
        assert "muc" in loadConfig(withMUC).server.modules


def test_xbenchTemplateRunsMUC():
    """The side-by-side harness's xmppd runs the MUC service on the adapter's muc_domain, as Prosody and ejabberd do."""
    with open(os.path.join(XBENCH, "adapter.toml"), "rb") as f:
        adapter = tomllib.load(f)
    values = {key: value for key, value in adapter.items() if isinstance(value, (str, int))}
    values.update(adapter["vars"])
    with open(os.path.join(XBENCH, "xmppd.toml")) as f:
        template = f.read()
    rendered = re.sub(r"\{([A-Za-z_]+)\}", lambda m: str(values[m.group(1)]), template)
    document = tomllib.loads(rendered)
    assert "muc" in document["server"]["modules"]
    assert document["muc"]["domain"] == adapter["muc_domain"] == "conference.localhost"
    assert document["muc"]["history_length"] == 20
    assert document["muc"]["rate"] == 0, "the harness runs no server with rate limits"


def test_mucScenarioSizes():
    """The muc scenario has ../shared/bench's sizes and parameter names, and the data set has an account for every occupant."""
    for scale, (rooms, occupants, senders) in {"full": (20, 50, 5), "quick": (4, 20, 2)}.items():
        argv = bench.SCENARIOS[scale]["muc"]
        args = load.parseArgs(argv + ["--muc-domain", bench.mucDomain()])
        assert (args.scenario, args.rooms, args.occupants, args.senders, args.window) == (
            "muc", rooms, occupants, senders, 1)
        assert args.muc_domain == "conference.localhost"
        assert rooms * occupants <= bench.DATASETS[scale][0]
    assert bench.MUC_SCENARIOS <= set(bench.SCENARIOS["full"])


def test_roomJoinReplies():
    """Entering a room waits for our own occupant presence past the others', sees whether it created the room, and fails on an error."""
    room = b"bench0@conference.localhost"
    occupant = client.occupantJID(room, 7)
    assert occupant == b"bench0@conference.localhost/n7"

    class Conn:
        buf = (b"<presence from='bench0@conference.localhost/n3'><x/></presence>"
               b"<presence from=\"bench0@conference.localhost/n7\"><x xmlns="
               b"'http://jabber.org/protocol/muc#user'><status code='110'/>"
               b"<status code=\"201\"/></x></presence><message")
    conn = Conn()
    own = client.occupantPresence(occupant)(conn)
    assert own.startswith(b"<presence from=\"bench0@conference.localhost/n7\"")
    assert client.createdRoom(own)
    assert conn.buf == b"<message"
    assert not client.createdRoom(b"<presence><x><status code='110'/></x></presence>")

    conn.buf = b"<presence from='bench0@conference.localhost/n7'"
    assert client.occupantPresence(occupant)(conn) is None
    conn.buf = (b"<presence from='bench0@conference.localhost/n7' type='error'>"
                b"<error type='cancel'><not-allowed/></error></presence>")
    with pytest.raises(client.ProtocolError):
        client.occupantPresence(occupant)(conn)


class FakeConn:
    """Just what L{load.Traffic} touches on a connection."""

    def __init__(self, index):
        self.index, self.buf, self.inflight = index, b"", 0
        self.msgHead = b"<message to='bench0@conference.localhost' type='groupchat'><body>XB"
        self.msgTail = b".%d.pad</body></message>" % index
        self.transport = self
        self.written = []

    def write(self, data):
        self.written.append(data)

    send = write


def reflection(sender: int) -> bytes:
    return (b"<message from='bench0@conference.localhost/n%d' type='groupchat'>"
            b"<body>XB%d.%d.pad</body></message>" % (sender, load.perfNs(), sender))


def test_groupchatDeliveries():
    """Every occupant's copy of a groupchat message counts as a delivery, but only the sender's own copy lets it send the next one."""
    senders = [FakeConn(0), FakeConn(1)]
    listener = FakeConn(2)
    traffic = load.Traffic(senders, window=1, echo=True)
    for sender in senders:
        traffic.sendOne(sender)
    assert [len(s.written) for s in senders] == [1, 1] and traffic.inflight == 2
    traffic.measuring = True

    traffic.onDelivery(listener, b"<presence from='x'/>" + reflection(0) + reflection(1))
    assert traffic.count == 2 and traffic.inflight == 2
    assert [len(s.written) for s in senders] == [1, 1]

    copy = reflection(0)
    traffic.onDelivery(senders[0], copy[:30])
    assert traffic.count == 2
    traffic.onDelivery(senders[0], copy[30:] + reflection(1))
    assert traffic.count == 4 and traffic.sent == 1
    assert senders[0].inflight == 1 and len(senders[0].written) == 2
    assert senders[1].inflight == 1 and len(senders[1].written) == 1

    traffic.sending = False
    traffic.onDelivery(senders[0], reflection(0))
    traffic.onDelivery(senders[1], reflection(1))
    assert traffic.inflight == 0 and traffic.drained.is_set()
    assert len(traffic.latencies) == traffic.count == 6


def test_chatDeliveries():
    """In 1:1 traffic the receiver's copy is what lets the sender send the next message."""
    sender, receiver = FakeConn(0), FakeConn(1)
    traffic = load.Traffic([sender], window=2)
    traffic.sendOne(sender)
    traffic.sendOne(sender)
    traffic.onDelivery(receiver, reflection(0))
    assert traffic.count == 0, "nothing counts outside the measured phase"
    assert sender.inflight == 2 and len(sender.written) == 3


def test_clusterConfigurations(tmp_path):
    """The Redis scenarios' configurations load: a lone node on Redis storage, and two cluster nodes with their own names, ports and data directories on the same Redis."""
    url = "redis://127.0.0.1:6390/0"
    lone = loadConfig(bench.writeConfig(str(tmp_path), port=5222, redis=url))
    assert lone.storage.backend == "redis" and not lone.cluster.enabled
    n1, n2 = (loadConfig(bench.writeConfig(str(tmp_path), port=port, muc=True, redis=url, node=node))
              for port, node in ((5222, "n1"), (5223, "n2")))
    assert (n1.cluster.node, n2.cluster.node) == ("n1", "n2")
    assert n1.storage.backend == n2.storage.backend == "redis"
    assert n1.server.data_dir != n2.server.data_dir
    assert n1.c2s.endpoint != n2.c2s.endpoint


def test_clusterScenarios():
    """Every Redis scenario has a topology, the cluster set holds the lone baselines of the same run, and the message scenarios differ only in the share of pairs across nodes."""
    for scale in ("quick", "full"):
        table = bench.SCENARIOS[scale]
        for percent in (0, 50, 100):
            argv = table["cluster_msg_%d" % percent]
            assert argv[:-2] == table["msg"] and argv[-2:] == ["--cross", str(percent / 100)]
    assert bench.TOPOLOGY["cluster_msg_50"] == (2, "redis")
    assert bench.TOPOLOGY["msg_redis"] == (1, "redis")
    assert bench.TOPOLOGY["msg"] == (1, "sqlite")
    assert {"msg", "msg_redis", "muc", "muc_redis", "idle", "idle_redis"} <= set(bench.CLUSTER_SET)
    assert not any(bench.TOPOLOGY[name][1] == "redis" for name in bench.DEFAULT_SET)


class SpreadArgs:
    port, port2 = 1000, 2000

    def __init__(self, cross):
        self.cross = cross


@pytest.mark.parametrize("cross", [0.0, 0.5, 1.0])
def test_pairsSpreadOverNodes(cross):
    """Senders alternate between the nodes, and the given share of the pairs has its receiver on the other node, as many from each node."""
    pairs = 8
    gen = load.Generator.__new__(load.Generator)
    load.spreadPairs(gen, SpreadArgs(cross), pairs)
    senders = [gen.portFor(i) for i in range(pairs)]
    receivers = [gen.portFor(pairs + i) for i in range(pairs)]
    assert senders.count(1000) == senders.count(2000) == pairs // 2
    crossing = [s != r for s, r in zip(senders, receivers)]
    assert sum(crossing) == cross * pairs
    assert sum(c for c, s in zip(crossing, senders) if s == 1000) == cross * pairs / 2


def test_redisCommandStats():
    """Redis commands are counted per phase from INFO commandstats, commands not called left out."""
    before = redisstat.parseCommandStats(
        "# Commandstats\r\ncmdstat_eval:calls=10,usec=50,usec_per_call=5.00\r\n"
        "cmdstat_xadd:calls=3,usec=9,usec_per_call=3.00\r\n")
    after = redisstat.parseCommandStats(
        "# Commandstats\r\ncmdstat_eval:calls=14,usec=70,usec_per_call=5.00\r\n"
        "cmdstat_xadd:calls=3,usec=9,usec_per_call=3.00\r\n"
        "cmdstat_xread:calls=2,usec=4,usec_per_call=2.00\r\n")
    assert redisstat.callsDelta(before, after) == {"eval": 4, "xread": 2}
    figures = stats.phaseFigures({"wall_s": 1.0, "server_cpu_s": 0.3, "gen_cpu_s": 0.1,
                                  "server_cpu_s_by_process": [0.1, 0.15, 0.05],
                                  "redis_calls": {"eval": 4, "xread": 2}}, 1000, "messages")
    assert figures["server_cpu_ms_per_1k_by_process"] == [100, 150, 50]
    assert figures["redis_calls_per_unit"] == 0.006


def test_reportShowsEachProcess():
    """Scenarios with Redis get a table of each process's CPU per 1000 units and Redis commands per unit."""
    phase = stats.phaseFigures({"wall_s": 1.0, "server_cpu_s": 0.3, "gen_cpu_s": 0.1,
                                "server_cpu_s_by_process": [0.1, 0.15, 0.05],
                                "redis_calls": {"eval": 40}}, 1000, "messages delivered")
    data = {"meta": {}, "runs": [{"scenario": "cluster_msg_50", "rep": 1,
                                  "processes": ["n1", "n2", "redis"],
                                  "result": {"phases": [dict(phase, phase="messages")]}}]}
    assert ("| cluster_msg_50 | messages | 1 | 300 (300-300) | n1 100, n2 150, redis 50 | 0.04 |"
            in report.render(data))


@pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server is not installed")
def test_clusterRunEndToEnd(tmp_path):
    """benchmarks/run.py runs a two-node cluster scenario on a Redis of its own, counts both nodes and Redis, sees the cross-node stanzas in Redis, and leaves no process behind."""
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, os.path.join(BENCHMARKS, "run.py"), "--scenarios", "cluster_msg_50",
         "--accounts", "8", "--server-cpus", "", "--gen-cpus", "", "--out", str(out),
         "--gen-args", "--pairs 4 --window 1 --warmup 0.3 --duration 0.7 --concurrency 8"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with open(out / "results.json") as f:
        data = json.load(f)
    [run] = data["runs"]
    assert run["processes"] == ["n1", "n2", "redis"]
    [phase] = run["result"]["phases"]
    assert phase["count"] > 0 and not phase["undelivered_after_drain"]
    assert len(phase["server_cpu_ms_per_1k_by_process"]) == 3
    assert phase["redis_calls"].get("xadd", 0) > 0, phase["redis_calls"]
    pids = [int(p) for p in run["result"]["args"]["server_pid"]]
    assert not [pid for pid in pids if os.path.exists("/proc/%d" % pid)]


def test_webSocketFraming():
    """The generator's WebSocket frames are what wsproto reads as one whole text message each, masked; it reads wsproto's server frames of every length encoding, in pieces."""
    from wsproto import ConnectionType
    from wsproto.connection import Connection
    from wsproto.events import Message, Ping, TextMessage
    server = Connection(ConnectionType.SERVER)
    payloads = [b"<presence/>", b"<message>" + b"x" * 300 + b"</message>", b"y" * 70000, b""]
    wire = b"".join(client.wsFrame(p) for p in payloads)
    assert all(frame[1] & 0x80 for frame in (client.wsFrame(p) for p in payloads)), "masked"
    server.receive_data(wire)
    got = [e for e in server.events() if isinstance(e, TextMessage)]
    assert [(e.data.encode(), e.frame_finished, e.message_finished) for e in got] == \
        [(p, True, True) for p in payloads]
    sent = b"".join(server.send(Message(data=p.decode())) for p in payloads) + \
        server.send(Ping(b"hi"))
    frames, rest = [], sent
    for i in range(0, len(sent), 1000):
        more, rest = client.wsUnframe((rest if i else b"") + sent[i:i + 1000])
        frames += more
    assert rest == b""
    assert frames == [(1, True, p) for p in payloads] + [(9, True, b"hi")]
    assert client.wsAccept(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_standaloneStanzas():
    """Over WebSocket every stanza declares jabber:client (RFC 7395 §3.3.3), once; other elements and TCP are left alone."""
    assert client.standaloneStanza(b"<presence/>") == b"<presence xmlns='jabber:client'/>"
    assert client.standaloneStanza(b"<message to='a'>x</message>") == \
        b"<message xmlns='jabber:client' to='a'>x</message>"
    once = b"<iq xmlns='jabber:client' type='get'/>"
    assert client.standaloneStanza(once) == once
    sasl = b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>x</auth>"
    assert client.standaloneStanza(sasl) == sasl
    assert client.standaloneStanza(b"<iqx/>") == b"<iqx/>"
    assert client.Conn.standalone(b"<presence/>") == b"<presence/>"
    assert client.WebSocketConn.standalone(b"<presence/>") == b"<presence xmlns='jabber:client'/>"


def test_webSocketScenarios(tmp_path):
    """msg_ws and idle_ws are msg and idle over WebSocket, and their configuration has a plain HTTP listener on loopback, the others none."""
    for scale in ("quick", "full"):
        table = bench.SCENARIOS[scale]
        for name in ("msg", "idle"):
            assert table[name + "_ws"] == table[name] + ["--transport", "ws"]
        assert wsside.SCENARIOS[scale]["msg"] == table["msg"]
    assert bench.WS_SCENARIOS == {"msg_ws", "idle_ws", "msg_bosh", "idle_bosh"}
    assert bench.TOPOLOGY["msg_ws"] == (1, "sqlite")
    ws = loadConfig(bench.writeConfig(str(tmp_path), port=5222, http=5280))
    assert ws.http.endpoint == "tcp:5280:interface=127.0.0.1:backlog=1024"
    assert not ws.http.tls_endpoint
    assert not loadConfig(bench.writeConfig(str(tmp_path), port=5222)).http.endpoint
    args = load.parseArgs(["msg", "--transport", "ws", "--ws-port", "5290"])
    assert (args.transport, args.ws_port, args.ws_path) == ("ws", 5290, "/xmpp-websocket")
    with pytest.raises(SystemExit):
        load.parseArgs(["msg", "--transport", "ws", "--port2", "5223"])


PROSODY_WS = 'modules_enabled = { "roster"; "disco"; }\nhttp_ports = { 5280 }\n'
EJABBERD_WS = """listen:
  -
    port: 5222
    module: ejabberd_c2s
  -
    port: 5280
    ip: "127.0.0.1"
    module: ejabberd_http
    request_handlers:
      /api: mod_http_api
modules:
  mod_disco: {}
"""
XMPPD_WS = '[c2s]\nendpoint = "tcp:5222"\n\n[http]\n# none\nendpoint = ""\ntls_endpoint = ""\n'


def test_enableWebSocket():
    """wsbench's copies of the servers' configs serve /xmpp-websocket on their plain HTTP port, once."""
    text, change = wsside.enableWebSocket("prosody.cfg.lua", PROSODY_WS)
    assert '"disco"; "websocket";' in text and "mod_websocket" in change
    assert wsside.enableWebSocket("prosody.cfg.lua", text) == (text, None)
    text, change = wsside.enableWebSocket("ejabberd.yml", EJABBERD_WS)
    assert ('    ip: "127.0.0.1"\n    backlog: 1024\n    module: ejabberd_http\n'
            "    request_handlers:\n      /xmpp-websocket: ejabberd_http_ws\n      /api:") in text
    assert text.count("backlog") == 1 and "backlog: 1024" in change
    assert wsside.enableWebSocket("ejabberd.yml", text) == (text, None)
    text, change = wsside.enableWebSocket("xmppd.toml", XMPPD_WS)
    assert '[c2s]\nendpoint = "tcp:5222"' in text and change
    assert '[http]\n# none\nendpoint = "tcp:{http_port}:interface={host}:backlog=1024"\n' in text
    assert wsside.enableWebSocket("xmppd.toml", text) == (text, None)
    with open(os.path.join(XBENCH, "xmppd.toml")) as f:
        template = f.read()
    text, change = wsside.enableWebSocket("xmppd.toml", template)
    assert change and tomllib.loads(text.replace("{", "").replace("}", ""))["http"]["endpoint"]


def test_webSocketSummary():
    """The side-by-side table has each server's TCP and WebSocket cost and their ratio, and a failed run under Problems."""
    def run(server, scenario, rep, cost):
        return {"server": server, "scenario": scenario, "rep": rep, "result": {"phases": [
            {"phase": "messages", "count": 100, "server_cpu_ms_per_1k": cost,
             "rate_per_s": 10.0, "bound": "server"}]}}
    data = {"meta": {"scale": "quick", "servers": {"a": {}, "b": {}}},
            "runs": [run("a", "msg", 1, 20.0), run("a", "msg_ws", 1, 30.0),
                     run("a", "msg", 2, 10.0), run("a", "msg_ws", 2, 12.0),
                     {"server": "b", "scenario": "msg_ws", "rep": 1,
                      "result": {"phases": [], "error": "no WebSocket"}}]}
    table = wsside.render(data)
    assert "| a | 2 | 15.0 / 10.0 | 21.0 / 12.0 | 1.40x (1.35x) |" in table
    assert "- b msg_ws rep 1 FAILED: no WebSocket" in table


def test_webSocketRunEndToEnd(tmp_path):
    """benchmarks/run.py runs msg_ws and idle_ws at their smallest: clients log in over WebSocket, every message is delivered, and no process is left behind."""
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, os.path.join(BENCHMARKS, "run.py"), "--scenarios", "msg_ws,idle_ws",
         "--accounts", "8", "--server-cpus", "", "--gen-cpus", "", "--out", str(out),
         "--gen-args", "--pairs 4 --window 1 --warmup 0.3 --duration 0.7 --concurrency 8 "
         "--levels 8 --settle 0.2 --hold 0.2"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with open(out / "results.json") as f:
        data = json.load(f)
    msg, idle = data["runs"]
    [phase] = msg["result"]["phases"]
    assert msg["result"]["args"]["transport"] == "ws"
    assert phase["count"] > 0 and not phase["undelivered_after_drain"]
    assert not phase["lost_connections"]
    [level] = idle["result"]["phases"]
    assert level["sessions"] == 8 and not level["errors"]
    pids = [int(p) for run in data["runs"] for p in run["result"]["args"]["server_pid"]]
    assert not [pid for pid in pids if os.path.exists("/proc/%d" % pid)]
    with open(out / "logs" / "server.msg_ws.1.1.log") as f:
        assert "WebSocketClientStream" in f.read()


def test_boshScenarios():
    """msg_bosh and idle_bosh are msg and idle over BOSH, in the generator's table and wsbench's; --transport bosh takes the HTTP port and /http-bind."""
    for scale in ("quick", "full"):
        for table in (bench.SCENARIOS[scale], wsside.SCENARIOS[scale]):
            for name in ("msg", "idle"):
                assert table[name + "_bosh"] == table[name] + ["--transport", "bosh"]
    assert bench.TOPOLOGY["msg_bosh"] == (1, "sqlite")
    args = load.parseArgs(["msg", "--transport", "bosh", "--ws-port", "5290"])
    assert (args.transport, args.ws_port, args.bosh_path) == ("bosh", 5290, "/http-bind")
    with pytest.raises(SystemExit):
        load.parseArgs(["msg", "--transport", "bosh", "--port2", "5223"])


def test_bodyPayload():
    """A BOSH answer's <body/> gives its start tag and children, empty or not, with or without an XML declaration."""
    tag, payload = client.bodyPayload(
        b"<body xmlns='http://jabber.org/protocol/httpbind' sid='s1'><message to='a'/></body>")
    assert client.attribute(tag, b"sid") == b"s1" and payload == b"<message to='a'/>"
    assert client.bodyPayload(b"<?xml version='1.0'?>\n<body sid='x'/>") == (b"<body sid='x'/>", b"")
    with pytest.raises(client.ProtocolError):
        client.bodyPayload(b"<html>502</html>")


def test_enableBosh():
    """wsbench's copies of the servers' configs serve /http-bind on their plain HTTP port, once."""
    text, change = wsside.enableBosh("prosody.cfg.lua", PROSODY_WS)
    assert '"disco"; "bosh";' in text and "mod_bosh" in change
    assert wsside.enableBosh("prosody.cfg.lua", text) == (text, None)
    text, change = wsside.enableBosh("ejabberd.yml", EJABBERD_WS)
    assert "    request_handlers:\n      /http-bind: mod_bosh\n      /api:" in text
    assert "modules:\n  mod_bosh: {}\n  mod_disco: {}\n" in text and change
    assert wsside.enableBosh("ejabberd.yml", text) == (text, None)
    assert wsside.enableBosh("xmppd.toml", XMPPD_WS) == (XMPPD_WS, None)


class _Wire:
    """A fake transport: what a BOSH leg writes, and whether it was closed."""

    def __init__(self):
        self.written, self.closed = [], False

    def write(self, data):
        self.written.append(data)

    def close(self):
        self.closed = True


class _Loop:
    """
    The generator's loop with connections that open when the test says
    (C{gate}), so that a leg can be caught while it reconnects.
    """

    def __init__(self, loop):
        self.loop, self.gate = loop, None

    def __getattr__(self, name):
        return getattr(self.loop, name)

    async def create_connection(self, factory, host, port):
        if self.gate is not None:
            await self.gate
        protocol = factory()
        wire = _Wire()
        protocol.connection_made(wire)
        return wire, protocol


def _answer(payload: bytes) -> bytes:
    body = b"<body xmlns='http://jabber.org/protocol/httpbind'>%s</body>" % payload
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def _rids(leg) -> list[bytes]:
    return [re.search(rb"rid='(\d+)'", w).group(1) for w in leg.transport.written]


def test_boshKeepsARequestOutWhileReconnecting():
    """The generator's BOSH session always has a request out (msg_bosh's undelivered messages were sessions left with none): an answer that comes while the other connection reopens is followed by a new request; a reopened connection sends one when none is out; a request whose connection the server closed before any answer is sent again with the same rid."""
    async def scenario():
        gen = client.Generator("127.0.0.1", 5222, "localhost", transport="bosh", wsPort=5280)
        loop = gen.loop = _Loop(gen.loop)
        conn = gen.newConn(1, "u1")
        await conn.connect()
        conn.sid = b"s1"
        held, idle = conn.legs
        held.post(conn._request(b""))
        # The server closes the idle connection (its keep-alive timeout),
        # and the held request is answered while it reconnects.
        loop.gate = loop.create_future()
        idle.connection_lost(None)
        await asyncio.sleep(0)
        delivered = []
        conn.onData = lambda c, data: delivered.append(data)
        held.data_received(_answer(b"<message xmlns='jabber:client'>hi</message>"))
        assert delivered == [b"<message xmlns='jabber:client'>hi</message>"]
        assert held.busy and len(held.transport.written) == 2, "a request is out again"
        loop.gate.set_result(None)
        for _ in range(3):
            await asyncio.sleep(0)
        fresh = conn.legs[1]
        assert fresh is not idle and fresh.transport.written == [] and not fresh.busy
        assert gen.boshReconnects == 1 and gen.boshRetries == 0
        # Both idle at once (the answer came back, then the other one
        # closed): the reopened connection sends the request.
        held.data_received(_answer(b""))
        assert held.busy
        held.busy, held.sent = False, None  # as if its answer had come and nothing followed
        loop.gate = None
        fresh.connection_lost(None)
        for _ in range(3):
            await asyncio.sleep(0)
        again = conn.legs[1]
        assert again.busy and len(again.transport.written) == 1
        # That request's connection closes before a byte of the answer:
        # the same rid again, on a new connection.
        again.connection_lost(None)
        for _ in range(3):
            await asyncio.sleep(0)
        retried = conn.legs[1]
        assert _rids(retried) == _rids(again) and retried.busy
        assert not conn.closed and gen.lost == 0 and gen.boshRetries == 1
        # In the middle of an answer it is the session that is lost.
        retried.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n<body")
        retried.connection_lost(None)
        assert conn.closed and gen.lost == 1

    # pytest-twisted's reactor runs an asyncio loop in this thread
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, scenario()).result(timeout=30)


def test_boshRunEndToEnd(tmp_path):
    """benchmarks/run.py runs msg_bosh and idle_bosh at their smallest: clients log in over BOSH, every message is delivered, no connection is lost, and no process is left behind."""
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, os.path.join(BENCHMARKS, "run.py"), "--scenarios", "msg_bosh,idle_bosh",
         "--accounts", "8", "--server-cpus", "", "--gen-cpus", "", "--out", str(out),
         "--gen-args", "--pairs 4 --window 1 --warmup 0.3 --duration 0.7 --concurrency 8 "
         "--levels 8 --settle 0.2 --hold 0.2"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with open(out / "results.json") as f:
        data = json.load(f)
    msg, idle = data["runs"]
    [phase] = msg["result"]["phases"]
    assert msg["result"]["args"]["transport"] == "bosh"
    assert phase["count"] > 0 and not phase["undelivered_after_drain"]
    assert not phase["lost_connections"]
    [level] = idle["result"]["phases"]
    assert level["sessions"] == 8 and not level["errors"]
    pids = [int(p) for run in data["runs"] for p in run["result"]["args"]["server_pid"]]
    assert not [pid for pid in pids if os.path.exists("/proc/%d" % pid)]
    with open(out / "logs" / "server.msg_bosh.1.1.log") as f:
        assert "BOSH session" in f.read()


# The reconnect storm (issue 16, item 7): benchmarks/stormbench.py


def test_stormScramSHA256():
    """The storm generator's SCRAM client matches the SCRAM-SHA-256 exchange of RFC 7677 §3, and SHA-1's of RFC 5802 §5."""
    final, serverFinal = storm.scramFinal(
        "SCRAM-SHA-256", "user", "pencil", "rOprNGfwEbeRWgbNEkqO",
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
    assert final == ("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                     "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    assert serverFinal == "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    final, serverFinal = storm.scramFinal(
        "SCRAM-SHA-1", "user", "pencil", "fyko+d2lbbFgONRv9qkxdawL",
        "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
    assert serverFinal == "v=rmF9pqV8S7suAoZWja4dJRkFsKQ="
    assert storm.pickScram(b"<mechanism>SCRAM-SHA-1</mechanism><mechanism>SCRAM-SHA-256"
                           b"</mechanism>") == "SCRAM-SHA-256"
    with pytest.raises(client.ProtocolError):
        storm.pickScram(b"<mechanism>PLAIN</mechanism>")


def test_stormFastProof():
    """The generator's HT-SHA-256-NONE proof, HMAC keyed on the token text, is what xmppd checks with the SHA-256 of the token it stores (XEP-0484, HMAC keys longer than the block are hashed)."""
    from xmppd.c2s.fast import newToken, tokenHash
    token = newToken().encode()
    assert hmac.digest(token, b"Initiator", "sha256") == hmac.digest(
        tokenHash(token.decode()), b"Initiator", "sha256")


#: The team's side-by-side harness lives beside the repository (../shared/bench),
#: not in it: a clone elsewhere has none, and these tests say so.
needHarness = pytest.mark.skipif(
    not os.path.isdir(os.path.join(stormside.DEFAULT_BENCH, "xbench")),
    reason="the side-by-side harness (../shared/bench) is not beside this checkout")


@needHarness
def test_stormServerConfigurations():
    """Every storm server's config edit applies to the harness's template it edits: stream management everywhere, SCRAM storage for ejabberd, FAST for xmppd."""
    sys.path.insert(0, stormside.DEFAULT_BENCH)
    try:
        from xbench import adapters
    finally:
        sys.path.remove(stormside.DEFAULT_BENCH)
    assert {"sm", "fast"} <= set(FEATURES)
    for name, (spec, _, edits, _) in stormside.STORM_SERVERS.items():
        directory = os.path.dirname(adapters.find_adapter(spec))
        for template, edit in edits.items():
            with open(os.path.join(directory, template)) as f:
                text = edit(f.read())
            assert {"prosody.cfg.lua": '"smacks";', "ejabberd.yml": "mod_stream_mgmt:",
                    "xmppd.toml": '"sm", "fast"'}[template] in text, name
        assert set(stormside.PLAN[name]) <= set(storm.KINDS)
    with open(os.path.join(stormside.DEFAULT_BENCH, "servers", "ejabberd", "ejabberd.yml")) as f:
        assert "auth_scram_hash: sha256" in stormside.ejabberdScram(f.read())


def test_stormReport():
    """The storm's table has one row per (kind, server) with the reconnects' cost, and lists failed runs."""
    phase = {"phase": "reconnect", "count": 5, "clients": 5, "server_cpu_ms_per_1k": 420.0,
             "all_back_s": 0.5, "latency": {"p50_ms": 10.0, "p99_ms": 20.0},
             "mechanisms": {"HT-SHA-256-NONE": 5}, "bound": "server"}
    data = {"meta": {"scale": "smoke", "clients": 5, "servers": {}},
            "runs": [{"server": "xmppd", "kind": "fast", "rep": 1,
                      "result": {"phases": [phase], "error": None}},
                     {"server": "prosody-hashed", "kind": "resume", "rep": 1,
                      "result": None, "note": "generator timed out"}]}
    text = stormside.render(data)
    assert "| (b) SASL2 + Bind 2 + FAST (HT-SHA-256-NONE), after a restart | xmppd | " \
           "HT-SHA-256-NONE | 1 | 5/5 | 420 / 420 | 0.50 | 10.0 | 20.0 |" in text
    assert "prosody-hashed resume rep 1 FAILED: generator timed out" in text


def freePort() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not os.path.isdir(stormside.DEFAULT_BENCH) or not shutil.which("openssl"),
                    reason="the team's harness (../shared/bench) or openssl is missing")
def test_stormRunEndToEnd(tmp_path):
    """benchmarks/stormbench.py at its smallest: xmppd with 5 clients, SASL2 SCRAM with a FAST token request first, then all five log in again with the token after a restart, and resume inline after their connections broke; nothing is left running."""
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, os.path.join(BENCHMARKS, "stormbench.py"), "--servers", "xmppd",
         "--kinds", "fast,fast_resume", "--clients", "5", "--server-cpus", "",
         "--gen-cpus", "", "--gen-python", sys.executable, "--timeout", "120",
         "--set", "xmppd.port=%d" % freePort(), "--set", "xmppd.workdir=%s" % (tmp_path / "w"),
         "--set", "xmppd.xmppd_bin=%s" % os.path.dirname(sys.executable), "--out", str(out)],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with open(out / "summary.json") as f:
        data = json.load(f)
    byKind = {run["kind"]: run["result"]["phases"][-1] for run in data["runs"]}
    assert sorted(byKind) == ["fast", "fast_resume"]
    for kind, phase in byKind.items():
        assert phase["count"] == 5 and not phase["errors"], (kind, phase)
        assert phase["mechanisms"] == {"HT-SHA-256-NONE": 5}
    assert "| (b) SASL2 + Bind 2 + FAST" in (out / "summary.md").read_text()
    pids = [int(p) for run in data["runs"] for p in run["result"]["args"]["server_pid"]]
    assert pids and not [pid for pid in pids if os.path.exists("/proc/%d" % pid)]


@needHarness
def test_stormSplitsEjabberdImport(tmp_path):
    """ejabberd-scram imports the harness's data set in XEP-0227 files of a few accounts each, every account once, each file whole."""
    sys.path.insert(0, stormside.DEFAULT_BENCH)
    try:
        from xbench import provision
    finally:
        sys.path.remove(stormside.DEFAULT_BENCH)
    provision.make(str(tmp_path), "localhost", 7, 0, 20)
    assert stormside.splitPIE(str(tmp_path), size=3) == 3
    names = []
    for chunk in sorted((tmp_path / "chunks").iterdir()):
        text = chunk.read_text()
        assert text.startswith("<?xml") and text.rstrip().endswith("</server-data>")
        names += re.findall(r'<user name="(u\d+)"', text)
    assert names == ["u%d" % i for i in range(1, 8)]
