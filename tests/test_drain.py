"""
Draining a node (issue 14, item 8): clients sent elsewhere with
see-other-host (RFC 6120 §4.9.3.19) once what they sent is handled, new
ones refused the same way, nothing accepted lost (L{xmppd.c2s.drain}); the
cluster's control channel that C{xmppctl drain} speaks
(L{xmppd.admin.control}), and C{xmppctl cluster} (L{xmppd.cli.cluster}).
"""

from __future__ import annotations

import json

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.words.protocols.jabber.xmlstream import NS_STREAMS

from tests.redisserver import redisServer, _moduleRedis  # noqa: F401  (fixtures)
from tests.smhelpers import DOMAIN, NS_SM, SMNode, acks, bodies
from tests.streamhelpers import NS_XMPP_STREAMS
from tests.test_sm import Accepting, sendMessages
from xmppd.c2s.drain import INTERVAL, WAIT, Drain
from xmppd.cli.common import CtlError
from xmppd.config import configFromDict
from xmppd.config.redisurl import parseRedisURL
from xmppd.config.schema import ConfigError
from xmppd.core.jid import parseJID
from xmppd.stream.elements import serialize, streamErrorElement
from xmppd.testing import ServerFixture

BALCONY = "juliet@%s/balcony" % DOMAIN
OTHER = "other.example.org:5222"
TIMEOUT = 10


# -- configuration and the element ----------------------------------------------------


@pytest.mark.parametrize("address", ["xmpp2.example.org:5222", "192.0.2.7:5222",
                                     "[2001:db8::1]:9222", ""])
def test_clientAddressAccepted(address):
    config = configFromDict({"cluster": {"node": "n1", "client_address": address}})
    assert config.cluster.client_address == address


@pytest.mark.parametrize("address, problem", [
    ("xmpp2.example.org", "the port is missing"),
    ("2001:db8::1:5222", "in brackets"),
    ("[2001:db8::1]", "followed by :port"),
    ("host:0", "from 1 to 65535"),
    ("host:http", "from 1 to 65535"),
    (":5222", "not a host name"),
    ("a host:5222", "not a host name"),
])
def test_clientAddressRefused(address, problem):
    with pytest.raises(ConfigError) as e:
        configFromDict({"cluster": {"node": "n1", "client_address": address}})
    assert "cluster.client_address" in str(e.value) and problem in str(e.value)


def test_seeOtherHostElement():
    """§4.9.3.19: the other host is the condition element's own text."""
    text = serialize(streamErrorElement("see-other-host", conditionText="[2001:db8::1]:9222"))
    assert ("<see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>"
            "[2001:db8::1]:9222</see-other-host>") in text


# -- one node's client streams -------------------------------------------------------


@pytest.fixture
def node(tmp_path):
    return SMNode(tmp_path, features=("roster", "presence", "messages", "sm"))


def draining(node) -> Drain:
    return Drain(lambda: [node.base.factory], node.clock)


def seeOtherHost(reply) -> str | None:
    """The other host of the see-other-host error in C{reply}, else None."""
    assert reply.closed, reply
    for element in reply.elements:
        if (element.uri, element.name) == (NS_STREAMS, "error"):
            for child in element.elements(NS_XMPP_STREAMS, "see-other-host"):
                return str(child)
    return None


def stored(node) -> list:
    found = []
    node.server.hooks.add("message/offline", lambda event: found.append(event.stanza) or True)
    return found


def test_boundClientRedirected(node):
    """A bound client gets see-other-host with the other host; its session is gone at once."""
    offline = stored(node)
    client = node.login()
    drain = draining(node)
    assert drain.start(OTHER) == 1
    assert seeOtherHost(client.reply()) == OTHER
    assert node.sessions.get(parseJID(BALCONY)) is None
    # What comes for it now is stored, not written to a closing stream.
    node.message(BALCONY, "during the switch")
    assert bodies(offline) == ["during the switch"]


def test_negotiatingClientRedirected(node):
    """A stream that has not bound a resource is redirected at once."""
    client = node.connect()
    client.client.start()
    draining(node).start(OTHER)
    assert seeOtherHost(client.reply()) == OTHER


