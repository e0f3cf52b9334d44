"""
The cluster on Redis (xmppd.cluster, issue 14): the C{[cluster]} section,
the session directory shared by nodes, and stanzas between nodes, with two
nodes (two whole service trees) in this process sharing the test's own
redis-server.
"""

from __future__ import annotations

import subprocess
import sys
import time

import greenlet
import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import xmlstream
from twisted.words.xish import domish

from xmppd.config import configFromDict
from xmppd.config.redisurl import parseRedisURL
from xmppd.config.schema import ConfigError
from xmppd.core.hooks import Hooks
from xmppd.core.jid import parseJID
from xmppd.testing import ServerFixture
from tests.redisserver import redisServer, _moduleRedis  # noqa: F401  (fixtures)
from tests.test_sessions import BALCONY, DirectoryContract, FakeStream

#: Every wait of these tests ends after this many seconds.
TIMEOUT = 10.0


# -- configuration -----------------------------------------------------------


def test_noClusterByDefault():
    """Without a [cluster] section, clustering is off."""
    assert not configFromDict({}).cluster.enabled


def test_clusterSection():
    config = configFromDict({"cluster": {"node": "n1", "heartbeat": 1, "lease": 5,
                                         "redis": "redis://10.1.2.3:7000/2"}})
    assert config.cluster.enabled and config.cluster.node == "n1"
    assert config.cluster.redis == parseRedisURL("redis://10.1.2.3:7000/2")


@pytest.mark.parametrize("section, message", [
    ({"heartbeat": 1}, "cluster.node: required"),
    ({"node": "n 1"}, "cluster.node: a node name is"),
    ({"node": "n1", "heartbeat": 5, "lease": 5}, "cluster.lease: must be more"),
    ({"node": "n1", "heartbeat": 0}, "cluster.heartbeat"),
    ({"node": "n1", "redis": "http://x"}, "cluster.redis"),
])
def test_clusterSectionRefused(section, message):
    with pytest.raises(ConfigError) as e:
        configFromDict({"cluster": section})
    assert str(e.value).startswith(message)


def test_defaultRedis():
    """No cluster.redis: the storage's Redis when that key exists, else the local default."""
    from xmppd.cluster.service import clusterAddress
    config = configFromDict({"cluster": {"node": "n1"}})
    expected = getattr(config.storage, "redis", None) or parseRedisURL("redis://127.0.0.1:6379/0")
    assert clusterAddress(config) == expected


def test_loneNodeImportsNoCluster(tmp_path):
    """A node without [cluster] pays nothing: xmppd.cluster is not even imported."""
    program = (
        "import sys\n"
        "from xmppd.config import configFromDict\n"
        "from xmppd.tap import makeService\n"
        "config = configFromDict({'server': {'data_dir': %r}, 'storage': {'backend': 'memory'}})\n"
        "makeService(config)\n"
        "print(sorted(m for m in sys.modules if m.startswith('xmppd.cluster')))\n"
    ) % (str(tmp_path),)
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            timeout=60, cwd=str(tmp_path.parent.parent) if False else None)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# -- helpers -------------------------------------------------------------------


async def waitFor(predicate, timeout: float = TIMEOUT) -> None:
    """Poll C{predicate} on the reactor until true; fail after C{timeout}."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within %s s" % (timeout,))
        await task.deferLater(reactor, 0.01, lambda: None)


def clusterConfig(url: str, node: str, heartbeat: float = 0.25, lease: float = 1.5) -> dict:
    return {"storage": {"backend": "memory"},
            "cluster": {"node": node, "redis": url, "heartbeat": heartbeat, "lease": lease}}


ACCOUNTS = {"romeo": "r", "juliet": "j"}


async def startNode(url: str, node: str, **kwargs) -> ServerFixture:
    fixture = ServerFixture(dict(ACCOUNTS), config=clusterConfig(url, node, **kwargs))
    await fixture.start()
    await fixture.service.getServiceNamed("cluster").started
    return fixture


class Nodes:
    """Two nodes a and b; closed at the end of the test."""

    def __init__(self):
        self.fixtures = []

    async def start(self, url, *names, **kwargs):
        for name in names:
            self.fixtures.append(await startNode(url, name, **kwargs))
        return self.fixtures

    async def close(self):
        for fixture in self.fixtures:
            await fixture.close()


def collect(stream, name="message"):
    got = []
    stream.addObserver("/" + name, got.append)
    return got


def chat(to: str, body: str, id: str = "m") -> domish.Element:
    message = domish.Element((None, "message"))
    message["to"], message["type"], message["id"] = to, "chat", id
    message.addElement("body", content=body)
    return message


# -- the directory contract, against Redis -------------------------------------


class FakeServer:
    """What a L{ClusterService} needs of its node, for the directory alone."""

    def __init__(self, url):
        self.config = configFromDict(clusterConfig(url, "t"))
        self.clock = self.reactor = reactor
        self.sessions = None
        self.secret = b"\x05" * 32
        self.startGates = []
        self.hooks = Hooks()
        self.routed = []
        self.router = self

    def route(self, stanza):
        self.routed.append(stanza)


def inGreenlet(method):
    """
    Run the synchronous test C{method} in a greenlet of its own, so that it
    may wait for the reactor (C{pytest_twisted.blockon}), which a test body
    run in the reactor's greenlet cannot; the test answers with a Deferred.
    """

    def test(self):
        done = defer.Deferred()

        def body():
            from xmppd.cluster.service import ClusterService
            cluster = ClusterService(FakeServer(self.url))
            cluster.startService()
            try:
                pytest_twisted.blockon(cluster.started)
                self.directory = cluster.directory
                method(self)
            except BaseException:
                result = Failure()
            else:
                result = None
            pytest_twisted.blockon(cluster.stopService())
            # Fired from the reactor's greenlet: whoever waits for it switches
            # away, and this greenlet must be left to end, not suspended.
            reactor.callLater(0, done.callback if result is None else done.errback, result)

        greenlet.greenlet(body).switch()
        return done

    test.__name__, test.__doc__ = method.__name__, method.__doc__
    return test


def blockingContract(cls):
    """Every test of C{cls} and its bases, run by L{inGreenlet}."""
    for name in dir(cls):
        if name.startswith("test_"):
            setattr(cls, name, inGreenlet(getattr(cls, name)))
    return cls


@blockingContract
class TestClusterDirectoryContract(DirectoryContract):
    """The contract of L{ISessionDirectory} (tests/test_sessions.py), on Redis."""

    @pytest.fixture(autouse=True)
    def _redis(self, redisServer):
        self.url = redisServer.url

    def makeDirectory(self):
        return self.directory

    def bind(self, directory, jid, stream=None):
        return pytest_twisted.blockon(directory.bind(parseJID(jid), stream or FakeStream()))

    def settle(self, d):
        assert pytest_twisted.blockon(d) is None

    def test_bindIsAsynchronous(self):
        """Bind answers with a Deferred that fires with the view of the new binding."""
        d = self.directory.bind(parseJID(BALCONY), FakeStream())
        assert isinstance(d, defer.Deferred)
        assert pytest_twisted.blockon(d).jid == parseJID(BALCONY)

    def test_replacedBeforeBindFires(self):
        """The old holder has been told to go by the time the new bind's Deferred fires."""
        old = FakeStream()
        self.bind(self.directory, BALCONY, old)
        seen = []
        d = self.directory.bind(parseJID(BALCONY), FakeStream())
        d.addCallback(lambda view: seen.append(old.replaced))
        pytest_twisted.blockon(d)
        assert seen == [True]


