"""
Tests for L{xmppd.components.client}: a service run as an external component,
first against a scripted server over a L{StringTransport} with time from a
L{Clock}, then against L{xmppd.components.server.ComponentService} on a loopback
port with the real reactor.
"""

from __future__ import annotations

import hashlib

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import Logger, formatEvent
from twisted.python.failure import Failure
from twisted.words.xish import domish

from tests.helpers import parse
from tests.streamhelpers import FakeTransport, Reply
from tests.test_components import COMPONENT, DOMAIN, SECRET, Harness
from xmppd.components.client import ComponentClient, ComponentConnection
from xmppd.core.stanzas import NS_CLIENT
from xmppd.stream.base import NS_COMPONENT, StreamBase

#: The longest any wait on the real reactor may take, in seconds.
TIMEOUT = 10.0


class Service:
    """Stands in for the service behind the component: records what reaches it."""

    def __init__(self):
        self.stanzas: list[domish.Element] = []
        self.events: list[str] = []
        self.waiting: dict[str, list[defer.Deferred]] = {}

    def deliver(self, stanza: domish.Element) -> None:
        self.stanzas.append(stanza)
        self.fire("stanza")

    def componentConnected(self) -> None:
        self.events.append("connected")
        self.fire("connected")

    def componentDisconnected(self) -> None:
        self.events.append("disconnected")
        self.fire("disconnected")

    def fire(self, name: str) -> None:
        for waiter in self.waiting.pop(name, []):
            waiter.callback(None)

    def next(self, name: str) -> defer.Deferred:
        """Fires at the next C{name} event (real reactor tests; bounded by the caller)."""
        waiter = defer.Deferred()
        self.waiting.setdefault(name, []).append(waiter)
        return waiter


class ScriptedServer:
    """The server's end of one connection made by the client, played by the test."""

    def __init__(self, protocol, transport):
        self.protocol = protocol
        self.transport = transport

    def received(self) -> bytes:
        data = self.transport.value()
        self.transport.clear()
        return data

    def send(self, data: str) -> None:
        self.protocol.dataReceived(data.encode("utf-8"))

    def header(self, streamId: str = "s1") -> None:
        self.send("<?xml version='1.0'?><stream:stream xmlns:stream="
                  "'http://etherx.jabber.org/streams' xmlns='%s' from='%s' id='%s'>"
                  % (NS_COMPONENT, COMPONENT, streamId))

    def accept(self, streamId: str = "s1") -> None:
        """Answer the header, check the digest, and let the component in."""
        self.received()
        self.header(streamId)
        digest = hashlib.sha1((streamId + SECRET).encode()).hexdigest()
        assert self.received() == b"<handshake>%s</handshake>" % digest.encode()
        self.send("<handshake/>")

    def drop(self) -> None:
        """The TCP connection goes away."""
        self.transport.connected = False
        self.protocol.connectionLost(Failure(ConnectionDone()))


class FakeEndpoint:
    """A client endpoint whose connections are L{ScriptedServer}s (or refused)."""

    def __init__(self):
        self.servers: list[ScriptedServer] = []
        self.refuse = False

    def connect(self, factory):
        if self.refuse:
            return defer.fail(ConnectionRefusedError())
        address = IPv4Address("TCP", "127.0.0.1", 5347)
        protocol = factory.buildProtocol(address)
        transport = FakeTransport(address)
        protocol.makeConnection(transport)
        self.servers.append(ScriptedServer(protocol, transport))
        return defer.succeed(protocol)


def makeClient(endpoints, service=None, **kwargs):
    clock = Clock()
    client = ComponentClient(service or Service(), COMPONENT, SECRET, endpoints,
                             reactor=clock, clock=clock, retryPolicy=lambda attempt: 1.0,
                             **kwargs)
    client.startService()
    return client, clock


@pytest.fixture
def logged(monkeypatch):
    events = []
    logger = Logger(observer=events.append)
    monkeypatch.setattr(StreamBase, "log", logger)
    monkeypatch.setattr(ComponentClient, "log", logger)
    return events


