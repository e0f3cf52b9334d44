# -*- test-case-name: tests.test_c2s -*-
"""
The client listeners (RFC 6120 §4, XEP-0368): L{C2SService} listens on
C{c2s.endpoint} (STARTTLS) and C{c2s.direct_tls_endpoint} (TLS from the
first byte) once storage is open, both with the same TLS context factory
(which picks a virtual host's own certificate by SNI, see L{xmppd.stream.tls}),
and L{C2SFactory} builds a
L{xmppd.c2s.stream.ClientStream} per connection after the admission limits
(connections per address, new connections per second) have let it in.
What one connection does is L{xmppd.c2s.stream}; this module is what all of a
node's client connections share.

Implements: RFC 6120 §4 (client listeners), XEP-0368
"""

from __future__ import annotations

import secrets

from twisted.internet import defer, protocol
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.words.protocols.jabber.xmlstream import NS_STREAMS

from xmppd.c2s.stream import ClientStream
from xmppd.stream.closing import CLOSE_TIMEOUT
from xmppd.stream.listening import ListeningService
from xmppd.stream.elements import NS_CLIENT, PREFIXES, PREFIXES_IN_SCOPE, streamErrorElement
from xmppd.config.hosts import allHostSettings
from xmppd.core.metrics import Sample
from xmppd.stream.limits import AuthFailureTracker, PeerCounter, TokenBucket, rateBucket


class RefusingProtocol(protocol.Protocol):
    """Says why a connection is refused, as a stream error, and hangs up."""

    def __init__(self, reason: str):
        self.reason = reason

    def connectionMade(self) -> None:
        # RFC 6120 §4.7.3, §4.7.4: every response header carries an id and
        # a language.
        self.transport.write(
            ("<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='%s'"
             " version='1.0' xml:lang='en' id='%s'>"
             % (NS_CLIENT, NS_STREAMS, secrets.token_hex(8))
             ).encode("utf-8")
            + streamErrorElement("policy-violation", self.reason).toXml(
                prefixes=PREFIXES, prefixesInScope=PREFIXES_IN_SCOPE).encode("utf-8")
            + b"</stream:stream>")
        self.transport.loseConnection()


class C2SFactory(protocol.ServerFactory):
    """
    Builds client streams for one listener; holds what all of them share
    (router, sessions, limits) so per-connection state stays small.
    """

    log = Logger()

    #: While the node drains (L{xmppd.c2s.drain}): the other host,
    #: C{"host:port"}, every new stream is sent to (see-other-host).
    redirect: str | None = None

    def __init__(self, server, tlsOptions, secure: bool, peers: PeerCounter,
                 authFailures: AuthFailureTracker, transport: str = "tcp"):
        self.server = server
        #: How its clients reach the node ("tcp", "websocket", "bosh"): a
        #: label of the session metrics and log lines.
        self.transport = transport
        self.metrics = server.metrics
        self.clock = server.clock
        self.router = server.router
        self.sessions = server.sessions
        self.configure(server.config)
        self.tlsOptions = tlsOptions
        self.secure = secure
        self.peers = peers
        self.authFailures = authFailures
        #: Every open client stream of this listener, so a stopping server
        #: can tell each one (RFC 6120 §4.9.3.22 system-shutdown).
        self.streams: set[ClientStream] = set()
        self.streamCounter = 0
        self.traffic = server.traffic
        self.hooks = server.hooks

    def configure(self, config) -> None:
        """
        Take what new streams depend on from C{config}: at start, and again
        on a live reload (L{xmppd.admin.reload}); streams already open keep
        the limits they started with.
        """
        self.domains = frozenset(config.server.domains)
        #: Served domain -> its L{xmppd.config.hosts.HostSettings}: what a stream
        #: of that domain offers (TLS required, ANONYMOUS) depends on it.
        self.hosts = allHostSettings(config)
        self.limits = config.limits
        #: For a stream that has not named a served domain (yet).
        self.requireTLS = config.c2s.require_tls
        self.plainWithoutTLS = config.c2s.plain_without_tls
        #: The password mechanisms offered, in order ([sasl] mechanisms).
        self.saslMechanisms = config.sasl.mechanisms
        #: Serialized stream features by stream state (L{ClientStream.sendFeatures}),
        #: which depend on all of the above.
        self.featuresCache: dict[tuple, str] = {}
        self.newConnections = self.makeBucket(self.limits.new_connections_per_second)

    @property
    def saslSecret(self) -> bytes:
        """
        The node's secret, read when used: fake SCRAM salts of unknown users
        must be the same from every node of a cluster (L{xmppd.cluster.secret}).
        """
        return self.server.secret

    @property
    def users(self):
        return self.server.storage.users

    def makeBucket(self, rate: float) -> TokenBucket | None:
        # A burst of two seconds' worth lets normal traffic through unshaped.
        return rateBucket(rate, self.clock)

    def newStreamId(self) -> str:
        # RFC 6120 §4.7.3: unpredictable (the random part) and non-repeating
        # (node and counter); Server Dialback keys depend on it.
        self.streamCounter += 1
        return "%s-%x-%s" % (self.server.nodeId, self.streamCounter, secrets.token_hex(8))

    def buildProtocol(self, addr):
        host = getattr(addr, "host", None) or "local"
        # The per-address limit comes first, so that one address hammering
        # the listener is refused without using up everyone's new-connection
        # rate.
        if not self.peers.acquire(host):
            self.metrics.reject("connections_per_ip")
            self.log.info("Refusing {host}: too many connections from it", host=host,
                          event="abuse", limit="connections_per_ip")
            return RefusingProtocol("too many connections from your address")
        if self.newConnections is not None and not self.newConnections.tryConsume(1):
            self.peers.release(host)
            self.metrics.reject("new_connections_per_second")
            self.log.info("Refusing {host}: new connections over the limit", host=host,
                          event="abuse", limit="new_connections_per_second")
            return RefusingProtocol("too many new connections, try again later")
        stream = ClientStream(self, self.secure)
        stream.peerKey = host
        return stream

    def connectionClosed(self, stream: ClientStream) -> None:
        self.peers.release(stream.peerKey)