# -- two nodes -------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_bindConflictAcrossNodes(redisServer):
    """Binding on node b a full JID online on node a closes a's stream with conflict."""
    nodes = Nodes()
    try:
        a, b = await nodes.start(redisServer.url, "a", "b")
        first = await a.login("juliet", resource="balcony")
        errors = collect(first, "error")
        await b.login("juliet", resource="balcony")
        await waitFor(lambda: errors)
        assert errors[0].firstChildElement().name == "conflict"
        await defer.Deferred.fromCoroutine(_wait(first.lost))
        juliet = parseJID("juliet@localhost/balcony")
        # Both replicas agree: b holds it.
        await waitFor(lambda: getattr(a.service.sessions.get(juliet), "node", None) == "b")
        assert b.service.sessions.local(b.service.sessions.get(juliet).token) is not None
        assert len(a.service.sessions) == 0 and len(b.service.sessions) == 1
    finally:
        await nodes.close()


async def _wait(d):
    return await d.addTimeout(TIMEOUT, reactor)


@pytest_twisted.ensureDeferred
async def test_messagesAcrossNodesInOrder(redisServer):
    """A client on node a sends 100 messages to a client on node b: all arrive, in order."""
    nodes = Nodes()
    try:
        a, b = await nodes.start(redisServer.url, "a", "b")
        romeo = await a.login("romeo", resource="orchard")
        juliet = await b.login("juliet", resource="balcony")
        got = collect(juliet)
        await waitFor(lambda: a.service.sessions.get(parseJID("juliet@localhost/balcony")))
        for i in range(100):
            romeo.send(chat("juliet@localhost/balcony", "m%d" % i, "m%d" % i))
        await waitFor(lambda: len(got) >= 100)
        assert [str(m.body) for m in got] == ["m%d" % i for i in range(100)]
        assert {m["from"] for m in got} == {"romeo@localhost/orchard"}
        # They went through b's inbox, not around it.
        assert a.service.cluster.transport.forwarded >= 100
        assert b.service.cluster.transport.delivered >= 100
        # ...and back, to the bare JID (RFC 6121 §8.5.2: the available resources).
        back = collect(romeo)
        romeo.send(domish.Element((None, "presence")))
        await waitFor(lambda: b.service.sessions.availableSessionsOf(parseJID("romeo@localhost")))
        juliet.send(chat("romeo@localhost", "hi"))
        await waitFor(lambda: back)
        assert str(back[0].body) == "hi"
        # Nothing is left in the inboxes.
        assert redisServer.command("XLEN", "xmppd:c:inbox:b") == b":0"
    finally:
        await nodes.close()


async def managedPair(nodes, url):
    """
    Nodes a and b, Romeo on a, and Juliet on b with stream management
    (XEP-0198) enabled, not answering its requests: what she acknowledges
    is up to the test.
    """
    a, b = await nodes.start(url, "a", "b")
    romeo = await a.login("romeo", resource="orchard")
    juliet = await b.login("juliet", resource="balcony")
    enabled = collect(juliet, "enabled")
    juliet.send("<enable xmlns='urn:xmpp:sm:3'/>")
    await waitFor(lambda: enabled)
    await waitFor(lambda: a.service.sessions.get(parseJID("juliet@localhost/balcony")))
    return a, b, romeo, juliet


@pytest_twisted.ensureDeferred
async def test_inboxKeptUntilAcknowledged(redisServer):
    """
    A stanza from another node stays in the inbox until the recipient's
    stream management acknowledges it; then its entry is deleted.
    """
    nodes = Nodes()
    try:
        a, b, romeo, juliet = await managedPair(nodes, redisServer.url)
        got = collect(juliet)
        for i in range(3):
            romeo.send(chat("juliet@localhost/balcony", "m%d" % i, "m%d" % i))
        await waitFor(lambda: len(got) == 3)
        transport = b.service.cluster.transport
        assert transport.holding >= 1
        assert redisServer.command("XLEN", "xmppd:c:inbox:b") != b":0"
        juliet.send("<a xmlns='urn:xmpp:sm:3' h='2'/>")
        romeo.send(chat("juliet@localhost/balcony", "m3", "m3"))
        await waitFor(lambda: len(got) == 4)
        assert redisServer.command("XLEN", "xmppd:c:inbox:b") != b":0"
        juliet.send("<a xmlns='urn:xmpp:sm:3' h='4'/>")
        await waitFor(lambda: redisServer.command("XLEN", "xmppd:c:inbox:b") == b":0")
        assert transport.holding == 0
    finally:
        await nodes.close()


@pytest_twisted.ensureDeferred
async def test_unacknowledgedSurviveTheNode(redisServer):
    """
    The recipient's node dies after writing stanzas to the client and before
    the client acknowledged them: they are still in its inbox, and the node
    that reaps it stores them offline (at least once: the client saw them).
    """
    nodes = Nodes()
    try:
        a, b, romeo, juliet = await managedPair(nodes, redisServer.url)
        got = collect(juliet)
        for i in range(3):
            romeo.send(chat("juliet@localhost/balcony", "m%d" % i, "m%d" % i))
        await waitFor(lambda: len(got) == 3)
        clusterA = a.service.getServiceNamed("cluster")
        await waitFor(clusterA.mayReap)
        kill(b)
        redisServer.command("DEL", "xmppd:c:node:b")
        offline = a.service.storage.offline
        deadline = time.monotonic() + TIMEOUT
        while await offline.count("juliet", "localhost") < 3:
            assert time.monotonic() < deadline, "not stored offline"
            await task.deferLater(reactor, 0.01, lambda: None)
        stored = await offline.fetch("juliet", "localhost")
        assert [("m%d" % i) in m.xml for i, m in enumerate(stored)] == [True] * 3
    finally:
        await nodes.close()


