"""
End-to-end tests of the defences of the server-to-server and component
listeners: a real node built by L{xmppd.tap.makeService} listening on
ephemeral loopback ports, and a raw TCP client speaking just enough XML to
be an abusive peer (too slow, too big, too many, guessing), asserting on
the stream error it reads before the server hangs up.  The unit tests next
to each stream kind (tests/test_s2s_incoming.py, tests/test_components.py)
show the same defences step by step with a clock.
"""

from __future__ import annotations

import re

import pytest_twisted
from twisted.internet import defer, protocol
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

from tests.e2e import DOMAIN, TIMEOUT, reactor, sleep
from tests.s2shelpers import S2SReply
from tests.streamhelpers import Reply
from xmppd.components.server import handshakeDigest

COMPONENT = "echo." + DOMAIN
SECRET = "the echo component's secret"
REMOTE = "remote.example"


class RawPeer(protocol.Protocol):
    """Collects what the server writes; C{closed} fires with it when the server hangs up."""

    def __init__(self):
        self.data = b""
        self.closed = defer.Deferred()
        self.more = None

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        more, self.more = self.more, None
        if more is not None:
            more.callback(None)

    def connectionLost(self, reason) -> None:
        self.closed.callback(self.data)

    async def header(self) -> dict[str, str]:
        """Wait (bounded) for the server's stream header; its attributes."""
        while Reply.HEADER.match(self.data.decode("utf-8", "replace")) is None:
            self.more = defer.Deferred()
            await self.more.addTimeout(TIMEOUT, reactor())
        return Reply(self.data[:self.data.index(b">", self.data.index(b"<stream:stream")) + 1]
                     ).header

    async def until(self, needle: bytes) -> None:
        """Wait (bounded) until the server has written C{needle}."""
        while needle not in self.data:
            if self.closed.called:
                raise AssertionError("closed before %r: %r" % (needle, self.data))
            self.more = defer.Deferred()
            await self.more.addTimeout(TIMEOUT, reactor())

    async def streamError(self) -> str | None:
        """Wait (bounded) for the server to close; the condition of its stream error."""
        data = await self.closed.addTimeout(TIMEOUT, reactor())
        reply = S2SReply(data)
        assert reply.closed, data
        return reply.streamError


async def connect(port: int, opening: bytes = b"") -> RawPeer:
    peer = RawPeer()
    await connectProtocol(TCP4ClientEndpoint(reactor(), "127.0.0.1", port), peer)
    if opening:
        peer.transport.write(opening)
    return peer


def s2sHeader(to: str = DOMAIN, sender: str = REMOTE) -> bytes:
    return ("<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/"
            "streams' xmlns='jabber:server' xmlns:db='jabber:server:dialback' "
            "to='%s' from='%s' version='1.0'>" % (to, sender)).encode()


def componentHeader(to: str = COMPONENT) -> bytes:
    return ("<stream:stream xmlns:stream='http://etherx.jabber.org/streams' "
            "xmlns='jabber:component:accept' to='%s'>" % (to,)).encode()


async def s2sNode(makeServer, **limits):
    node = await makeServer({"s2s": {"listen": "tcp:0:interface=127.0.0.1"},
                             "limits": limits})
    ports = await node.service.getServiceNamed("s2s").ready.addTimeout(TIMEOUT, reactor())
    return node, ports[0].getHost().port


async def federatedNode(makeServer, **s2s):
    """
    A node whose s2s listener takes dialback without TLS, and whose
    dialback questions are answered "valid" by a stub instead of the
    authoritative server of L{REMOTE} (which does not exist): a raw peer
    can then authenticate as L{REMOTE}.  Returns (node, s2s service, port).
    """
    node = await makeServer({"s2s": {"listen": "tcp:0:interface=127.0.0.1",
                                     "require_encryption": False, **s2s}})
    service = node.service.getServiceNamed("s2s")
    ports = await service.ready.addTimeout(TIMEOUT, reactor())
    service.verifyDialback = lambda local, remote, streamId, key: defer.succeed(True)
    return node, service, ports[0].getHost().port


