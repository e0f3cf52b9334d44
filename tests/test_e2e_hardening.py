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

from tests.e2e import DOMAIN, TIMEOUT, reactor
from tests.streamhelpers import Reply

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

    async def streamError(self) -> str | None:
        """Wait (bounded) for the server to close; the condition of its stream error."""
        data = await self.closed.addTimeout(TIMEOUT, reactor())
        reply = Reply(data)
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