def test_newStreamsRefusedUntilUndo(node):
    """While draining a new stream gets the header, then see-other-host; after stop, features."""
    drain = draining(node)
    drain.start(OTHER)
    client = node.connect()
    reply = client.client.exchange("<?xml version='1.0'?><stream:stream to='%s' "
                                   "xmlns='jabber:client' xmlns:stream='%s' version='1.0'>"
                                   % (DOMAIN, NS_STREAMS))
    assert reply.header is not None and reply.header["from"] == DOMAIN
    assert seeOtherHost(reply) == OTHER
    drain.stop()
    client = node.login()
    assert node.sessions.get(parseJID(BALCONY)) is not None
    assert client.reply().streamError is None


def test_waitsForAcceptedStanzas(node):
    """
    A stanza still being stored when the drain starts completes first; the
    client is told it was handled (<a/>) before see-other-host, and nothing
    more is read from it meanwhile.
    """
    writes = Accepting(node, "slow")
    client = node.login(sm=True)
    sendMessages(client, "slow")
    client.received()
    drain = draining(node)
    drain.start(OTHER)
    assert client.transport.producerState == "paused"
    assert client.reply().data == b""
    node.clock.advance(INTERVAL)
    assert client.reply().data == b""
    writes.writes["slow"].callback(None)
    node.clock.advance(INTERVAL)
    reply = client.reply()
    # The available presence of login(), then the slow message.
    assert acks(reply.elements) == [2]
    assert reply.elements[-1].name == "error"
    assert seeOtherHost(reply) == OTHER
    assert not drain.waiting and drain.loop is None


def test_unacknowledgedGoOffline(node):
    """What the client never acknowledged follows stream management's rules: offline storage."""
    offline = stored(node)
    client = node.login(sm=True)
    node.message(BALCONY, "one")
    node.message(BALCONY, "two")
    assert bodies(client.received()) == ["one", "two"]
    client.ack(2)  # its own available presence, and "one"
    draining(node).start(OTHER)
    assert seeOtherHost(client.reply()) == OTHER
    assert bodies(offline) == ["two"]


def test_waitIsBounded(node):
    """A stanza whose storing never ends does not hold the drain beyond WAIT seconds."""
    Accepting(node, "stuck")
    client = node.login(sm=True)
    sendMessages(client, "stuck")
    client.received()
    draining(node).start(OTHER)
    node.clock.advance(WAIT - 1)
    assert client.reply().data == b""
    node.clock.advance(1 + INTERVAL)
    assert seeOtherHost(client.reply()) == OTHER


def test_undoWhileWaiting(node):
    """Stopping the drain while a stream still finishes its stanzas lets it read again."""
    writes = Accepting(node, "slow")
    client = node.login(sm=True)
    sendMessages(client, "slow")
    drain = draining(node)
    drain.start(OTHER)
    drain.stop()
    writes.writes["slow"].callback(None)
    node.clock.advance(INTERVAL)
    assert client.transport.producerState == "producing"
    reply = client.reply()
    assert not reply.closed and reply.streamError is None
    assert node.sessions.get(parseJID(BALCONY)) is not None


# -- the cluster: control channel, xmppctl drain and cluster --------------------------------

ACCOUNTS = {"romeo": "r", "juliet": "j"}


async def startNode(url: str, node: str, address: str) -> ServerFixture:
    fixture = ServerFixture(dict(ACCOUNTS), config={
        "storage": {"backend": "memory"},
        "cluster": {"node": node, "redis": url, "heartbeat": 0.2, "lease": 0.6,
                    "client_address": address}})
    await fixture.start()
    await fixture.service.getServiceNamed("control").ready.addTimeout(TIMEOUT, reactor)
    return fixture


async def waitFor(condition, timeout: float = TIMEOUT) -> None:
    deadline = reactor.seconds() + timeout
    while not condition():
        if reactor.seconds() > deadline:
            raise AssertionError("condition not met within %s s" % (timeout,))
        await task.deferLater(reactor, 0.01, lambda: None)