@pytest_twisted.ensureDeferred
async def test_inboxSettledWhenSessionEnds(redisServer):
    """
    A session that ends without acknowledging hands its stanzas on (offline
    storage here, XEP-0198 §4); the inbox entry goes once they are stored.
    """
    nodes = Nodes()
    try:
        a, b, romeo, juliet = await managedPair(nodes, redisServer.url)
        got = collect(juliet)
        romeo.send(chat("juliet@localhost/balcony", "unacked", "u"))
        await waitFor(lambda: got)
        assert redisServer.command("XLEN", "xmppd:c:inbox:b") != b":0"
        juliet.sendFooter()
        juliet.transport.loseConnection()
        await waitFor(lambda: redisServer.command("XLEN", "xmppd:c:inbox:b") == b":0")
        [message] = await b.service.storage.offline.fetch("juliet", "localhost")
        assert "unacked" in message.xml
        assert b.service.cluster.transport.holding == 0
    finally:
        await nodes.close()


@pytest_twisted.ensureDeferred
async def test_deadNodeSessionsVanish(redisServer):
    """A node whose heartbeat stops loses its sessions on the other nodes."""
    nodes = Nodes()
    try:
        a, b = await nodes.start(redisServer.url, "a", "b")
        await b.login("juliet", resource="balcony")
        juliet = parseJID("juliet@localhost/balcony")
        await waitFor(lambda: a.service.sessions.get(juliet) is not None)
        kill(b)
        await waitFor(lambda: a.service.sessions.get(juliet) is None)
        assert redisServer.command("HLEN", "xmppd:c:sessions") == b":0"
        assert redisServer.command("SISMEMBER", "xmppd:c:nodes", "b") == b":0"
    finally:
        await nodes.close()


def kill(fixture) -> None:
    """
    Make C{fixture}'s node stop as a killed process would, as far as the
    cluster sees: no heartbeat, no inbox reader, deaf to the channels (its
    clients stay connected, which a killed node's would not).
    """
    cluster = fixture.service.getServiceNamed("cluster")
    cluster.beating.stop()
    cluster.transport.stop()
    cluster.checkNodes = lambda: None
    cluster.subscriber.disconnect()


@pytest_twisted.ensureDeferred
async def test_messageToDeadNodeStoredOffline(redisServer):
    """A message for a session whose node died is stored offline (RFC 6121 §8.5.2.2.1), not lost."""
    nodes = Nodes()
    try:
        a, b = await nodes.start(redisServer.url, "a", "b")
        romeo = await a.login("romeo", resource="orchard")
        await b.login("juliet", resource="balcony")
        juliet = parseJID("juliet@localhost/balcony")
        await waitFor(lambda: a.service.sessions.get(juliet) is not None)
        clusterA = a.service.getServiceNamed("cluster")
        await waitFor(clusterA.mayReap)
        # Node a's heartbeat watch looks away: the forward itself finds b dead.
        clusterA.checkNodes = lambda: None
        kill(b)
        # Its heartbeat key goes (a SIGKILL'd node's would expire after the lease).
        redisServer.command("DEL", "xmppd:c:node:b")
        romeo.send(chat("juliet@localhost/balcony", "are you there?"))
        await waitFor(lambda: a.service.sessions.get(juliet) is None)
        offline = a.service.storage.offline
        deadline = time.monotonic() + TIMEOUT
        while not await offline.count("juliet", "localhost"):
            assert time.monotonic() < deadline, "not stored offline"
            await task.deferLater(reactor, 0.01, lambda: None)
        [message] = await offline.fetch("juliet", "localhost")
        assert "are you there?" in message.xml
        assert redisServer.command("EXISTS", "xmppd:c:inbox:b") == b":0"
    finally:
        await nodes.close()


@pytest_twisted.ensureDeferred
async def test_cachesInvalidatedAcrossNodes(redisServer):
    """A roster or account-data value written on node a is dropped from node b's caches."""
    from xmppd.core.accountcache import AccountDataCache
    from xmppd.features.roster import rosterManager
    from xmppd.storage.interfaces import RosterItem
    nodes = Nodes()
    try:
        a, b = await nodes.start(redisServer.url, "a", "b")
        domainA = a.service.getServiceNamed("localhost")
        domainB = b.service.getServiceNamed("localhost")
        caches = []
        for domain in (domainA, domainB):
            cache = AccountDataCache(domain, "test:key", lambda text: text or "", str)
            cache.register()
            caches.append(cache)
        juliet = parseJID("juliet@localhost")
        caches[1].hold(juliet, "old")
        caches[0].keep(juliet, "new")
        await waitFor(lambda: caches[1].cached("juliet@localhost") is None)
        # The writer keeps its own value.
        assert caches[0].cached("juliet@localhost") == "new"

        rostersA, rostersB = rosterManager(domainA), rosterManager(domainB)
        rostersB._cache["juliet"] = object()
        await rostersA.setItem("juliet", RosterItem(jid="romeo@localhost"))
        await waitFor(lambda: rostersB.cachedRoster("juliet") is None)
    finally:
        await nodes.close()


@pytest_twisted.ensureDeferred
async def test_probeAnsweredByTheOtherNode(redisServer):
    """
    Romeo logs in on node a after Juliet sent her presence on node b: his
    server's probe (RFC 6121 §4.3.2) is answered with her presence, which
    only node b knows.
    """
    from xmppd.storage.interfaces import RosterItem
    nodes = Nodes()
    try:
        a, b = await nodes.start(redisServer.url, "a", "b")
        for fixture in (a, b):
            rosters = fixture.service.storage.rosters
            await rosters.setItem("romeo", "localhost",
                                  RosterItem(jid="juliet@localhost", subscription="both"))
            await rosters.setItem("juliet", "localhost",
                                  RosterItem(jid="romeo@localhost", subscription="both"))
        juliet = await b.login("juliet", resource="balcony")
        available = domish.Element((None, "presence"))
        available.addElement("status", content="on the balcony")
        juliet.send(available)
        await waitFor(lambda: a.service.sessions.availableSessionsOf(
            parseJID("juliet@localhost")))
        romeo = await a.login("romeo", resource="orchard")
        presences = collect(romeo, "presence")
        romeo.send(domish.Element((None, "presence")))
        await waitFor(lambda: any(p.getAttribute("from") == "juliet@localhost/balcony"
                                  for p in presences))
        [fromJuliet] = [p for p in presences if p.getAttribute("from") == "juliet@localhost/balcony"]
        assert str(fromJuliet.status) == "on the balcony"
    finally:
        await nodes.close()