def message(n: int = 1, to: str = "juliet@example.org/balcony") -> domish.Element:
    return parse("<message from='room@%s/nick' to='%s'><body>%d</body></message>"
                 % (COMPONENT, to, n))


# -- the stream, against a scripted server -----------------------------------


def test_headerAndHandshake():
    """The component opens a stream to its domain and proves its secret against the stream id."""
    endpoint = FakeEndpoint()
    client, clock = makeClient([endpoint])
    [server] = endpoint.servers
    header = Reply(server.received()).header
    assert header["to"] == COMPONENT and header["xmlns"] == NS_COMPONENT
    server.accept("abc-123")
    assert client.target.events == ["connected"]


def test_stanzasBothWays():
    """Stanzas from the server reach the service as jabber:client; the service's go out unprefixed."""
    endpoint = FakeEndpoint()
    client, clock = makeClient([endpoint])
    [server] = endpoint.servers
    server.accept()
    server.send("<message from='juliet@example.org/b' to='room@%s'><body>hi</body></message>"
                % COMPONENT)
    [stanza] = client.target.stanzas
    assert stanza.uri == NS_CLIENT and stanza.body.uri == NS_CLIENT
    assert stanza["from"] == "juliet@example.org/b"
    client.route(message())
    assert server.received() == (b"<message from='room@muc.example.org/nick' "
                                 b"to='juliet@example.org/balcony'><body>1</body></message>")


def test_noInProcessRoutes():
    """A service looking for an in-process route to a domain finds none."""
    client, clock = makeClient([FakeEndpoint()])
    assert client.routes == {}
    assert client.routes.get(COMPONENT) is None
    assert not client.hasRoute(COMPONENT) and not client.hasRoute(DOMAIN)


def test_queuedUntilConnected():
    """Stanzas routed before the handshake are sent, in order, once it succeeds."""
    endpoint = FakeEndpoint()
    client, clock = makeClient([endpoint])
    [server] = endpoint.servers
    stanza = message(1)
    client.route(stanza)
    # The service may reuse its stanza object: what was queued does not change.
    stanza["to"] = "romeo@example.org/x"
    client.route(stanza)
    server.received()
    server.header()
    server.received()
    server.send("<handshake/>")
    sent = server.received()
    assert sent.index(b"juliet@example.org/balcony") < sent.index(b"romeo@example.org/x")


def test_queueBounded(logged):
    """Beyond the queue size stanzas are dropped, and the drop is logged, once and then counted."""
    endpoint = FakeEndpoint()
    client, clock = makeClient([endpoint], queueSize=3)
    for n in range(5):
        client.route(message(n))
    assert len(client.queue) == 3
    drops = [formatEvent(e) for e in logged if "dropping" in formatEvent(e)]
    assert len(drops) == 1
    endpoint.servers[0].accept()
    sent = Reply(endpoint.servers[0].received())
    assert [str(m.body) for m in sent.elements] == ["0", "1", "2"]
    assert any("2 stanzas were dropped" in formatEvent(e) for e in logged)


def test_reconnectAfterDrop():
    """A connection the server drops is made again after the backoff delay."""
    endpoint = FakeEndpoint()
    client, clock = makeClient([endpoint])
    endpoint.servers[0].accept()
    endpoint.servers[0].drop()
    assert client.target.events == ["connected", "disconnected"]
    client.route(message())
    assert len(endpoint.servers) == 1
    clock.advance(1.0)
    [_, server] = endpoint.servers
    server.accept()
    assert client.target.events == ["connected", "disconnected", "connected"]
    assert b"<body>1</body>" in server.received()


def test_retryWhileRefused():
    """A server that refuses connections is tried again and again, with the backoff delay."""
    endpoint = FakeEndpoint()
    endpoint.refuse = True
    client, clock = makeClient([endpoint])
    clock.advance(1.0)
    clock.advance(1.0)
    assert endpoint.servers == []
    endpoint.refuse = False
    clock.advance(1.0)
    endpoint.servers[0].accept()
    assert client.target.events == ["connected"]