def errors(stream) -> list:
    got = []
    stream.addObserver("/error", got.append)
    return got


class Cluster:
    """Nodes started in the test, and a Redis connection of the operator's; all closed at the end."""

    def __init__(self, url):
        self.url = url
        self.fixtures = []
        self.redis = None

    async def start(self, *nodes):
        from xmppd.storage.redisclient import connectRedis
        for name, address in nodes:
            self.fixtures.append(await startNode(self.url, name, address))
        self.redis = await connectRedis(parseRedisURL(self.url), reconnect=False)
        return self.fixtures

    async def close(self):
        if self.redis is not None:
            await self.redis.disconnect()
        for fixture in self.fixtures:
            await fixture.close()


def cli(coroutine):
    return defer.Deferred.fromCoroutine(coroutine).addTimeout(TIMEOUT, reactor)


@pytest_twisted.ensureDeferred
async def test_drainThroughControlChannel(redisServer, capsys):
    """xmppctl drain a: a's client is sent to b's address; a takes nobody until --undo."""
    from xmppd.cli.cluster import clusterState, drain
    cluster = Cluster(redisServer.url)
    try:
        a, b = await cluster.start(("a", "a.example.org:5222"), ("b", "[2001:db8::2]:5222"))
        juliet = await a.login("juliet", resource="balcony")
        got = errors(juliet)
        assert await cli(drain(cluster.redis, "a", True, 5)) == 0
        assert capsys.readouterr().out == (
            "a is draining: 1 client stream sent to b ([2001:db8::2]:5222); new clients are "
            "sent there too\n")
        await waitFor(lambda: got)
        [condition] = [c for c in got[0].elements() if c.name == "see-other-host"]
        assert str(condition) == "[2001:db8::2]:5222"
        with pytest.raises(Exception):
            await a.login("romeo", resource="orchard")
        state = await clusterState(cluster.redis)
        assert [(n["node"], n["alive"], n["draining"], n["address"]) for n in state["nodes"]] == [
            ("a", True, True, "a.example.org:5222"), ("b", True, False, "[2001:db8::2]:5222")]
        # b, the only other node, cannot drain: its clients would have nowhere to go.
        with pytest.raises(CtlError, match="no other live node"):
            await cli(drain(cluster.redis, "b", True, 5))
        assert await cli(drain(cluster.redis, "a", False, 5)) == 0
        assert capsys.readouterr().out == "a takes clients again\n"
        await a.login("romeo", resource="orchard")
    finally:
        await cluster.close()


@pytest_twisted.ensureDeferred
async def test_drainUnknownOrDeadNode(redisServer):
    """An unknown node, a dead one, or one that does not listen: one readable error each."""
    from xmppd.cli.cluster import drain
    cluster = Cluster(redisServer.url)
    try:
        await cluster.start(("a", "a.example.org:5222"))
        with pytest.raises(CtlError, match=r"no node 'zz' in this cluster \(nodes: a\)"):
            await cli(drain(cluster.redis, "zz", True, 5))
        await cluster.redis.sadd("xmppd:c:nodes", "gone")
        with pytest.raises(CtlError, match="node gone is dead"):
            await cli(drain(cluster.redis, "gone", True, 5))
        await cluster.redis.set("xmppd:c:node:gone", "1")
        with pytest.raises(CtlError, match="does not listen on its control channel"):
            await cli(drain(cluster.redis, "gone", True, 5))
    finally:
        await cluster.close()


