"""
Tests for the benchmark's C{pep} scenario (C{benchmarks/xmppdbench}): its
entity capabilities hash as XEP-0115 computes it, the side-by-side
runner switches PEP on in the reference servers' configs, and the
generator runs the whole scenario against a tiny in-process fake PEP
server, and fails with a message, not a hang, against one without PEP.
Nothing is timed; Prosody and ejabberd are not needed.
"""

import asyncio
import base64
import concurrent.futures
import gc
import xml.etree.ElementTree as ET

from benchmarks.xmppdbench import caps, load, pepside

NS_DISCO = "{http://jabber.org/protocol/disco#info}"
FEATURES_BEFORE_AUTH = (b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                        b"<mechanism>PLAIN</mechanism></mechanisms></stream:features>")
FEATURES_AFTER_AUTH = (b"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
                       b"</stream:features>")


def infoHash(result: bytes) -> tuple[str, list[str]]:
    """The XEP-0115 ver of a disco#info result, and its features, as a server computes them."""
    query = ET.fromstring(result).find(NS_DISCO + "query")
    lang = "{http://www.w3.org/XML/1998/namespace}lang"
    identities = [(i.get("category"), i.get("type"), i.get(lang) or "", i.get("name") or "")
                  for i in query.findall(NS_DISCO + "identity")]
    features = [f.get("var") for f in query.findall(NS_DISCO + "feature")]
    return caps.verification(identities, features), features


class FakePEP:
    """
    The server side of the scenario, just enough of it: PLAIN, bind,
    roster, presence within cliques of C{K+1} (echo, broadcast, probes
    answered), one disco#info query per unknown caps ver (its node
    attribute first, as Prosody sends it), and PEP publish with
    notifications to interested online clique members and the owner;
    or, with C{pep=False}, every publish refused as xmppd without PEP does.
    """

    def __init__(self, K: int, pep: bool = True):
        self.K, self.pep = K, pep
        self.online, self.verNotify, self.asked = {}, {}, set()

    def clique(self, user: str) -> int:
        return (int(user[1:]) - 1) // (self.K + 1)