async def dialbackPeer(port: int) -> RawPeer:
    """A raw peer authenticated as L{REMOTE} to L{DOMAIN} with dialback."""
    peer = await connect(port, s2sHeader())
    await peer.header()
    peer.transport.write(b"<db:result from='%s' to='%s'>a-key</db:result>"
                         % (REMOTE.encode(), DOMAIN.encode()))
    await peer.until(b"type='valid'")
    return peer


def counting(stream) -> list[int]:
    """Count the stanzas C{stream} processes (routes) from now on, in C{[0]}."""
    processed = [0]
    process = stream.processStanza

    def counted(stanza):
        processed[0] += 1
        process(stanza)
    stream.processStanza = counted
    return processed


async def flowsWhileFlooded(node, service, processed: list[int], flood) -> None:
    """
    While a flood of stanzas (C{flood()} starts it, and returns how many)
    is being read slowly, a user's message reaches another user: the flood
    is slowed (reading paused, counted under traffic_shaping) and not all
    processed yet, and it goes on.
    """
    await node.addUser("romeo")
    await node.addUser("juliet")
    romeo = await node.login("romeo")
    juliet = await node.login("juliet", "balcony")
    total = flood()
    romeo.send(f"juliet@{DOMAIN}/balcony", "the flood does not drown me")
    assert (await juliet.nextMessage())["body"] == "the flood does not drown me"
    before = processed[0]
    assert 0 < before < total
    assert service.server.metrics.rejected["traffic_shaping"] >= 1
    # Slowed, not stopped: more of the flood is read as time passes.
    for _ in range(int(TIMEOUT * 10)):
        if processed[0] > before:
            break
        await sleep(0.1)
    assert processed[0] > before


def flood(peer: RawPeer, sender: str, count: int = 10000) -> int:
    """
    Write C{count} headlines from C{sender} at once, to an account that
    does not exist (each is dropped without a word once read): at 200 a
    second they take the server most of a minute to read.
    """
    peer.transport.write(b"".join(
        b"<message type='headline' from='%s' to='nobody@%s'><body>%d</body></message>"
        % (sender.encode(), DOMAIN.encode(), n) for n in range(count)))
    return count


async def componentNode(makeServer, **limits):
    node = await makeServer({"components": {"listen": "tcp:0:interface=127.0.0.1",
                                            "secrets": {COMPONENT: SECRET}},
                             "limits": limits})
    service = node.service.getServiceNamed("components")
    port = (await service.ready.addTimeout(TIMEOUT, reactor())).getHost().port
    return service, port


# -- server-to-server -----------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_s2sNegotiationDeadline(makeServer):
    """A server that opens a stream and never authenticates is closed with connection-timeout."""
    node, port = await s2sNode(makeServer, negotiation_timeout=0.5)
    peer = await connect(port, s2sHeader())
    assert await peer.streamError() == "connection-timeout"


@pytest_twisted.ensureDeferred
async def test_s2sFloodBeforeAuthentication(makeServer):
    """A stanza over limits.max_stanza_size_unauthenticated before authentication: policy-violation."""
    node, port = await s2sNode(makeServer)
    peer = await connect(port, s2sHeader())
    await peer.header()
    peer.transport.write(b"<message from='a@%s' to='b@%s'><body>%s</body></message>"
                         % (REMOTE.encode(), DOMAIN.encode(), b"x" * 30000))
    assert await peer.streamError() == "policy-violation"


@pytest_twisted.ensureDeferred
async def test_s2sFloodAfterDialbackIsSlowed(makeServer):
    """
    A server that floods stanzas after dialback is slowed to
    s2s.stanzas_per_second (reading paused, not disconnected) while the
    node's users keep talking; every stanza it sent is still read, slowly.
    """
    node, service, port = await federatedNode(makeServer, stanzas_per_second=200)
    peer = await dialbackPeer(port)
    [stream] = service.incoming
    processed = counting(stream)
    await flowsWhileFlooded(node, service, processed,
                            lambda: flood(peer, "romeo@" + REMOTE))
    assert not peer.closed.called
    assert stream.errorCondition is None


