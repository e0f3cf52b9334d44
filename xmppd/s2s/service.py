# -*- test-case-name: tests.test_s2s_service -*-
"""
The S2S service: federation for one node (DESIGN §1, §3).

While it runs it is the router's default route, so every stanza for a
domain no route serves comes here; it goes out through the route of the
pair (sender's domain, recipient's domain), an L{OutgoingRoute}.  Stanzas
whose sender is not one of our domains are dropped: they came from another
server and are not ours to relay (and errors about them could loop).  It
listens for other servers on C{s2s.listen} (STARTTLS) and, when set,
C{s2s.direct_tls_listen} (XEP-0368), once the node is ready (storage
open; in a cluster, the cluster's secret known), as c2s does.

With C{s2s.bidi} on, a pair may instead be served by the peer's
bidirectional stream (XEP-0288): when another server authenticates
(its domain -> ours) on an incoming stream it asked to be bidirectional,
the route of (ours -> its domain) sends through that stream, and no
connection of ours is made (L{S2SService.useBidiStream}).

It also answers the incoming side's dialback questions by asking the
authoritative server over a connection of its own
(L{S2SService.verifyDialback}), checks certificates (L{xmppd.s2s.verify}),
logs every authenticated stream (direction, domains, method, peer), and
lists the streams for operators (L{S2SService.connections}).

Implements: RFC 6120 §13.7, XEP-0220 1.1.1, XEP-0178 1.2, XEP-0288 1.0.1, XEP-0368 1.1.0
"""

from __future__ import annotations

import secrets as randomness

from twisted.internet import defer, endpoints
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.words.xish import domish
from zope.interface import implementer

from xmppd.stream.closing import CLOSE_TIMEOUT
from xmppd.core.jid import InvalidJID, parseJID
from xmppd.stream.listening import ListeningService
from xmppd.core.local import leavesDomain
from xmppd.core.metrics import Sample
from xmppd.core.router import IRoute
from xmppd.s2s.incoming import IncomingFactory, IncomingStream
from xmppd.s2s.outgoing import NegotiationFailed, OutgoingFactory, OutgoingRoute, OutgoingStream
from xmppd.s2s.resolver import DomainNotFound, Resolver, Target
from xmppd.s2s.streams import StreamLimits
from xmppd.stream.limits import PeerCounter
from xmppd.s2s.verify import CertificateCheck, ClientCreator, ServerCreator, TrustStore, peerChain


def streamLimits(config) -> StreamLimits:
    """What one s2s stream may cost: C{[limits]} as for clients, C{s2s.*} rates."""
    limits = config.limits
    return StreamLimits(
        maxStanzaSize=limits.max_stanza_size,
        maxStanzaSizeUnauthenticated=limits.max_stanza_size_unauthenticated,
        maxDepth=limits.max_depth,
        negotiationTimeout=limits.negotiation_timeout,
        sendQueueLimit=limits.send_queue_limit,
        bytesPerSecond=config.s2s.bytes_per_second,
        stanzasPerSecond=config.s2s.stanzas_per_second)