def test_refusedHandshake(logged):
    """A stream error from the server (a wrong secret) is logged as a warning, and retried later."""
    endpoint = FakeEndpoint()
    client, clock = makeClient([endpoint])
    server = endpoint.servers[0]
    server.received()
    server.header()
    server.received()
    server.send("<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                "</stream:error>")
    assert Reply(server.received()).closed
    assert server.transport.disconnecting
    warnings = [formatEvent(e) for e in logged if e["log_level"].name == "warn"]
    assert any("not-authorized" in line for line in warnings)
    assert not any(SECRET in formatEvent(e) for e in logged)
    server.drop()
    clock.advance(1.0)
    assert len(endpoint.servers) == 2
    assert client.target.events == []


def test_handshakeDeadline():
    """A server that never accepts the handshake is hung up on, and tried again."""
    endpoint = FakeEndpoint()
    client, clock = makeClient([endpoint])
    server = endpoint.servers[0]
    server.received()
    server.header()
    clock.advance(client.limits.negotiationTimeout)
    assert Reply(server.received()).streamError == "connection-timeout"
    server.drop()
    clock.advance(1.0)
    assert len(endpoint.servers) == 2


def test_headerWithoutId():
    """A server header without a stream id is a bad-format stream error."""
    endpoint = FakeEndpoint()
    client, clock = makeClient([endpoint])
    server = endpoint.servers[0]
    server.received()
    server.send("<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='%s'>"
                % NS_COMPONENT)
    assert Reply(server.received()).streamError == "bad-format"


def test_stanzaBeforeHandshake():
    """A server that sends stanzas before accepting the handshake is not trusted with them."""
    endpoint = FakeEndpoint()
    client, clock = makeClient([endpoint])
    server = endpoint.servers[0]
    server.received()
    server.header()
    server.send("<message from='juliet@example.org/b' to='room@%s'/>" % COMPONENT)
    assert Reply(server.received()).streamError == "not-authorized"
    assert client.target.stanzas == []


def test_twoEndpoints():
    """With two connections up, stanzas leave by the older one; the service hears only first up and last down."""
    first, second = FakeEndpoint(), FakeEndpoint()
    client, clock = makeClient([first, second])
    second.servers[0].accept()
    first.servers[0].accept()
    assert client.target.events == ["connected"]
    client.route(message(1))
    assert b"<body>1</body>" in second.servers[0].received()
    assert first.servers[0].received() == b""
    second.servers[0].drop()
    client.route(message(2))
    assert b"<body>2</body>" in first.servers[0].received()
    assert client.target.events == ["connected"]
    first.servers[0].drop()
    assert client.target.events == ["connected", "disconnected"]


def test_serviceWithoutNotifications():
    """A service without componentConnected/componentDisconnected still gets its stanzas."""

    class Bare:
        def __init__(self):
            self.stanzas = []

        def deliver(self, stanza):
            self.stanzas.append(stanza)

    endpoint = FakeEndpoint()
    client, clock = makeClient([endpoint], service=Bare())
    endpoint.servers[0].accept()
    endpoint.servers[0].send("<presence from='juliet@example.org/b' to='room@%s/j'/>" % COMPONENT)
    endpoint.servers[0].drop()
    assert len(client.target.stanzas) == 1


def test_serviceFailureKeepsConnection(logged):
    """A stanza the service fails on is logged; the connection and later stanzas carry on."""

    class Broken(Service):
        def deliver(self, stanza):
            Service.deliver(self, stanza)
            if len(self.stanzas) == 1:
                raise RuntimeError("boom")

    endpoint = FakeEndpoint()
    client, clock = makeClient([endpoint], service=Broken())
    server = endpoint.servers[0]
    server.accept()
    server.send("<message from='juliet@example.org/b' to='room@%s'/>" % COMPONENT)
    server.send("<message from='juliet@example.org/b' to='room@%s'/>" % COMPONENT)
    assert len(client.target.stanzas) == 2
    assert not server.transport.disconnecting
    assert any(e.get("log_failure") is not None for e in logged)


def test_stopService():
    """Stopping closes the stream with its footer and makes no new connection."""
    endpoint = FakeEndpoint()
    client, clock = makeClient([endpoint])
    server = endpoint.servers[0]
    server.accept()
    stopped = client.stopService()
    assert server.received().endswith(b"</stream:stream>")
    server.drop()
    assert stopped.called
    clock.advance(100)
    assert len(endpoint.servers) == 1


@pytest.mark.parametrize("domain, secret", [("bad..domain", SECRET), (COMPONENT, "")])
def test_badArguments(domain, secret):
    """A malformed domain or an empty secret is refused when the client is made."""
    with pytest.raises(ValueError):
        ComponentClient(Service(), domain, secret, [], reactor=Clock())


def test_endpointStrings():
    """Endpoints may be given as Twisted client endpoint strings, one connection each."""
    memory = MemoryReactorClock()
    client = ComponentClient(Service(), COMPONENT, SECRET,
                             ["tcp:host=127.0.0.1:port=5347", "tcp:host=xmpp.example.org:port=5348"],
                             reactor=memory)
    client.startService()
    assert [(host, port) for host, port, *_ in memory.tcpClients] == [
        ("127.0.0.1", 5347), ("xmpp.example.org", 5348)]


def test_connectionsAreProtocols():
    """Each connection is a ComponentConnection, one per endpoint."""
    endpoint = FakeEndpoint()
    makeClient([endpoint])
    assert isinstance(endpoint.servers[0].protocol._protocol, ComponentConnection)


# -- against the real server side, on a loopback port -------------------------


def reactor():
    from twisted.internet import reactor
    return reactor


async def startPair(tmp_path, service: Service):
    """The component service listening on an ephemeral port, and a client connected to it."""
    harness = Harness(tmp_path, {"listen": "tcp:0:interface=127.0.0.1"}, reactor=reactor())
    port = await harness.service.ready.addTimeout(TIMEOUT, reactor())
    connected = service.next("connected")
    client = ComponentClient(service, COMPONENT, SECRET,
                             ["tcp:host=127.0.0.1:port=%d" % port.getHost().port],
                             reactor=reactor(), retryPolicy=lambda attempt: 0.01)
    client.startService()
    await connected.addTimeout(TIMEOUT, reactor())
    return harness, client


async def stopPair(harness, client) -> None:
    await defer.maybeDeferred(client.stopService).addTimeout(TIMEOUT, reactor())
    await defer.maybeDeferred(harness.service.stopService).addTimeout(TIMEOUT, reactor())


@pytest_twisted.ensureDeferred
async def test_loopbackBothWays(tmp_path):
    """Over a real connection the component authenticates and stanzas flow both ways."""
    service = Service()
    harness, client = await startPair(tmp_path, service)
    try:
        [(domain, peer, since)] = harness.service.connections()
        assert domain == COMPONENT and peer.startswith("127.0.0.1:")
        arrived = service.next("stanza")
        harness.router.route(parse("<message from='juliet@example.org/b' to='room@%s'>"
                                   "<body>hi</body></message>" % COMPONENT))
        await arrived.addTimeout(TIMEOUT, reactor())
        assert str(service.stanzas[0].body) == "hi"
        local = Service()
        harness.router.addRoute(DOMAIN, local)
        arrived = local.next("stanza")
        client.route(message(7))
        await arrived.addTimeout(TIMEOUT, reactor())
        [stanza] = local.stanzas
        assert (str(stanza.body), stanza["from"]) == ("7", "room@%s/nick" % COMPONENT)
    finally:
        await stopPair(harness, client)


@pytest_twisted.ensureDeferred
async def test_loopbackReconnect(tmp_path):
    """When the server drops the component, it connects and authenticates again by itself."""
    service = Service()
    harness, client = await startPair(tmp_path, service)
    try:
        [stream] = harness.service.streams.values()
        down, up = service.next("disconnected"), service.next("connected")
        stream.transport.loseConnection()
        await down.addTimeout(TIMEOUT, reactor())
        await up.addTimeout(TIMEOUT, reactor())
        assert service.events == ["connected", "disconnected", "connected"]
        assert harness.service.streams[COMPONENT] is not stream
    finally:
        await stopPair(harness, client)
