# -*- test-case-name: tests.test_componentclient -*-
"""
Running a service as an external component: the component's side of
XEP-0114 (§3), so that a service written for the router (the MUC service)
can run in a process of its own and reach a server over the network.

A L{ComponentClient} stands in for the router of such a service.  It keeps
one connection per configured endpoint (several servers of a cluster, or
one), each a Twisted C{ClientService} that reconnects with exponential
backoff.  On each connection it opens a stream to its domain, answers the
server's stream id with the handshake digest and waits, boundedly, for the
empty C{<handshake/>} that lets stanzas flow.  Stanzas from any connection
are given to the service (C{route.deliver}); stanzas the service emits
(L{ComponentClient.route}) leave over the oldest authenticated connection,
not round-robin, so that stanzas to one recipient are never reordered
across connections.

While no connection is up, stanzas are serialized (so a service may reuse
and change a stanza object after routing it) and queued, at most
C{queueSize} of them, and sent in order once a connection is up; beyond
that they are dropped, and the drop is logged.  A service that wants to
know may define C{componentConnected()} and C{componentDisconnected()}:
they are called when the first connection comes up and when the last one
goes down.

A client given an C{instance} name puts it in its stream headers
(L{xmppd.components.balance.NS_INSTANCE}), so that a server balancing
several processes of the same component domain (C{components.balance})
gives this process the same share of the recipients on every node.

C{routes} is empty and C{hasRoute} always false: a service that looks for
an in-process route to a domain (a fast path when it runs inside the
server) finds none here, and routes everything through the server.

Implements: XEP-0114 1.6
"""

from __future__ import annotations

from collections import deque
from xml.sax.saxutils import quoteattr
from typing import Callable, Iterable

from twisted.application import service
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import endpoints, protocol
from twisted.logger import Logger
from twisted.words.xish import domish

from xmppd.stream.elements import serialize
from xmppd.components.balance import NS_INSTANCE
from xmppd.components.server import handshakeDigest
from xmppd.core.jid import InvalidJID, prepDomainpart
from xmppd.stream.base import StreamBase, StreamLimits

#: Stanzas kept while no connection is up.
QUEUE_SIZE = 10000

#: The component's own limits: what the server may send it, and how long the
#: server may take to accept the handshake.
CLIENT_LIMITS = StreamLimits(negotiationTimeout=30.0)


class ComponentConnection(StreamBase):
    """One connection of a L{ComponentClient} to a server."""

    def __init__(self, client: "ComponentClient"):
        StreamBase.__init__(self, client.domain, client.clock, client.limits)
        self.client = client

    def connectionMade(self) -> None:
        StreamBase.connectionMade(self)
        self.sendHeader()

    def sendHeader(self) -> None:
        attributes = " to='%s'" % (self.domain,)
        if self.client.instance:
            attributes += " xmlns:xi='%s' xi:instance=%s" % (
                NS_INSTANCE, quoteattr(self.client.instance))
        self.writeHeader(attributes)

    def onDocumentStart(self, root: domish.Element) -> None:
        if not self.checkHeader(root):
            return
        self.streamId = root.getAttribute("id")
        if not self.streamId:
            # Without an id there is nothing to prove the secret against.
            return self.streamError("bad-format", "the stream header has no id")
        handshake = domish.Element((None, "handshake"))
        handshake.addContent(handshakeDigest(self.streamId, self.client.secret))
        self.send(handshake)

    def onHandshake(self, element: domish.Element) -> None:
        self.accepted()
        self.client.connectionUp(self)

    def onStanza(self, stanza: domish.Element) -> None:
        self.client.stanzaReceived(stanza)

    def onPeerStreamError(self, error: domish.Element) -> None:
        # Refusals (not-authorized, host-unknown, conflict) are configuration
        # problems an operator must see.
        conditions = [child.name for child in error.elements() if child.name != "text"]
        self.log.warn("Server {peer} closed component stream {domain}: {condition}",
                      peer=self.peerAddress, domain=self.domain,
                      condition=conditions[0] if conditions else "(none)")

    def streamClosing(self) -> None:
        self.client.connectionDown(self)


class ComponentClientFactory(protocol.Factory):
    def __init__(self, client: "ComponentClient"):
        self.client = client

    def buildProtocol(self, addr) -> ComponentConnection:
        return ComponentConnection(self.client)