@pytest_twisted.ensureDeferred
async def test_deadNodeUsersGoUnavailable(redisServer):
    """When node b dies, Romeo on node a gets unavailable presence from Juliet, who was on b (RFC 6121 §4.5.2)."""
    from xmppd.storage.interfaces import RosterItem
    nodes = Nodes()
    try:
        a, b = await nodes.start(redisServer.url, "a", "b")
        for fixture in (a, b):
            rosters = fixture.service.storage.rosters
            await rosters.setItem("romeo", "localhost",
                                  RosterItem(jid="juliet@localhost", subscription="both"))
            await rosters.setItem("juliet", "localhost",
                                  RosterItem(jid="romeo@localhost", subscription="both"))
        romeo = await a.login("romeo", resource="orchard")
        presences = collect(romeo, "presence")
        romeo.send(domish.Element((None, "presence")))
        juliet = await b.login("juliet", resource="balcony")
        juliet.send(domish.Element((None, "presence")))
        await waitFor(lambda: any(p.getAttribute("from") == "juliet@localhost/balcony"
                                  for p in presences))
        kill(b)
        await waitFor(lambda: any(p.getAttribute("from") == "juliet@localhost/balcony"
                                  and p.getAttribute("type") == "unavailable"
                                  for p in presences))
        # Once: only the node whose reap removed her session speaks for it.
        await task.deferLater(reactor, 0.5, lambda: None)
        assert len([p for p in presences if p.getAttribute("type") == "unavailable"]) == 1
    finally:
        await nodes.close()


@pytest_twisted.ensureDeferred
async def test_redisRestartLosesNoSession(redisServer):
    """
    Redis restarted (SIGKILL) longer than a lease: the nodes reconnect,
    resynchronise their replicas, take nobody for dead, and stanzas cross
    again.
    """
    nodes = Nodes()
    try:
        a, b = await nodes.start(redisServer.url, "a", "b")
        romeo = await a.login("romeo", resource="orchard")
        juliet = await b.login("juliet", resource="balcony")
        got = collect(juliet)
        await waitFor(lambda: a.service.sessions.get(parseJID("juliet@localhost/balcony")))
        redisServer.kill()
        await task.deferLater(reactor, 1.0, lambda: None)  # more than a lease (0.6 s)
        redisServer.start()
        await waitFor(lambda: all(f.service.getServiceNamed("cluster").mayReap()
                                  for f in (a, b)))
        await task.deferLater(reactor, 0.5, lambda: None)  # a few heartbeat checks
        assert a.service.sessions.get(parseJID("juliet@localhost/balcony")) is not None
        assert b.service.sessions.get(parseJID("romeo@localhost/orchard")) is not None
        romeo.send(chat("juliet@localhost/balcony", "still here"))
        await waitFor(lambda: got)
        assert str(got[0].body) == "still here"
    finally:
        await nodes.close()


def rosterGet() -> domish.Element:
    iq = domish.Element((None, "iq"))
    iq["type"], iq["id"] = "get", "r1"
    iq.addElement(("jabber:iq:roster", "query"))
    return iq


@pytest_twisted.ensureDeferred
async def test_rosterPushReachesOtherNode(redisServer):
    """
    Juliet has a resource on each node, both asked for the roster; she adds
    Romeo on node a: her resource on node b gets the roster push too (RFC
    6121 §2.1.6).  The nodes share one store here, as they will with the
    redis backend.
    """
    nodes = Nodes()
    try:
        a, b = await nodes.start(redisServer.url, "a", "b")
        b.service.storageService.storage = a.service.storage
        balcony = await a.login("juliet", resource="balcony")
        garden = await b.login("juliet", resource="garden")
        iqs = collect(garden, "iq")
        results = collect(balcony, "iq")
        for stream in (balcony, garden):
            stream.send(rosterGet())
        await waitFor(lambda: any(iq.getAttribute("type") == "result" for iq in iqs)
                      and any(iq.getAttribute("type") == "result" for iq in results))
        add = domish.Element((None, "iq"))
        add["type"], add["id"] = "set", "add1"
        add.addElement(("jabber:iq:roster", "query")).addElement("item")["jid"] = "romeo@localhost"
        balcony.send(add)
        await waitFor(lambda: any(iq.getAttribute("type") == "set" for iq in iqs))
        [push] = [iq for iq in iqs if iq.getAttribute("type") == "set"]
        assert push.query.item["jid"] == "romeo@localhost"
    finally:
        await nodes.close()


async def test_dialbackKeysVerifyOnEveryNode(redisServer):
    """
    Nodes with secrets of their own (their data directories differ) use the
    cluster's once started: a dialback key one node wrote verifies on the
    other (issue 14 item 7), and fake SCRAM salts agree.
    """
    from xmppd.s2s.dialback import dialbackKey, keyMatches
    nodes = Nodes()
    try:
        a, b = await nodes.start(redisServer.url, "a", "b")
        assert a.service.secret == b.service.secret
        key = dialbackKey(a.service.secret, "remote.example", "localhost", "s1")
        assert keyMatches(b.service.secret, "remote.example", "localhost", "s1", key)
        for fixture in (a, b):
            for listener in fixture.service:
                if hasattr(listener, "secret") and hasattr(listener, "requireEncryption"):
                    assert listener.secret == a.service.secret
    finally:
        await nodes.close()


# -- carbons (XEP-0280) across nodes ----------------------------------------------

NS_CARBONS = "urn:xmpp:carbons:2"


def carbonsRequest(action: str, id: str) -> domish.Element:
    iq = domish.Element((None, "iq"))
    iq["type"], iq["id"] = "set", id
    iq.addElement((NS_CARBONS, action))
    return iq


async def setCarbons(stream, action: str, id: str) -> None:
    """Enable or disable carbons for C{stream}'s session and wait for the result."""
    results = []
    stream.addObserver("/iq[@id='%s']" % id, results.append)
    stream.send(carbonsRequest(action, id))
    await waitFor(lambda: results)
    assert results[0]["type"] == "result"


def copied(message, direction: str):
    """The message a carbon copy forwards, if C{message} is a C{direction} copy."""
    for child in message.elements():
        if child.uri == NS_CARBONS and child.name == direction:
            return child.forwarded.message
    return None