@pytest_twisted.ensureDeferred
async def test_s2sByteFloodBeforeAuthenticationIsSlowed(makeServer):
    """
    Bytes that make no stanza (whitespace) before authentication are
    shaped by s2s.bytes_per_second too: the peer is slowed, not dropped.
    """
    node, service, port = await federatedNode(makeServer, bytes_per_second=1024)
    peer = await connect(port, s2sHeader())
    await peer.header()
    peer.transport.write(b" " * 65536)
    metrics = service.server.metrics
    for _ in range(int(TIMEOUT * 10)):
        if metrics.rejected.get("traffic_shaping"):
            break
        await sleep(0.1)
    [stream] = service.incoming
    assert "shaping" in stream.readPauses
    assert not peer.closed.called


@pytest_twisted.ensureDeferred
async def test_s2sSpoofedFrom(makeServer):
    """A stanza from a domain not authenticated on the stream: invalid-from, then closed."""
    node, service, port = await federatedNode(makeServer)
    peer = await dialbackPeer(port)
    peer.transport.write(b"<message from='mallory@elsewhere.example' to='juliet@%s'>"
                         b"<body>trust me</body></message>" % (DOMAIN.encode(),))
    assert await peer.streamError() == "invalid-from"


@pytest_twisted.ensureDeferred
async def test_s2sPeerThatNeverReadsIsDropped(makeServer):
    """
    A server that asks and asks (dialback verifications, answered without
    state) and never reads the answers: once more than
    limits.send_queue_limit bytes wait for it beyond the socket's buffers,
    its connection is aborted instead of the node's memory growing.
    """
    node = await makeServer({
        "s2s": {"listen": "tcp:0:interface=127.0.0.1", "require_encryption": False,
                "bytes_per_second": 0, "stanzas_per_second": 0},
        "limits": {"max_stanza_size": 10000, "max_stanza_size_unauthenticated": 8192,
                   "send_queue_limit": 10000}})
    service = node.service.getServiceNamed("s2s")
    port = (await service.ready.addTimeout(TIMEOUT, reactor()))[0].getHost().port
    peer = await connect(port, s2sHeader())
    await peer.header()
    [stream] = service.incoming
    peer.transport.pauseProducing()  # never reads again
    # Each answer repeats the id asked about: 4 KB out for each 4 KB in.
    verify = (b"<db:verify from='%s' to='%s' id='%s'>k</db:verify>"
              % (REMOTE.encode(), DOMAIN.encode(), b"i" * 4000))
    for _ in range(int(TIMEOUT * 10)):
        if stream not in service.incoming:
            break
        peer.transport.write(verify * 100)
        await sleep(0.1)
    assert stream not in service.incoming
    assert service.server.metrics.rejected["send_queue_limit"] == 1
    assert stream.transport.disconnected or stream.closing


@pytest_twisted.ensureDeferred
async def test_s2sConnectionsPerAddress(makeServer):
    """One connection more than limits.connections_per_ip from an address: a header, policy-violation."""
    node, port = await s2sNode(makeServer, connections_per_ip=2)
    kept = [await connect(port, s2sHeader()) for _ in range(2)]
    for peer in kept:
        await peer.header()
    refused = await connect(port)
    assert await refused.streamError() == "policy-violation"
    assert b"too many connections" in refused.data
    for peer in kept:
        assert not peer.closed.called
        peer.transport.loseConnection()
        await peer.closed.addTimeout(TIMEOUT, reactor())