class FakeC2S(asyncio.Protocol):
    def __init__(self, server: FakePEP):
        self.server, self.buf, self.user, self.full, self.ver = server, b"", None, None, None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buf += data
        start = self.buf.find(b"<stream:stream")
        if start >= 0 and start <= 30:
            end = self.buf.find(b">", start)
            self.buf = self.buf[end + 1:]
            self.transport.write(b"<stream:stream xmlns='jabber:client' xmlns:stream="
                                 b"'http://etherx.jabber.org/streams' from='localhost' id='s' "
                                 b"version='1.0'>"
                                 + (FEATURES_AFTER_AUTH if self.user else FEATURES_BEFORE_AUTH))
        stanzas, self.buf = load.splitStanzas(self.buf)
        for name, element in stanzas:
            getattr(self, "on_" + name.decode().replace(":", "_"), lambda e: None)(element)

    def connection_lost(self, exc):
        if self.full:
            self.server.online.pop(self.user, None)

    def on_auth(self, element):
        token = element[element.find(b">") + 1:element.rfind(b"<")]
        self.user = base64.b64decode(token).split(b"\0")[1].decode()
        self.transport.write(b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")

    def on_iq(self, element):
        tag = element[:element.find(b">") + 1]
        kind, iqId = load.attribute(tag, b"type"), load.attribute(tag, b"id")
        if b"urn:ietf:params:xml:ns:xmpp-bind" in element:
            resource = element[element.find(b"<resource>") + 10:element.find(b"</resource>")]
            self.full = b"%s@localhost/%s" % (self.user.encode(), resource)
            self.transport.write(b"<iq type='result' id='bind'><bind xmlns='urn:ietf:params:xml:"
                                 b"ns:xmpp-bind'><jid>" + self.full + b"</jid></bind></iq>")
        elif b"jabber:iq:roster" in element:
            self.transport.write(b"<iq type='result' id='roster'>"
                                 b"<query xmlns='jabber:iq:roster'/></iq>")
        elif kind == b"result" and iqId.startswith(b"disco"):
            ver, features = infoHash(element)
            if ver == iqId[5:].decode():
                self.server.verNotify[ver] = caps.PEP_NODE + "+notify" in features
        elif b"http://jabber.org/protocol/pubsub" in element:
            if not self.server.pep:
                self.transport.write(b"<iq type='error' id='" + iqId + b"'><error type='cancel'>"
                                     b"<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-"
                                     b"stanzas'/></error></iq>")
                return
            self.transport.write(b"<iq type='result' id='" + iqId + b"'/>")
            item = element[element.find(b"<item"):element.find(b"</item>") + 7]
            event = (b"<message from='%s@localhost' type='headline'><event xmlns='http://"
                     b"jabber.org/protocol/pubsub#event'><items node='%s'>%s</items></event>"
                     b"</message>"
                     % (self.user.encode(), caps.PEP_NODE.encode(), item))
            for other in self.server.online.values():
                if self.server.clique(other.user) == self.server.clique(self.user) \
                        and self.server.verNotify.get(other.ver):
                    other.transport.write(event)

    def on_presence(self, element):
        self.ver = load.attribute(element[element.find(b"<c "):], b"ver").decode()
        if self.ver not in self.server.asked:
            self.server.asked.add(self.ver)
            self.transport.write(
                b"<iq type='get' id='disco%s' from='localhost' to='%s'><query node='%s#%s' "
                b"xmlns='http://jabber.org/protocol/disco#info'/></iq>"
                % (self.ver.encode(), self.full, caps.CAPS_NODE.encode(), self.ver.encode()))
        mine = b"<presence from='%s'/>" % self.full
        self.transport.write(mine)
        for other in self.server.online.values():
            if self.server.clique(other.user) == self.server.clique(self.user):
                other.transport.write(mine)
                self.transport.write(b"<presence from='%s'/>" % other.full)
        self.server.online[self.user] = self


def runScenario(server: FakePEP, *extra: str) -> dict:
    """The generator's C{pep} run against C{server}, 12 accounts in cliques of 4."""
    async def main():
        listener = await asyncio.get_running_loop().create_server(
            lambda: FakeC2S(server), "127.0.0.1", 0)
        args = load.parseArgs(["pep", "--port", str(listener.sockets[0].getsockname()[1]),
                               "--users", "12", "--roster-size", "3", "--timeout", "20",
                               "--no-uvloop", *extra])
        args.loop = "asyncio"
        try:
            return await asyncio.wait_for(load.run(args), 60)
        finally:
            listener.close()
    # its own thread and loop: the test process's reactor may run an asyncio loop here
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        try:
            return thread.submit(asyncio.run, main()).result(120)
        finally:
            gc.unfreeze()


def test_verificationString():
    """The caps hash is XEP-0115's: the spec's own example, and the disco#info answer hashes to the ver the presence advertises."""
    assert caps.verification([("client", "pc", "", "Exodus 0.9.1")], [
        "http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#info",
        "http://jabber.org/protocol/disco#items", "http://jabber.org/protocol/muc",
    ]) == "QgayPKawpkPSDYmwT/WM94uAlu0="
    capabilities = caps.Capabilities()
    result = capabilities.infoResult(b"q1", b"p1@localhost", capabilities.queryNode)
    ver, features = infoHash(result)
    assert ver == capabilities.ver
    assert caps.PEP_NODE + "+notify" in features
    assert b"ver='%s'" % ver.encode() in capabilities.presence
    assert result.startswith(b"<iq type='result' id='q1' to='p1@localhost'>")


def test_stanzaSplitting():
    """Stanzas split at any byte boundary come out whole, and the end of the stream is skipped."""
    data = (b"<presence from='a'/><iq type='get' id='x'><query/></iq></stream:stream>"
            b"<message><event/></message>")
    for cut in range(len(data)):
        first, rest = load.splitStanzas(data[:cut])
        second, rest = load.splitStanzas(rest + data[cut:])
        assert [name for name, _ in first + second] == [b"presence", b"iq", b"message"]
        assert rest == b""


def test_pepScenario():
    """Against a server with PEP every contact gets every contact's item and each owner its own, after one caps query."""
    result = runScenario(FakePEP(K=3))
    assert result["error"] is None
    settle, pep = result["phases"]
    assert settle["count"] == 12 * 4 and settle["incomplete_users"] == 0
    assert settle["caps_queries_answered"] == settle["caps_queries_in_warmup"] == 1
    assert settle["caps_warmup_clients"] == 1 and settle["create_failed"] == {}
    assert pep["count"] == pep["expected"] == 12 * 3
    assert pep["owner_notifications"] == 12 and pep["duplicate_notifications"] == 0
    assert pep["publish_replies"] == 12 and pep["publish_errors"] == {}
    assert pep["latency"]["n"] == 36


def test_withoutPEP():
    """A server without PEP fails the scenario with a message saying so, instead of hanging."""
    result = runScenario(FakePEP(K=3, pep=False))
    assert result["phases"] == []
    assert result["error"] == ("the server refused every PEP publish (12 x service-unavailable): "
                               "no XEP-0163 PEP on the account's bare JID")
    result = runScenario(FakePEP(K=3, pep=False), "--create-window", "0")
    assert result["error"].startswith(
        "the server refused every PEP publish (12 x service-unavailable)")
    assert [phase["phase"] for phase in result["phases"]] == ["caps-presence", "pep"]


PROSODY = 'modules_enabled = { "roster"; "disco"; }\nVirtualHost "x"\n'
EJABBERD = "hosts:\n  - x\nmodules:\n  mod_disco: {}\n  mod_muc:\n    hosts: []\n"
XMPPD = '[server]\nmodules = ["presence", "roster"]\n'


def test_enablePEP():
    """The runner's copies of the reference servers' configs load PEP, once, and xmppd gets it only if it has it."""
    text, change = pepside.enablePEP("prosody.cfg.lua", PROSODY)
    assert '"disco"; "pep";' in text and "mod_pep" in change
    assert pepside.enablePEP("prosody.cfg.lua", text) == (text, None)
    text, change = pepside.enablePEP("ejabberd.yml", EJABBERD)
    assert "modules:\n" + pepside.EJABBERD_PEP + "  mod_disco: {}" in text and change
    assert pepside.enablePEP("ejabberd.yml", text) == (text, None)
    assert pepside.enablePEP("xmppd.toml", XMPPD, ["presence", "roster"]) == (XMPPD, None)
    text, change = pepside.enablePEP("xmppd.toml", XMPPD, ["presence", "roster", "pep"])
    assert 'modules = ["presence", "roster", "pep"]' in text and change
    assert pepside.enablePEP("inetrc", "x", []) == ("x", None)
    assert pepside.shiftPorts('port = 5222\n[vars]\nhttp_port = 5280\nnode = "n"\n', 50) == \
        'port = 5272\n[vars]\nhttp_port = 5330\nnode = "n"\n'


def test_summaryTable():
    """The summary has a row per server with its counts, and a failed run's reason under Problems."""
    pep = {"phase": "pep", "count": 36, "expected": 36, "owner_notifications": 12,
           "server_cpu_ms_per_1k": 50.0, "latency": {"p50_ms": 1.0, "p99_ms": 2.0}}
    data = {"meta": {"scale": "quick", "users": 12, "roster_size": 3, "servers": {}},
            "runs": [{"server": "a", "rep": 1, "result": {"phases": [pep]}},
                     {"server": "b", "rep": 1, "result": {"phases": [], "error": "no PEP"}}]}
    table = pepside.render(data)
    assert "| a | 1 | 36 (36) | 12 | 0 | 50.0 / 50.0 |" in table
    assert "| b | 0 | FAILED |" in table and "- b rep 1 FAILED: no PEP" in table