@pytest_twisted.ensureDeferred
async def test_carbonsAcrossNodes(redisServer):
    """
    Juliet has one resource on each node, and her garden (node b) enabled
    carbons: what Romeo (node a) sends to her balcony (node a), or to her
    bare JID, and what her balcony sends, shows up in the garden as copies,
    once each; <private/> and no-copy messages do not, and nothing does
    once the garden disabled carbons.  And the other way round: the balcony
    gets copies of what reaches the garden from node a.
    """
    nodes = Nodes()
    try:
        a, b = await nodes.start(redisServer.url, "a", "b")
        romeo = await a.login("romeo", resource="orchard")
        balcony = await a.login("juliet", resource="balcony")
        garden = await b.login("juliet", resource="garden")
        inGarden, onBalcony, toRomeo = collect(garden), collect(balcony), collect(romeo)
        balcony.send(domish.Element((None, "presence")))
        presence = domish.Element((None, "presence"))
        presence.addElement("priority", content="-1")
        garden.send(presence)
        gardenJID = parseJID("juliet@localhost/garden")
        await setCarbons(garden, "enable", "c1")
        # Node a's replica knows the garden wants copies.
        await waitFor(lambda: getattr(a.service.sessions.get(gardenJID), "carbons", False))
        assert redisServer.command("HGET", "xmppd:c:sessions", "juliet@localhost/garden") \
            .endswith(b" 1")

        romeo.send(chat("juliet@localhost/balcony", "to the balcony", "r1"))
        romeo.send(chat("juliet@localhost", "to juliet", "r2"))
        private = chat("juliet@localhost/balcony", "secret", "r3")
        private.addElement((NS_CARBONS, "private"))
        romeo.send(private)
        noCopy = chat("juliet@localhost/balcony", "no copy", "r4")
        noCopy.addElement(("urn:xmpp:hints", "no-copy"))
        romeo.send(noCopy)
        balcony.send(chat("romeo@localhost/orchard", "from the balcony", "j1"))
        romeo.send(chat("juliet@localhost/garden", "last", "r5"))
        await waitFor(lambda: any(m.getAttribute("id") == "r5" for m in inGarden)
                      and any(copied(m, "sent") is not None for m in inGarden))
        assert [str(m.body) for m in onBalcony] == [
            "to the balcony", "to juliet", "secret", "no copy"]
        assert [m["from"] for m in toRomeo] == ["juliet@localhost/balcony"]
        received = [copied(m, "received") for m in inGarden]
        sent = [copied(m, "sent") for m in inGarden]
        assert [(str(m.body), m["id"]) for m in received if m is not None] == [
            ("to the balcony", "r1"), ("to juliet", "r2")]
        assert [(str(m.body), m["to"]) for m in sent if m is not None] == [
            ("from the balcony", "romeo@localhost/orchard")]
        # The three copies (from her own account), the message to the garden: nothing else.
        assert len(inGarden) == 4
        assert [m["from"] for m in inGarden if m.getAttribute("id") != "r5"] == [
            "juliet@localhost"] * 3

        # The other way round: the balcony (node a) enables carbons too.
        await setCarbons(balcony, "enable", "c2")
        await waitFor(lambda: getattr(b.service.sessions.get(
            parseJID("juliet@localhost/balcony")), "carbons", False))
        del onBalcony[:]
        romeo.send(chat("juliet@localhost/garden", "to the garden", "r6"))
        garden.send(chat("romeo@localhost/orchard", "from the garden", "j2"))
        await waitFor(lambda: len(onBalcony) == 2)
        copies = {(direction, str(copied(m, direction).body))
                  for m in onBalcony for direction in ("received", "sent")
                  if copied(m, direction) is not None}
        assert copies == {("received", "to the garden"), ("sent", "from the garden")}

        # Disabled: no more copies for the garden.
        await setCarbons(garden, "disable", "c3")
        await waitFor(lambda: not a.service.sessions.get(gardenJID).carbons)
        del inGarden[:]
        romeo.send(chat("juliet@localhost/balcony", "unseen", "r7"))
        balcony.send(chat("romeo@localhost/orchard", "unseen either", "j3"))
        # Once node a has handled j3, what it forwards to node b after comes after any copy.
        await waitFor(lambda: any(m.getAttribute("id") == "j3" for m in toRomeo))
        romeo.send(chat("juliet@localhost/garden", "after", "r8"))
        await waitFor(lambda: any(m.getAttribute("id") == "r8" for m in inGarden))
        assert [m.getAttribute("id") for m in inGarden] == ["r8"]
        assert not a.service.sessions.carbonSessions - {
            a.service.sessions.get(parseJID("juliet@localhost/balcony"))}
    finally:
        await nodes.close()


@pytest_twisted.ensureDeferred
async def test_ownStateWrittenAgainAfterResync(redisServer):
    """
    A node whose write of a binding's state did not reach Redis (it was
    away) writes it again when it resynchronises: its own memory is the
    truth, so the other nodes learn the carbons and availability its
    clients set.
    """
    nodes = Nodes()
    try:
        a, b = await nodes.start(redisServer.url, "a", "b")
        garden = await a.login("juliet", resource="garden")
        garden.send(domish.Element((None, "presence")))
        await setCarbons(garden, "enable", "c1")
        jid = parseJID("juliet@localhost/garden")
        await waitFor(lambda: getattr(b.service.sessions.get(jid), "carbons", False))
        value = redisServer.command("HGET", "xmppd:c:sessions", "juliet@localhost/garden")
        node, token = value.split(b"\r\n")[-1].split()[:2]
        # As if the writes had been lost.
        redisServer.command("HSET", "xmppd:c:sessions", "juliet@localhost/garden",
                            '"%s %s 0 0 0"' % (node.decode(), token.decode()))
        await a.service.sessions.subscribed()
        await waitFor(lambda: redisServer.command(
            "HGET", "xmppd:c:sessions", "juliet@localhost/garden").endswith(b" 1 0 1"))
        await b.service.sessions.subscribed()
        view = b.service.sessions.get(jid)
        assert view.carbons and view.available
    finally:
        await nodes.close()


# -- invalidations lost while the subscription is down ------------------------------