@implementer(IRoute)
class S2SService(ListeningService):
    """
    Federation: see the module docstring.  C{ready} fires with the listening
    ports once they listen (tests use port 0 and read them).
    """

    name = "s2s"
    log = Logger()

    def __init__(self, server, certificate: str | None, key: str | None,
                 hostCertificates=None, reactor=None, resolver=None):
        if reactor is None:
            from twisted.internet import reactor
        config = server.config
        s2s = config.s2s
        limits = config.limits
        self.server = server
        self.reactor = reactor
        self.clock = server.clock
        self.router = server.router
        self.nodeId = server.nodeId
        self.listenOn = s2s.listen
        self.directTLSListenOn = s2s.direct_tls_listen
        self.requireEncryption = s2s.require_encryption
        self.requireValidCertificates = s2s.require_valid_certificates
        self.maxQueue = s2s.max_queue
        self.connectTimeout = s2s.connect_timeout
        self.idleTimeout = s2s.idle_timeout
        self.bidi = s2s.bidi
        self.limits = streamLimits(config)
        #: Incoming connections per address (limits.connections_per_ip, as
        #: for clients): one address cannot hold every socket of the node.
        self.peers = PeerCounter(limits.connections_per_ip)
        self.trust = TrustStore(s2s.ca_file)
        if certificate and key:
            # Contexts of their own, not c2s's (see ServerCreator for why).
            self.serverTLS = ServerCreator(certificate, key, hostCertificates)
            self.clientTLS = ClientCreator(certificate, key, hostCertificates)
        else:
            self.serverTLS = self.clientTLS = None
        self.resolver = resolver if resolver is not None else Resolver(s2s.hosts)
        #: (our domain, remote domain) -> its route, while it has something to do.
        self.routes: dict[tuple[str, str], OutgoingRoute] = {}
        self.incoming: set[IncomingStream] = set()
        self.outgoing: set[OutgoingStream] = set()
        self.streamCounter = 0
        self.previousDefault = None
        ListeningService.__init__(self)

    @property
    def secret(self) -> bytes:
        """
        The node's secret, read when used: in a cluster it becomes the
        cluster's once Redis is reached (L{xmppd.cluster.secret}), and the
        dialback keys of every node must agree.
        """
        return self.server.secret

    # -- service -----------------------------------------------------------

    def startService(self) -> None:
        self.previousDefault = self.router.defaultRoute
        self.router.defaultRoute = self
        ListeningService.startService(self)

    def listeners(self):
        if self.listenOn:
            yield "s2s.listen", self.listenOn, IncomingFactory(self, False)
        if self.directTLSListenOn and self.serverTLS is not None:
            yield ("s2s.direct_tls_listen", self.directTLSListenOn,
                   TLSMemoryBIOFactory(self.serverTLS, False, IncomingFactory(self, True)))

    @defer.inlineCallbacks
    def stopService(self):
        """
        Stop listening, give the default route back, bounce what waits, and
        close every stream with C{system-shutdown} (RFC 6120 §4.9.3.22),
        waiting for them boundedly.
        """
        if self.router.defaultRoute is self:
            self.router.defaultRoute = self.previousDefault
        yield self.stopListening()
        routes, self.routes = self.routes, {}
        for route in routes.values():
            route.stop()
        gone = []
        for stream in list(self.incoming) + list(self.outgoing):
            gone.append(stream.whenClosed())
            stream.streamError("system-shutdown")
        if gone:
            yield defer.DeferredList(gone).addTimeout(CLOSE_TIMEOUT + 1, self.clock)

    # -- routing -----------------------------------------------------------

    def serves(self, domain: str) -> bool:
        """Whether C{domain} is ours (a served domain, a MUC service, a component)."""
        return self.router.hasRoute(domain)

    def deliver(self, stanza: domish.Element) -> None:
        """IRoute: a stanza for a domain we do not serve leaves through its pair's route."""
        try:
            remote = parseJID(stanza.getAttribute("to")).host
            local = parseJID(stanza.getAttribute("from")).host
        except (InvalidJID, TypeError):
            self.log.warn("Dropping a stanza for another server without valid addresses "
                          "({to!r} from {sender!r})", to=stanza.getAttribute("to"),
                          sender=stanza.getAttribute("from"))
            return
        if not self.serves(local):
            self.log.info("Dropping a stanza from {local} to {remote}: {local} is not ours",
                          local=local, remote=remote)
            return
        if leavesDomain(self.router, stanza, parseJID(stanza["from"]), parseJID(stanza["to"]),
                        lambda: self.sendOut(stanza, local, remote)):
            return
        self.sendOut(stanza, local, remote)

    def sendOut(self, stanza: domish.Element, local: str, remote: str) -> None:
        """Queue C{stanza} on the route from C{local} to C{remote}, made if needed."""
        route = self.routes.get((local, remote))
        if route is None:
            route = self.routes[(local, remote)] = OutgoingRoute(self, local, remote)
        route.deliver(stanza)

    def useBidiStream(self, stream: IncomingStream, local: str, remote: str) -> None:
        """
        C{remote} authenticated itself to C{local} on C{stream}, which it
        asked to be bidirectional: our stanzas from C{local} to C{remote}
        go through it (XEP-0288 §2.2), unless the route already has a stream.
        """
        route = self.routes.get((local, remote))
        if route is None:
            route = self.routes[(local, remote)] = OutgoingRoute(self, local, remote)
        if route.useStream(stream):
            self.log.info("s2s out {local} -> {remote} through the bidirectional stream "
                          "from {peer}", local=local, remote=remote, peer=stream.peerAddress)
        else:
            self.routeIdle(route)

    def spareStream(self, local: str, remote: str):
        """
        Another open stream able to carry stanzas from C{local} to
        C{remote}, for a route whose stream closed: one of ours
        authenticated for the pair (left over when both servers connected
        at once), or a bidirectional one of the peer's authenticated for
        the reverse pair; C{None} when there is none.
        """
        for stream in self.outgoing:
            if (stream.method is not None and stream.verify is None and not stream.closing
                    and (stream.localDomain, stream.remoteDomain) == (local, remote)):
                return stream
        for stream in self.incoming:
            if stream.bidi and not stream.closing and (local, remote) in stream.reversed:
                return stream
        return None

    def routeIdle(self, route: OutgoingRoute) -> None:
        """A route with no stream, attempt or queue is forgotten (the table stays bounded)."""
        if self.routes.get((route.local, route.remote)) is route and \
                route.stream is None and route.attempt is None and not route.queue:
            del self.routes[(route.local, route.remote)]

    # -- connections -------------------------------------------------------

    def connectStream(self, target: Target, local: str, remote: str,
                      verify: tuple[str, str] | None = None) -> defer.Deferred:
        """Connect to C{target}; fires with the L{OutgoingStream} once TCP (and direct TLS) is up."""
        factory = OutgoingFactory(self, local, remote, target.directTLS, verify)
        endpoint = endpoints.HostnameEndpoint(self.reactor, target.host, target.port,
                                              timeout=self.connectTimeout)
        if target.directTLS:
            if self.clientTLS is None:
                return defer.fail(NegotiationFailed("remote-server-timeout",
                                                    "no certificate for direct TLS"))
            endpoint = endpoints.wrapClientTLS(
                self.clientTLS.forDomain(remote, local, directTLS=True), endpoint)
        return endpoint.connect(factory)

    def verifyDialback(self, local: str, remote: str, streamId: str,
                       key: str) -> defer.Deferred:
        """
        Ask C{remote}'s authoritative server whether C{key} is right for a
        stream C{streamId} from C{remote} to C{local} (XEP-0220 §2.2); fires
        with a bool, or fails with L{NegotiationFailed} (C{condition} for
        the C{type='error'} answer) after C{s2s.connect_timeout} at most.
        """
        d = defer.ensureDeferred(self._verifyDialback(local, remote, streamId, key))
        d.addTimeout(self.connectTimeout, self.clock)

        def translate(failure):
            if failure.check(DomainNotFound):
                raise NegotiationFailed("remote-server-not-found", str(failure.value))
            if failure.check(defer.TimeoutError):
                raise NegotiationFailed("remote-server-timeout",
                                        "no answer within %s s" % (self.connectTimeout,))
            return failure
        return d.addErrback(translate)

    async def _verifyDialback(self, local, remote, streamId, key) -> bool:
        targets = await self.resolver.resolve(remote)
        for target in targets:
            try:
                stream = await self.connectStream(target, local, remote, (streamId, key))
            except defer.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - try the next address
                continue
            return await stream.done
        raise NegotiationFailed("remote-server-timeout", "cannot connect to %s" % (remote,))

    def checkCertificate(self, transport, domain: str) -> CertificateCheck:
        """Whether the certificate the peer presented on C{transport} is valid for C{domain}."""
        return self.trust.check(peerChain(transport), domain)

    def newStreamId(self) -> str:
        # RFC 6120 §4.7.3: unpredictable and unique; dialback keys depend on it.
        self.streamCounter += 1
        return "%s-s%x-%s" % (self.nodeId, self.streamCounter, randomness.token_hex(8))

    def setHostOverride(self, domain: str, address: str | None) -> None:
        """Reach C{domain} at C{"host:port"} from now on (C{None}: DNS again); for tests and tools."""
        self.resolver.setHost(domain, address)

    def authenticated(self, stream, local: str, remote: str, method: str) -> None:
        """Every authenticated pair is logged once, for operators."""
        self.log.info(
            "s2s {direction} {local} {arrow} {remote} authenticated with {method} "
            "(peer {peer}, {encryption})", direction=stream.direction, local=local,
            arrow="<-" if stream.direction == "in" else "->", remote=remote, method=method,
            peer=stream.peerAddress, encryption="TLS" if stream.secure else "no TLS",
            event="s2s-stream")

    def metricSamples(self):
        """The s2s streams by direction and the stanzas queued for routes without one (at scrape time)."""
        yield Sample("xmppd_s2s_streams", "gauge", "Server-to-server streams by direction",
                     {"direction": "in"}, len(self.incoming))
        yield Sample("xmppd_s2s_streams", "gauge", "Server-to-server streams by direction",
                     {"direction": "out"}, len(self.outgoing))
        routes = list(self.routes.values())
        yield Sample("xmppd_s2s_queued_stanzas", "gauge",
                     "Stanzas waiting for an outgoing s2s stream (s2s.max_queue per route)",
                     {}, sum(len(route.queue) for route in routes))
        yield Sample("xmppd_s2s_queues", "gauge",
                     "Outgoing s2s routes with stanzas waiting", {},
                     sum(1 for route in routes if route.queue))

    def connections(self) -> list[dict]:
        """
        The server-to-server streams, one entry per authenticated pair (or
        per stream still negotiating, with C{method} C{None}): C{direction}
        (C{"in"}/C{"out"}), C{local} and C{remote} domains, C{method}
        (C{"EXTERNAL"}, C{"dialback"} or C{None}), C{peer} (C{"host:port"}),
        C{since} (epoch seconds), C{encrypted} and C{bidi} (whether the
        stream carries stanzas both ways, XEP-0288: it is listed once, in
        the direction of the connection).
        """
        entries = []
        for stream in self.incoming:
            pairs = stream.pairs.items() or [
                ((stream.localDomain, stream.remoteDomain), (None, stream.connectedAt))]
            for (local, remote), (method, since) in pairs:
                entries.append({"direction": "in", "local": local, "remote": remote,
                                "method": method, "peer": stream.peerAddress,
                                "since": since, "encrypted": stream.secure,
                                "bidi": stream.bidi})
        for stream in self.outgoing:
            entries.append({"direction": "out", "local": stream.localDomain,
                            "remote": stream.remoteDomain, "method": stream.method,
                            "peer": stream.peerAddress,
                            "since": stream.since or stream.connectedAt,
                            "encrypted": stream.secure, "bidi": stream.bidi})
        entries.sort(key=lambda e: (e["direction"], e["local"] or "", e["remote"] or "",
                                    e["since"]))
        return entries