# -- components (XEP-0114) -------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_componentWrongHandshake(makeServer):
    """
    A wrong handshake is answered with not-authorized, late (the e2e
    configuration's short limits.auth_failure_delay), and the address's
    failure is remembered for its next guess; what followed it is not read.
    """
    service, port = await componentNode(makeServer)
    peer = await connect(port, componentHeader())
    await peer.header()
    peer.transport.write(b"<handshake>0000</handshake><message from='x@%s' to='y@%s'/>"
                         % (COMPONENT.encode(), DOMAIN.encode()))
    assert await peer.streamError() == "not-authorized"
    assert service.authFailures.delayFor("127.0.0.1") > 0
    assert service.connections() == []


@pytest_twisted.ensureDeferred
async def test_componentOversizedBeforeHandshake(makeServer):
    """Before the handshake a component is held to limits.max_stanza_size_unauthenticated."""
    service, port = await componentNode(makeServer)
    peer = await connect(port, componentHeader())
    await peer.header()
    peer.transport.write(b"<handshake>" + b"0" * 30000 + b"</handshake>")
    assert await peer.streamError() == "policy-violation"


@pytest_twisted.ensureDeferred
async def test_componentNegotiationDeadline(makeServer):
    """A component that never sends its handshake is closed with connection-timeout."""
    service, port = await componentNode(makeServer, negotiation_timeout=0.5)
    peer = await connect(port, componentHeader())
    assert re.match(r"\S+-c", (await peer.header())["id"])
    assert await peer.streamError() == "connection-timeout"


async def componentLogin(port: int) -> RawPeer:
    """A raw component authenticated for L{COMPONENT} with the right handshake."""
    peer = await connect(port, componentHeader())
    streamId = (await peer.header())["id"]
    peer.transport.write(b"<handshake>%s</handshake>" % handshakeDigest(streamId, SECRET).encode())
    await peer.until(b"<handshake/>")
    return peer


@pytest_twisted.ensureDeferred
async def test_componentFloodIsSlowed(makeServer):
    """
    A component that floods is slowed to components.stanzas_per_second
    (reading paused, not disconnected) while the node's users keep talking.
    """
    node = await makeServer({"components": {"listen": "tcp:0:interface=127.0.0.1",
                                            "secrets": {COMPONENT: SECRET},
                                            "stanzas_per_second": 200}})
    service = node.service.getServiceNamed("components")
    port = (await service.ready.addTimeout(TIMEOUT, reactor())).getHost().port
    peer = await componentLogin(port)
    stream = service.streams[COMPONENT]
    processed = counting(stream)
    await flowsWhileFlooded(node, service, processed,
                            lambda: flood(peer, "bot@" + COMPONENT))
    assert not peer.closed.called
    assert stream.errorCondition is None


# -- the HTTP service ---------------------------------------------------------------


async def httpNode(makeServer, **http):
    node = await makeServer({"http": http})
    return node, node.node.httpPort


@pytest_twisted.ensureDeferred
async def test_httpSlowloris(makeServer):
    """
    A request head trickled a byte at a time (slowloris) gets 408 once
    http.header_timeout has passed since it began, and the connection closes.
    """
    node, port = await httpNode(makeServer, header_timeout=1.0)
    peer = await connect(port, b"GET /metrics HTTP/1.1\r\n")
    while not peer.closed.called:
        peer.transport.write(b"X")
        await sleep(0.1)
    data = await peer.closed.addTimeout(TIMEOUT, reactor())
    assert data.startswith(b"HTTP/1.1 408 "), data


@pytest_twisted.ensureDeferred
async def test_httpOversizedBody(makeServer):
    """A body announced over http.max_request_size gets 413 before it is read, and the connection closes."""
    node, port = await httpNode(makeServer, max_request_size=1024)
    peer = await connect(port, b"POST /metrics HTTP/1.1\r\nHost: localhost\r\n"
                               b"Content-Length: 100000000\r\n\r\n")
    data = await peer.closed.addTimeout(TIMEOUT, reactor())
    assert data.startswith(b"HTTP/1.1 413 "), data