@pytest_twisted.ensureDeferred
async def test_cachesDroppedWhenSubscriptionComesBack(redisServer):
    """
    Node b's subscription is down while Juliet, on node a, adds Romeo to her
    roster and changes an account-data value: b missed the news, and once
    subscribed again it serves no stale copy: her resource on b gets the
    push, and b's caches hold what storage holds.
    """
    from twisted.logger import globalLogPublisher
    from xmppd.core.accountcache import AccountDataCache
    from xmppd.features.roster import rosterManager
    from xmppd.storage.interfaces import RosterItem
    nodes = Nodes()
    try:
        a, b = await nodes.start(redisServer.url, "a", "b")
        b.service.storageService.storage = a.service.storage
        domainA = a.service.getServiceNamed("localhost")
        domainB = b.service.getServiceNamed("localhost")
        rostersA, rostersB = rosterManager(domainA), rosterManager(domainB)
        caches = []
        for domain in (domainA, domainB):
            cache = AccountDataCache(domain, "test:key", lambda text: text or "", str)
            cache.register()
            caches.append(cache)
        await a.service.storage.accountData.set("juliet", "localhost", "test:key", "old")
        balcony = await a.login("juliet", resource="balcony")
        garden = await b.login("juliet", resource="garden")
        onGarden, onBalcony = collect(garden, "iq"), collect(balcony, "iq")
        for stream in (balcony, garden):
            stream.send(rosterGet())
        await waitFor(lambda: any(iq.getAttribute("type") == "result" for iq in onGarden)
                      and any(iq.getAttribute("type") == "result" for iq in onBalcony))
        stale = rostersB.cachedRoster("juliet")
        assert stale is not None and "romeo@localhost" not in stale.items
        juliet = parseJID("juliet@localhost")
        assert await caches[1].load(juliet) == "old"
        caches[1].hold(parseJID("romeo@localhost"), "kept by b only")

        # Node b hears nothing on xmppd:c:invalidate: what is published is lost for it.
        clusterB = b.service.getServiceNamed("cluster")
        lost = []
        clusterB.invalidation.received = lost.append
        await a.service.storage.accountData.set("juliet", "localhost", "test:key", "new")
        caches[0].keep(juliet, "new")
        await rostersA.run("juliet", rostersA.update, "juliet", None,
                           RosterItem(jid="romeo@localhost"))
        await waitFor(lambda: len(lost) == 2)
        assert rostersB.cachedRoster("juliet") is stale
        assert caches[1].cached("juliet@localhost") == "old"
        assert not any(iq.getAttribute("type") == "set" for iq in onGarden)

        # Its subscription drops and comes back.
        del clusterB.invalidation.received
        logged = []
        globalLogPublisher.addObserver(logged.append)
        try:
            [subscriber] = clusterB.subscriber.pool
            subscriber.transport.loseConnection()
            await waitFor(lambda: clusterB.invalidation.subscriptions == 2)
            # Juliet's resource on b asked for the roster: it gets the push (RFC 6121 §2.1.6).
            await waitFor(lambda: any(iq.getAttribute("type") == "set" for iq in onGarden))
        finally:
            globalLogPublisher.removeObserver(logged)
        [push] = [iq for iq in onGarden if iq.getAttribute("type") == "set"]
        assert push.query.item["jid"] == "romeo@localhost"
        assert "romeo@localhost" in rostersB.cachedRoster("juliet").items
        # Juliet has a session on b: her value is read again; Romeo's is just dropped.
        await waitFor(lambda: caches[1].cached("juliet@localhost") == "new")
        assert caches[1].cached("romeo@localhost") is None
        # The writer's own caches were not touched.
        assert caches[0].cached("juliet@localhost") == "new"
        assert len([e for e in logged if "again" in str(e.get("log_format", ""))
                    and e.get("log_namespace", "").startswith("xmppd.cluster")]) == 1
        # Changes still cross once subscribed again.
        await rostersA.run("juliet", rostersA.update, "juliet",
                           rostersA.cachedRoster("juliet").items["romeo@localhost"], None)
        await waitFor(lambda: len([iq for iq in onGarden if iq.getAttribute("type") == "set"]) == 2)
    finally:
        await nodes.close()


@pytest_twisted.ensureDeferred
async def test_rosterOfRemoteOnlyAccountNotCached(redisServer):
    """
    Juliet's only session is on node b: node a, which routes stanzas for
    her, reads her roster from storage and keeps no copy that only b's
    invalidation, a moment late, would keep right.
    """
    from xmppd.features.roster import rosterManager
    nodes = Nodes()
    try:
        a, b = await nodes.start(redisServer.url, "a", "b")
        b.service.storageService.storage = a.service.storage
        await b.login("juliet", resource="balcony")
        await waitFor(lambda: a.service.sessions.sessionsOf(parseJID("juliet@localhost")))
        rostersA = rosterManager(a.service.getServiceNamed("localhost"))
        await rostersA.run("juliet", rostersA.getRoster, "juliet")
        assert rostersA.cachedRoster("juliet") is None
    finally:
        await nodes.close()


@pytest_twisted.ensureDeferred
async def test_subscriptionStateReadFromStorage(redisServer):
    """
    Juliet, on node b, asks Romeo for his presence; Romeo, on node a,
    approves before a has heard b's invalidation (here: never), while a
    holds a copy of Juliet's roster (she has a session there too).  The
    approval still finds her request (RFC 6121 §3.1.6), reaches her on b
    and makes her subscription "to": the subscription state machine reads
    storage in a cluster.  This is the race the interoperability test with
    ejabberd lost once, where the approval came back through the foreign
    server faster than b's invalidation.
    """
    from xmppd.features.roster import rosterManager
    nodes = Nodes()
    try:
        a, b = await nodes.start(redisServer.url, "a", "b")
        b.service.storageService.storage = a.service.storage
        rostersA = rosterManager(a.service.getServiceNamed("localhost"))
        window = await a.login("juliet", resource="window")
        window.send(rosterGet())
        await waitFor(lambda: rostersA.cachedRoster("juliet") is not None)
        balcony = await b.login("juliet", resource="balcony")
        romeo = await a.login("romeo", resource="orchard")
        heard = collect(balcony, "presence")
        clusterA = a.service.getServiceNamed("cluster")
        lost = []
        clusterA.invalidation.received = lost.append

        def presence(to, kind):
            stanza = domish.Element((None, "presence"))
            stanza["to"], stanza["type"] = to, kind
            return stanza

        balcony.send(domish.Element((None, "presence")))
        await waitFor(lambda: a.service.sessions.availableSessionsOf(parseJID("juliet@localhost")))
        balcony.send(presence("romeo@localhost", "subscribe"))
        await waitFor(lambda: lost)
        assert "romeo@localhost" not in rostersA.cachedRoster("juliet").items
        romeo.send(presence("juliet@localhost", "subscribed"))
        await waitFor(lambda: any(p.getAttribute("type") == "subscribed" for p in heard))
        item = await a.service.storage.rosters.getItem("juliet", "localhost", "romeo@localhost")
        assert item.subscription == "to"
    finally:
        await nodes.close()