@pytest_twisted.ensureDeferred
async def test_clusterListing(redisServer):
    """xmppctl cluster: nodes, state, addresses, sessions (full JIDs) and rooms (leases)."""
    from xmppd.cli.cluster import clusterState, formatCluster
    cluster = Cluster(redisServer.url)
    try:
        a, b = await cluster.start(("a", "a.example.org:5222"), ("b", "b.example.org:5222"))
        await a.login("juliet", resource="balcony")
        await b.login("romeo", resource="orchard")
        await b.login("romeo", resource="garden")
        await cluster.redis.set("xmppd:lease:room:verona@muc.localhost", "b")
        await waitFor(lambda: redisServer.command("HLEN", "xmppd:c:sessions") == b":3")
        state = await clusterState(cluster.redis)
        assert state == {"nodes": [
            {"node": "a", "alive": True, "draining": False, "address": "a.example.org:5222",
             "sessions": ["juliet@localhost/balcony"], "rooms": []},
            {"node": "b", "alive": True, "draining": False, "address": "b.example.org:5222",
             "sessions": ["romeo@localhost/garden", "romeo@localhost/orchard"],
             "rooms": ["verona@muc.localhost"]}]}
        json.dumps(state)
        assert formatCluster(state) == [
            "NODE  STATE  CLIENT ADDRESS      SESSIONS  ROOMS",
            "a     alive  a.example.org:5222  1         0",
            "b     alive  b.example.org:5222  2         1",
            "a session juliet@localhost/balcony",
            "b session romeo@localhost/garden",
            "b session romeo@localhost/orchard",
            "b room verona@muc.localhost",
        ]
        await cluster.redis.delete("xmppd:c:node:b")
        assert [n["alive"] for n in (await clusterState(cluster.redis))["nodes"]] == [True, False]
    finally:
        await cluster.close()


def test_emptyClusterListing():
    from xmppd.cli.cluster import formatCluster
    assert formatCluster({"nodes": []}) == ["no node has joined this cluster"]


@pytest_twisted.ensureDeferred
async def test_xmppctlCommands(redisServer, capsys):
    """The commands through xmppctl's own path (argument parsing, Redis from the configuration)."""
    from xmppd.cli.ctl import buildParser, runCommand
    cluster = Cluster(redisServer.url)
    try:
        await cluster.start(("a", "a.example.org:5222"))
        config = configFromDict({"storage": {"backend": "memory"},
                                 "cluster": {"node": "ops", "redis": redisServer.url}})
        status = await cli(runCommand(buildParser().parse_args(["cluster", "--json"]), config,
                                      reactor))
        assert status == 0
        assert json.loads(capsys.readouterr().out)["nodes"][0]["node"] == "a"
        status = await cli(runCommand(buildParser().parse_args(["drain", "nope"]), config,
                                      reactor))
        assert status == 1
        assert capsys.readouterr().err.startswith("xmppctl: no node 'nope'")
    finally:
        await cluster.close()


@pytest_twisted.ensureDeferred
async def test_newTargetWhenTargetDies(redisServer):
    """While a drains, the node it sends clients to dies: new clients are sent to a live one."""
    from xmppd.cli.cluster import drain
    cluster = Cluster(redisServer.url)
    try:
        a, b, c = await cluster.start(("a", "a.example.org:5222"), ("b", "b.example.org:5222"),
                                      ("c", "c.example.org:5222"))
        # b holds no more sessions than c: the first by name is chosen.
        assert await cli(drain(cluster.redis, "a", True, 5)) == 0
        factory = a.service.getServiceNamed("c2s").factories[0]
        assert factory.redirect == "b.example.org:5222"
        b.service.getServiceNamed("cluster").beating.stop()
        await cluster.redis.delete("xmppd:c:node:b")
        await waitFor(lambda: factory.redirect == "c.example.org:5222")
        assert a.service.getServiceNamed("control").target == "c"
        assert await cli(drain(cluster.redis, "a", False, 5)) == 0
        assert factory.redirect is None
        assert a.service.getServiceNamed("control").watching is None
    finally:
        await cluster.close()


def test_detachedSessionsEnd(node):
    """A session kept for resumption ends: its client cannot resume here; its messages go offline."""
    offline = stored(node)
    client = node.login(sm=True)
    client.disconnect()
    node.message(BALCONY, "while detached")
    assert node.sessions.get(parseJID(BALCONY)) is not None
    Drain(lambda: [node.base.factory], node.clock, node.server.hooks).start(OTHER)
    assert node.sessions.get(parseJID(BALCONY)) is None
    assert bodies(offline) == ["while detached"]