class C2SService(ListeningService):
    """
    The c2s listeners: STARTTLS on C{c2s.endpoint}, direct TLS (XEP-0368) on
    C{c2s.direct_tls_endpoint}.  Listening starts only once storage is open,
    so no client ever meets a server that cannot check its password, and in
    a cluster once the cluster's secret is known, so the fake SCRAM salts of
    unknown users are the same on every node from the first login
    (L{xmppd.core.server.XMPPServer.whenReady}).
    C{ready} fires with the listening ports (tests use port 0 and read them).
    """

    name = "c2s"
    log = Logger()

    def __init__(self, server, tlsOptions, reactor=None):
        if reactor is None:
            from twisted.internet import reactor
        self.server = server
        self.tlsOptions = tlsOptions
        self.reactor = reactor
        ListeningService.__init__(self)
        self.factories: list[C2SFactory] = []
        #: The factories of client streams that come over other transports
        #: (L{transportFactory}).
        self.transports: list[C2SFactory] = []
        limits = server.config.limits
        self.peers = PeerCounter(limits.connections_per_ip)
        self.authFailures = AuthFailureTracker(
            limits.auth_failure_delay, limits.auth_failure_delay_max, server.clock)

    def listeners(self):
        c2s = self.server.config.c2s
        yield "c2s.endpoint", c2s.endpoint, C2SFactory(
            self.server, self.tlsOptions, False, self.peers, self.authFailures)
        if c2s.direct_tls_endpoint:
            factory = C2SFactory(self.server, None, True, self.peers, self.authFailures)
            yield ("c2s.direct_tls_endpoint", c2s.direct_tls_endpoint,
                   TLSMemoryBIOFactory(self.tlsOptions, False, factory))

    def transportFactory(self, transport: str = "websocket") -> C2SFactory:
        """
        The factory of client streams that reach the node another way than
        these listeners (the WebSocket of L{xmppd.c2s.websocket}): it shares
        their per-address count and login-failure delays, so a client gets
        no more connections or guesses by mixing transports, and its
        streams are drained and shut down with theirs.
        """
        factory = C2SFactory(self.server, None, False, self.peers, self.authFailures,
                             transport)
        self.transports.append(factory)
        return factory

    def listen(self):
        """Open the listeners; their streams and the other transports' are then drained and shut down together."""
        return ListeningService.listen(self).addCallback(self._withTransports)

    def _withTransports(self, ports):
        self.factories.extend(self.transports)
        return ports

    def metricSamples(self):
        """
        The bound client sessions by transport, counted when scraped
        (L{xmppd.core.metrics}): the streams are the state, no counter
        to keep in step.
        """
        counts = {"tcp": 0, "websocket": 0, "bosh": 0}
        for factory in set(self.factories) | set(self.transports):
            bound = sum(1 for stream in factory.streams if stream.session is not None)
            counts[factory.transport] = counts.get(factory.transport, 0) + bound
        for transport, n in sorted(counts.items()):
            yield Sample("xmppd_c2s_sessions", "gauge", "Bound client sessions by transport",
                         {"transport": transport}, n)

    def listened(self, port, factory) -> None:
        self.factories.append(getattr(factory, "wrappedFactory", factory))

    @defer.inlineCallbacks
    def stopService(self):
        """
        Stop listening, then close every client stream with C{system-shutdown}
        (RFC 6120 §4.9.3.22) and wait, boundedly, for them to go, so storage
        (stopped after us) closes only once no session can still use it.
        """
        yield self.stopListening()
        factories, self.factories = self.factories, []
        gone = []
        for factory in factories:
            for stream in list(factory.streams):
                gone.append(stream.whenClosed())
                stream.streamError("system-shutdown")
        self.server.hooks.notify("c2s/shutdown", None)
        if gone:
            yield defer.DeferredList(gone).addTimeout(CLOSE_TIMEOUT + 1, self.reactor)