@pytest_twisted.ensureDeferred
async def test_rosterGetReadsStorage(redisServer):
    """
    Node a changes Juliet's roster and node b has not heard its
    invalidation yet (here: never): when her resource on b asks for the
    roster it gets what storage holds, and her other resource on b that
    asked before is pushed the change (RFC 6121 §2.1.6).  A client asks
    right after a stanza another node's write caused (its contact's
    "subscribed"), which can overtake the invalidation.
    """
    from xmppd.features.roster import rosterManager
    from xmppd.storage.interfaces import RosterItem
    nodes = Nodes()
    try:
        a, b = await nodes.start(redisServer.url, "a", "b")
        b.service.storageService.storage = a.service.storage
        rostersA = rosterManager(a.service.getServiceNamed("localhost"))
        balcony = await b.login("juliet", resource="balcony")
        garden = await b.login("juliet", resource="garden")
        onBalcony, onGarden = collect(balcony, "iq"), collect(garden, "iq")
        for stream in (balcony, garden):
            stream.send(rosterGet())
        await waitFor(lambda: any(iq.getAttribute("type") == "result" for iq in onGarden)
                      and any(iq.getAttribute("type") == "result" for iq in onBalcony))
        lost = []
        b.service.getServiceNamed("cluster").invalidation.received = lost.append
        await rostersA.run("juliet", rostersA.update, "juliet", None,
                           RosterItem(jid="romeo@localhost"))
        await waitFor(lambda: lost)
        del onBalcony[:]
        balcony.send(rosterGet())
        await waitFor(lambda: any(iq.getAttribute("type") == "result" for iq in onBalcony))
        [result] = [iq for iq in onBalcony if iq.getAttribute("type") == "result"]
        assert [item["jid"] for item in result.query.elements()] == ["romeo@localhost"]
        await waitFor(lambda: any(iq.getAttribute("type") == "set" for iq in onGarden))
        [push] = [iq for iq in onGarden if iq.getAttribute("type") == "set"]
        assert push.query.item["jid"] == "romeo@localhost"
    finally:
        await nodes.close()


@pytest_twisted.ensureDeferred
async def test_adminSeesAndReachesEveryNode(redisServer):
    """
    An operator asking node a (xmppctl sessions, announce, stats) sees the
    sessions held by node b too, with the node that holds each, and an
    announcement reaches them.
    """
    nodes = Nodes()
    try:
        a, b = await nodes.start(redisServer.url, "a", "b")
        romeo = await a.login("romeo", resource="orchard")
        juliet = await b.login("juliet", resource="balcony")
        await waitFor(lambda: a.service.sessions.get(parseJID("juliet@localhost/balcony")))
        ops = a.service.adminOperations
        rows = {row["jid"]: row for row in ops.sessions("localhost")}
        assert set(rows) == {"romeo@localhost/orchard", "juliet@localhost/balcony"}
        assert (rows["romeo@localhost/orchard"]["node"], rows["juliet@localhost/balcony"]["node"]) \
            == ("a", "b")
        assert ops.onlineUsers("localhost") == ["juliet@localhost", "romeo@localhost"]
        assert (await ops.userStats("localhost"))["sessions"] == 2
        heard = collect(juliet), collect(romeo)
        assert ops.announce("localhost", "The prince is coming") == 2
        for got in heard:
            await waitFor(lambda got=got: got)
            assert [str(m.body) for m in got] == ["The prince is coming"]
            assert got[0].getAttribute("type") == "headline"
    finally:
        await nodes.close()


def test_reapSpeaksForViewsItsNotificationsRemovedFirst():
    """
    The reap script's notifications (on the subscription) may come before
    its answer (on another connection): the node that reaped still ends
    the dead node's sessions, so their contacts hear they went.
    """
    from xmppd.cluster.directory import ClusterDirectory

    class Redis:
        def __init__(self):
            self.answers = []

        def eval(self, script, keyNames, args):
            d = defer.Deferred()
            self.answers.append(d)
            return d

    redis = Redis()
    directory = ClusterDirectory("a", redis)
    ended = []
    directory.onReaped = ended.extend
    directory._snapshot(["0", []])
    directory.notified("1 b b tok.1 0 0 0 juliet@localhost/balcony")
    directory.notified("2 a b tok.1 1 0 1 juliet@localhost/balcony")
    [view] = directory.sessionsOf(parseJID("juliet@localhost"))
    assert view.carbons and view.available and view in directory.carbonSessions
    entries = []
    directory.reap("b").addCallback(entries.append)
    directory.notified("3 u b tok.1 0 0 0 juliet@localhost/balcony")
    assert directory.get(parseJID("juliet@localhost/balcony")) is None
    assert not directory.carbonSessions
    redis.answers[0].callback([["tok.1"], []])
    assert ended == [view] and entries == [[]]


# -- rooms across nodes: the fan-out and the inbox's bound -----------------------

NS_MUC = "http://jabber.org/protocol/muc"


def roomOf(node: str) -> str:
    """A room of conference.localhost that rendezvous hashing over a and b gives to C{node}."""
    from xmppd.core.rendezvous import choose, salt
    candidates = [(n, salt(n)) for n in ("a", "b")]
    for i in range(1000):
        room = "room%d@conference.localhost" % (i,)
        if choose(room, candidates) == node:
            return room
    raise AssertionError("no room for " + node)


async def joinRoom(stream, room: str, nick: str, create: bool = False) -> None:
    """
    Join C{room} as C{nick} and wait for the self-presence (XEP-0045 §7.2);
    with C{create}, in the old groupchat protocol, which creates an instant
    room (no configuration to wait for).
    """
    presences = collect(stream, "presence")
    presence = domish.Element((None, "presence"))
    presence["to"] = room + "/" + nick
    if not create:
        presence.addElement((NS_MUC, "x"))
    stream.send(presence)
    await waitFor(lambda: any(p.getAttribute("from") == room + "/" + nick for p in presences))
    [own] = [p for p in presences if p.getAttribute("from") == room + "/" + nick]
    assert own.getAttribute("type") != "error", own.toXml()


def groupchat(room: str, body: str) -> domish.Element:
    message = domish.Element((None, "message"))
    message["to"], message["type"] = room, "groupchat"
    message.addElement("body", content=body)
    return message