class ComponentClient(service.MultiService):
    """
    The router of a service run as an external component; see the module
    docstring.  C{endpoints} are Twisted client endpoint strings
    (C{"tcp:host=127.0.0.1:port=5347"}) or endpoint objects.
    """

    log = Logger()

    def __init__(self, route, domain: str, secret: str, endpoints: Iterable,
                 reactor=None, clock=None, queueSize: int = QUEUE_SIZE,
                 limits: StreamLimits = CLIENT_LIMITS,
                 retryPolicy: Callable[[int], float] | None = None,
                 instance: str | None = None):
        service.MultiService.__init__(self)
        if reactor is None:
            from twisted.internet import reactor
        try:
            self.domain = prepDomainpart(domain)
        except InvalidJID as e:
            raise ValueError("component domain %r: %s" % (domain, e)) from None
        if not isinstance(secret, str) or not secret:
            raise ValueError("component %s: the secret must be a non-empty string" % (domain,))
        #: The service: takes the stanzas that arrive (C{deliver}).
        self.target = route
        self.secret = secret
        #: The name this process gives itself in its headers, or C{None}.
        self.instance = instance
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        self.limits = limits
        self.queueSize = queueSize
        #: Always empty: no domain is served in this process (see the module docstring).
        self.routes: dict = {}
        #: Authenticated connections, oldest first; stanzas leave by the first.
        self.up: list[ComponentConnection] = []
        self.queue: deque[str] = deque()
        self.dropped = 0
        factory = ComponentClientFactory(self)
        policy = retryPolicy or backoffPolicy(initialDelay=0.5, maxDelay=30.0)
        for description in endpoints:
            endpoint = (self.clientEndpoint(description) if isinstance(description, str)
                        else description)
            ClientService(endpoint, factory, retryPolicy=policy,
                          clock=self.clock).setServiceParent(self)

    def clientEndpoint(self, description: str):
        return endpoints.clientFromString(self.reactor, description)

    # -- the router the service sees ---------------------------------------

    def route(self, stanza: domish.Element) -> None:
        """Send C{stanza} to the server, or queue it until a connection is up."""
        if self.up:
            self.up[0].send(stanza)
        elif len(self.queue) < self.queueSize:
            self.queue.append(serialize(stanza))
        else:
            if not self.dropped:
                self.log.warn("Component {domain}: no connection and {size} stanzas "
                              "queued; dropping more until a connection is up",
                              domain=self.domain, size=self.queueSize)
            self.dropped += 1

    def addRoute(self, domain: str, route) -> None:
        """Nothing to do: the service's own route is its connection to the server."""

    def removeRoute(self, domain: str, route) -> None:
        """See L{addRoute}."""

    def hasRoute(self, domain: str) -> bool:
        return False

    # -- connections ---------------------------------------------------------

    def connectionUp(self, connection: ComponentConnection) -> None:
        first = not self.up
        self.up.append(connection)
        self.log.info("Component {domain} connected to {peer}",
                      domain=self.domain, peer=connection.peerAddress)
        queued, self.queue = self.queue, deque()
        for text in queued:
            connection.send(text)
        if self.dropped:
            self.log.warn("Component {domain}: {count} stanzas were dropped while no "
                          "connection was up", domain=self.domain, count=self.dropped)
            self.dropped = 0
        if first:
            self.tell("componentConnected")

    def connectionDown(self, connection: ComponentConnection) -> None:
        if connection not in self.up:
            return
        self.up.remove(connection)
        self.log.info("Component {domain} disconnected from {peer}",
                      domain=self.domain, peer=connection.peerAddress)
        if not self.up:
            self.tell("componentDisconnected")

    def tell(self, name: str) -> None:
        """Call the service's optional method C{name}, if it has one."""
        method = getattr(self.target, name, None)
        if method is None:
            return
        try:
            method()
        except Exception:
            self.log.failure("Component {domain}: {name}() failed",
                             domain=self.domain, name=name)

    def stanzaReceived(self, stanza: domish.Element) -> None:
        try:
            self.target.deliver(stanza)
        except Exception:
            # One stanza the service chokes on must not cost the connection.
            self.log.failure("Component {domain}: the service failed on a stanza",
                             domain=self.domain)

    def stopService(self):
        """Close each stream with its footer, then stop reconnecting."""
        for connection in list(self.up):
            connection.closeStream()
        if self.queue:
            self.log.info("Component {domain} stops with {count} stanzas unsent",
                          domain=self.domain, count=len(self.queue))
            self.queue.clear()
        return service.MultiService.stopService(self)