def spyForwards(fixture) -> list:
    """The (node, records) of every script C{fixture}'s transport sends, from now on."""
    transport = fixture.service.cluster.transport
    original = transport._send
    sent = []

    def send(node, records, *rest):
        sent.append((node, list(records)))
        original(node, records, *rest)

    transport._send = send
    return sent


def test_fanOutRecordRoundTrip():
    """
    A fan-out record packs the room's text once; unpacking gives each
    recipient its own copy with its own C{to}, escaped as the owner's own
    sessions get it, next to plain records of the same entry.
    """
    from xmppd.cluster.transport import FanOut, pack, unpack
    from xmppd.core.prepared import Prepared
    from xmppd.stream.xmlparser import parseStored
    message = domish.Element((None, "message"))
    message["from"], message["type"] = "room@conference.localhost/romeo", "groupchat"
    message.addElement("body", content="a & b")
    prepared = Prepared(message)
    record = FanOut(prepared)
    tricky = "juliet@localhost/it's <me> & \u00e9"
    record.recipients += [("t1", "juliet@localhost/balcony"), ("t2", tricky)]
    value = pack([("t0", "romeo@localhost/orchard", "<message/>", None), record])
    assert value.count("a &amp; b") == 1
    copies = list(unpack(value))
    assert copies[0] == ("t0", "romeo@localhost/orchard", "<message/>")
    assert [(token, jid) for token, jid, _ in copies[1:]] == [
        ("t1", "juliet@localhost/balcony"), ("t2", tricky)]
    for token, jid, text in copies[1:]:
        assert text == prepared.textFor(jid)
        [parsed] = parseStored(text)
        assert parsed["to"] == jid and str(parsed.body) == "a & b"


@pytest_twisted.ensureDeferred
async def test_roomFanOutOncePerNode(redisServer):
    """
    A room owned by node a fans a message out to two occupants on node b
    in one record: the text once, the two recipients listed; b hands each
    its own copy, addressed to its full JID.
    """
    nodes = Nodes()
    try:
        a, b = await nodes.start(redisServer.url, "a", "b")
        room = roomOf("a")
        romeo = await a.login("romeo", resource="orchard")
        balcony = await b.login("juliet", resource="balcony")
        tomb = await b.login("juliet", resource="tomb")
        await joinRoom(romeo, room, "romeo", create=True)
        assert redisServer.command("GET", "xmppd:lease:room:" + room).split()[-1] == b"a"
        await joinRoom(balcony, room, "juliet")
        await joinRoom(tomb, room, "juliet-tomb")
        got = {stream: collect(stream) for stream in (balcony, tomb)}
        sent = spyForwards(a)
        romeo.send(groupchat(room, "Thus with a kiss"))
        for stream in (balcony, tomb):
            await waitFor(lambda: got[stream])
            [message] = got[stream]
            assert message["to"] == stream.authenticator.jid.full()
            assert message["from"] == room + "/romeo"
            assert str(message.body) == "Thus with a kiss"
        from xmppd.cluster.transport import FanOut
        fanOuts = [record for node, records in sent if node == "b" for record in records
                   if type(record) is FanOut]
        assert len(fanOuts) == 1
        assert sorted(jid for _, jid in fanOuts[0].recipients) == [
            "juliet@localhost/balcony", "juliet@localhost/tomb"]
    finally:
        await nodes.close()


@pytest_twisted.ensureDeferred
async def test_fullInboxRefused(redisServer):
    """
    A node that does not read its inbox: once the inbox holds its bound of
    entries, forwards to it are refused; a sender hears resource-constraint
    (RFC 6120 §8.3.3.18), and a room's fan-out copy for it is counted, while
    the room goes on for the occupants elsewhere.  Redis's memory stops
    growing at the bound.
    """
    nodes = Nodes()
    try:
        a, b = await nodes.start(redisServer.url, "a", "b")
        room = roomOf("a")
        romeo = await a.login("romeo", resource="orchard")
        juliet = await b.login("juliet", resource="balcony")
        await joinRoom(romeo, room, "romeo", create=True)
        await joinRoom(juliet, room, "juliet")
        await waitFor(lambda: a.service.sessions.get(parseJID("juliet@localhost/balcony")))
        transport = a.service.cluster.transport
        transport.inboxLimit = 3
        # Node b stops reading: what is forwarded to it stays in its inbox.
        b.service.cluster.transport.running = False
        errors = collect(romeo)

        def inbox() -> int:
            return int(redisServer.command("XLEN", "xmppd:c:inbox:b")[1:])

        for i in range(3):
            romeo.send(chat("juliet@localhost/balcony", "m%d" % i, "m%d" % i))
            await waitFor(lambda: inbox() == i + 1)
        romeo.send(chat("juliet@localhost/balcony", "one too many", "late"))
        await waitFor(lambda: errors)
        [error] = errors
        assert error["type"] == "error" and error["id"] == "late"
        assert error.error.firstChildElement().name == "resource-constraint"
        assert error.error["type"] == "wait"
        assert inbox() == 3
        # A room's message: Romeo's own copy comes back; Juliet's is refused and counted.
        refused = transport.refused
        romeo.send(groupchat(room, "Thus with a kiss"))
        await waitFor(lambda: len(errors) == 2)
        assert errors[1]["type"] == "groupchat"
        await waitFor(lambda: transport.refused == refused + 1)
        assert inbox() == 3
    finally:
        await nodes.close()


@pytest_twisted.ensureDeferred
async def test_roomCandidatesAreLiveNodesNotDraining(redisServer):
    """
    Each node's room ownership knows the live nodes from the heartbeat
    read: a node marked draining stops being a candidate for rooms, and a
    node that stops comes off when its heartbeat expires.
    """
    nodes = Nodes()
    try:
        a, b = await nodes.start(redisServer.url, "a", "b")
        ownership = a.service.cluster.ownerships[0]

        def candidates():
            return [name for name, _ in ownership.candidates or []]

        await waitFor(lambda: candidates() == ["a", "b"])
        assert ownership.preferred(roomOf("b")) == "b"
        redisServer.command("SADD", "xmppd:c:draining", "b")
        await waitFor(lambda: candidates() == ["a"])
        assert ownership.preferred(roomOf("b")) == "a"
        redisServer.command("SREM", "xmppd:c:draining", "b")
        await waitFor(lambda: candidates() == ["a", "b"])
        await b.close()
        nodes.fixtures.remove(b)
        await waitFor(lambda: candidates() == ["a"])
    finally:
        await nodes.close()
