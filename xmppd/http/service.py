# -*- test-case-name: tests.test_http -*-
"""
The node's one HTTP service (issue 15, item 1): L{HTTPService} listens on
C{http.endpoint} (plain, meant for a reverse proxy) and C{http.tls_endpoint}
(TLS with the client listeners' context factory, so the same certificates
and the same SNI choice of a virtual host's certificate, L{xmppd.stream.tls}),
once storage is open, like the client listeners.

What it serves is added with L{HTTPService.putChild} (a path under the
root and the C{twisted.web} resource that answers it), and what connection
discovery (XEP-0156, L{xmppd.http.discovery}) lists with
L{HTTPService.addLink}; the WebSocket and BOSH transports
(L{xmppd.c2s.websocket}, L{xmppd.c2s.bosh}) are such resources, and file
upload is meant to follow the same way.

Every connection is bounded before any resource sees it
(L{WebChannel}): the request head (line and headers), and its body but for
an upload's, must arrive whole within C{http.header_timeout} seconds, the
head fit C{http.max_header_size} bytes and C{http.max_headers} fields; a body larger than C{http.max_request_size}
gets 413 without being read; C{http.request_timeout} seconds of silence
close a connection; and one address has at most C{limits.connections_per_ip}
connections open (a trusted proxy excepted: it speaks for many clients).

Behind a reverse proxy every connection comes from the proxy: a request
from one of C{http.trusted_proxies} on the plain listener takes the client's
address from C{X-Forwarded-For} and counts as TLS when C{X-Forwarded-Proto}
says C{https} (L{WebRequest}), as Prosody's C{trusted_proxies} does.
Resources read the outcome from the request (C{clientHost}, C{viaTLS},
C{directTLS}), so they need not import this module.

A path whose requests carry large bodies (file upload) registers a body
handler with L{HTTPService.putBodyHandler}: its requests may be as large as
the handler's C{maxBody} instead of C{http.max_request_size}, and the
handler sees each one as soon as its head is complete
(C{openBody(request, method, path, length)}), so it can refuse it before
a byte of the body is read, or give the sink (C{write(data)} returning
whether to go on, C{abort()}) that takes the body as it arrives, bounded
in memory; the resource then finds it as C{request.bodySink}.
"""

from __future__ import annotations

import io
import ipaddress

from twisted.internet import defer, protocol
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web import http, resource, server

from xmppd.stream.limits import PeerCounter
from xmppd.stream.listening import ListeningService


class WebRequest(server.Request):
    """
    A request that knows who sent it: C{clientHost} (the peer's address,
    or the client's as a trusted proxy reports it), C{viaTLS} (the client's
    connection is encrypted: our HTTPS listener, or a trusted proxy's) and
    C{directTLS} (TLS ends here, so the TLS connection is the client's own:
    channel binding is possible).
    """

    clientHost = "local"
    viaTLS = False
    directTLS = False
    bodySize = 0
    #: Where a body handler's body goes (see the module docstring).
    bodySink = None

    def process(self):
        self.directTLS = self.viaTLS = self.isSecure()
        peer = self.getClientAddress()
        self.clientHost = getattr(peer, "host", None) or "local"
        channel = self.channel
        trusted = getattr(channel, "trustedPeer", None)
        if trusted is None:  # a channel not made by WebSite.buildProtocol (tests)
            trusted = channel.site.trusts(self.clientHost)
        if not self.directTLS and trusted:
            forwarded = self.getHeader(b"x-forwarded-for")
            if forwarded:
                # The address the proxy itself saw is the last one it added.
                claimed = forwarded.split(b",")[-1].strip().decode("ascii", "replace")
                try:
                    self.clientHost = str(ipaddress.ip_address(claimed))
                except ValueError:
                    pass
            proto = self.getHeader(b"x-forwarded-proto")
            if proto and proto.split(b",")[-1].strip().lower() == b"https":
                self.viaTLS = True
        return super().process()

    def requestReceived(self, command, path, version):
        # A path whose POST bodies are never forms (BOSH's XML) skips
        # Twisted's form parsing, which reads the Content-Type of every POST
        # with the email package: a quarter of a BOSH request's cost.
        formless = getattr(self.channel.site, "formless", None)
        if formless and firstSegment(path) in formless:
            self._parsePOSTFormSubmission = False
        super().requestReceived(command, path, version)

    def gotLength(self, length):
        channel = self.channel
        handler = channel.site.bodyHandlerFor(channel._path)
        if handler is None:
            super().gotLength(length)
            return
        self.content = io.BytesIO()
        outcome = handler.openBody(self, channel._command, channel._path, length)
        if isinstance(outcome, tuple):
            status, headers = outcome
            channel.refuse(status, headers)
        else:
            self.bodySink = outcome

    def handleContentChunk(self, data: bytes) -> None:
        # A chunked body has no length to check up front: count it.
        self.bodySize += len(data)
        channel = self.channel
        if channel is None or channel.refused:
            return
        if self.bodySize > channel.site.bodyLimit(channel._path):
            channel.refuse(b"413 Content Too Large")
            return
        if self.bodySink is not None:
            if not self.bodySink.write(data):
                channel.refuse(b"413 Content Too Large")
            return
        super().handleContentChunk(data)

    def connectionLost(self, reason):
        # A body cut short is forgotten by whoever was taking it.
        if self.bodySink is not None:
            self.bodySink.abort()
        super().connectionLost(reason)


def firstSegment(target: bytes) -> bytes | None:
    """The first segment of a request target's path (C{b"http-bind"}), if any."""
    if not target.startswith(b"/"):
        return None
    return target.split(b"?", 1)[0].split(b"/", 2)[1]


class WebChannel(http.HTTPChannel):
    """
    One HTTP connection, with the limits of C{[http]} (see the module
    docstring).  A refused request gets its status line and the connection
    closes; nothing after it is parsed.
    """

    refused = False
    headDeadline = None
    peerKey = None
    #: Whether the peer is one of C{http.trusted_proxies}: learnt once per
    #: connection (L{WebSite.buildProtocol}), not once per request.
    trustedPeer = None
    _secure = None

    def connectionMade(self):
        config = self.site.config
        self.maxHeaders = config.max_headers
        self.totalHeadersSize = config.max_header_size
        self.MAX_LENGTH = config.max_header_size
        super().connectionMade()
        self.site.channels.add(self)
        self.armHeadDeadline()

    def isSecure(self) -> bool:
        # Asked by every request (WebRequest.process); the transport of a
        # connection does not change, so the answer is learnt once.
        if self._secure is None:
            self._secure = super().isSecure()
        return self._secure

    def armHeadDeadline(self) -> None:
        """The next request head must be complete within C{http.header_timeout} (slowloris)."""
        self.cancelHeadDeadline()
        self.headDeadline = self.callLater(self.site.config.header_timeout, self.headTimedOut)

    def cancelHeadDeadline(self) -> None:
        if self.headDeadline is not None:
            if self.headDeadline.active():
                self.headDeadline.cancel()
            self.headDeadline = None

    def headTimedOut(self) -> None:
        self.headDeadline = None
        if self.requests:
            self.refuse(b"408 Request Timeout")
        else:
            # An idle keep-alive connection: nothing to answer.
            self.refused = True
            self.loseConnection()
            self.scheduleAbort()

    def refuse(self, status: bytes, headers: bytes = b"") -> None:
        """
        Answer C{status} ("413 Content Too Large") and close; ignore the
        rest.  C{headers} are more header lines, each ending in CRLF.
        """
        if self.refused:
            return
        self.refused = True
        self.cancelHeadDeadline()
        self.transport.write(b"HTTP/1.1 " + status + b"\r\n" + headers +
                             b"Connection: close\r\nContent-Length: 0\r\n\r\n")
        self.loseConnection()
        self.scheduleAbort()

    def scheduleAbort(self) -> None:
        # A peer that does not read its refusal is cut off (Twisted's own
        # idle-timeout path does the same).
        if self._abortingCall is None and self.abortTimeout is not None:
            self._abortingCall = self.callLater(self.abortTimeout, self.forceAbortClient)

    def dataReceived(self, data):
        if self.refused:
            return
        super().dataReceived(data)

    def lineReceived(self, line):
        if self.refused:
            return
        super().lineReceived(line)

    def rawDataReceived(self, data):
        if self.refused:
            return
        super().rawDataReceived(data)

    def headerReceived(self, line):
        if self.refused:
            return False
        ok = super().headerReceived(line)
        if ok and self.length is not None and self.length > self.site.bodyLimit(self._path):
            self.refuse(b"413 Content Too Large")
            return False
        return ok and not self.refused

    def allHeadersReceived(self):
        if self.refused:
            return
        if self.length == 0 or self.site.bodyHandlerFor(self._path) is not None:
            # Nothing more to come, or an upload: large, as slow as the
            # uploader's link, and bounded by its slot.
            self.cancelHeadDeadline()
        # Otherwise the body (at most http.max_request_size) must come
        # within the same deadline as the head: a client trickling a byte
        # now and then (slow POST) would hold the connection for ever.
        super().allHeadersReceived()

    def _send100Continue(self):
        if not self.refused:
            super()._send100Continue()

    def allContentReceived(self):
        if self.refused:
            return
        self.cancelHeadDeadline()
        super().allContentReceived()

    def requestDone(self, request):
        if self.persistent and not self.refused:
            # Armed before the next pipelined request is read, so its head
            # (complete or not) is measured from now.
            self.armHeadDeadline()
        super().requestDone(request)

    def _respondToBadRequestAndDisconnect(self):
        self.refuse(b"400 Bad Request")

    def _protocolUpgradeForWebsockets(self, protocol):
        """
        The connection becomes a WebSocket: the channel stops being the
        transport's producer (the new protocol registers its own, to learn
        when the peer stops reading), and the connection is no longer an
        HTTP one: the client stream counts it against its address from now
        (with the TCP clients), so it is released here.
        """
        self.cancelHeadDeadline()
        self.site.channels.discard(self)
        self.releasePeer()
        self._networkProducer.unregisterProducer()
        super()._protocolUpgradeForWebsockets(protocol)

    def connectionLost(self, reason):
        self.cancelHeadDeadline()
        self.site.channels.discard(self)
        self.releasePeer()
        super().connectionLost(reason)

    def releasePeer(self) -> None:
        key, self.peerKey = self.peerKey, None
        if key is not None:
            self.site.peers.release(key)


class TooManyConnections(protocol.Protocol):
    """
    The answer to an address over its connection limit: 429 and the
    connection closes.  A protocol rather than no protocol at all, so that
    it also works under TLS (whose wrapper needs one to wrap).
    """

    def connectionMade(self):
        self.transport.write(b"HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\n"
                             b"Content-Length: 0\r\n\r\n")
        self.transport.loseConnection()


class WebSite(server.Site):
    """The site of both listeners: the limits, the proxies trusted, the open channels."""

    protocol = WebChannel
    requestFactory = WebRequest
    displayTracebacks = False
    logger = Logger()
    #: The node's L{xmppd.core.metrics.Metrics} once C{/metrics} is served.
    metrics = None

    def __init__(self, root, config, connectionsPerIP: int, reactor=None):
        super().__init__(root, timeout=config.request_timeout, reactor=reactor)
        self.config = config
        self.proxies = [ipaddress.ip_network(p, strict=False) for p in config.trusted_proxies]
        self.peers = PeerCounter(connectionsPerIP)
        self.channels: set[WebChannel] = set()
        #: First path segment -> body handler (see the module docstring).
        self.bodyHandlers: dict[bytes, object] = {}
        #: First path segments whose POST bodies are never forms
        #: (L{HTTPService.putChild} with C{forms=False}).
        self.formless: set[bytes] = set()

    def bodyHandlerFor(self, target: bytes):
        """The body handler of a request target's first segment, if any."""
        if not self.bodyHandlers:
            return None
        return self.bodyHandlers.get(firstSegment(target))

    def bodyLimit(self, target: bytes) -> int:
        """The largest body a request for C{target} may have."""
        handler = self.bodyHandlerFor(target)
        return self.config.max_request_size if handler is None else handler.maxBody

    def trusts(self, host: str) -> bool:
        """Whether C{host} is one of C{http.trusted_proxies}."""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.proxies)

    def buildProtocol(self, addr):
        host = getattr(addr, "host", None) or "local"
        trusted = self.trusts(host)
        if not trusted and not self.peers.acquire(host):
            if self.metrics is not None:
                self.metrics.reject("connections_per_ip")
            self.logger.info("Refusing HTTP connection from {host}: too many from it", host=host)
            return TooManyConnections()
        channel = super().buildProtocol(addr)
        channel.trustedPeer = trusted
        if not trusted:
            channel.peerKey = host
        return channel

    def log(self, request):
        # No access log: a WebSocket or BOSH client makes a request per
        # connection or per poll, and the server logs what matters itself.
        pass


class HTTPService(ListeningService):
    """
    The HTTP listeners of a node; see the module docstring.  C{ready}
    fires with the listening ports once they listen (tests use port 0).
    """

    name = "http"
    log = Logger()

    def __init__(self, server, tlsOptions, reactor=None):
        if reactor is None:
            from twisted.internet import reactor
        self.server = server
        self.config = server.config.http
        self.tlsOptions = tlsOptions
        self.reactor = reactor
        ListeningService.__init__(self)
        self.root = resource.Resource()
        #: (rel, path, plain scheme, TLS scheme) of the XEP-0156 links, in order.
        self.links: list[tuple[str, str, str, str]] = []
        #: Functions of a served domain giving a URL (or C{None}) that pages
        #: of this service must be allowed to reach (L{addConnectSource}).
        self.connectSources: list = []
        self.site = WebSite(self.root, self.config,
                            server.config.limits.connections_per_ip, reactor=reactor)
        from xmppd.http.discovery import wellKnown
        self.putChild(".well-known", wellKnown(self))

    def putChild(self, path: str, child, forms: bool = True) -> None:
        """
        Serve C{child} (a C{twisted.web} resource) at C{/path}.  With
        C{forms=False} its POST bodies are left unparsed (not read into
        C{request.args} as a form, whatever their C{Content-Type} says).
        """
        self.root.putChild(path.encode("ascii"), child)
        if not forms:
            self.site.formless.add(path.encode("ascii"))

    def putBodyHandler(self, path: str, handler) -> None:
        """
        Requests under C{/path} go to C{handler} as their head arrives
        (large bodies streamed to it; see the module docstring).
        """
        self.site.bodyHandlers[path.encode("ascii")] = handler

    def publicURL(self, host: str) -> str | None:
        """
        The URL of this service for a client of C{host} as far as this
        node knows it: the HTTPS listener's port, else the plain one's
        (behind a proxy an operator names the public URL instead); C{None}
        before listening.
        """
        keys = [key for key, description in (("http.endpoint", self.config.endpoint),
                                             ("http.tls_endpoint", self.config.tls_endpoint))
                if description]
        byKey = dict(zip(keys, self.ports))
        for key, scheme in (("http.tls_endpoint", "https"), ("http.endpoint", "http")):
            port = byKey.get(key)
            if port is not None:
                return "%s://%s:%d" % (scheme, host, port.getHost().port)
        return None

    def addLink(self, rel: str, path: str, schemes: tuple[str, str] = ("http", "https")) -> None:
        """
        List C{/path} under C{rel} in host-meta (XEP-0156), with the first
        of C{schemes} for a client that came without TLS, the second for one
        with (C{("ws", "wss")} for a WebSocket).
        """
        self.links.append((rel, path, schemes[0], schemes[1]))

    def addConnectSource(self, urlOf) -> None:
        """
        Pages served here (the chat page, L{xmppd.http.chat}) talk to
        C{urlOf(domain)} for a served domain (file upload's URLs, which an
        operator may put on another origin, even a plain C{http} one): their
        Content-Security-Policy must name its origin.  C{urlOf} returns a
        URL or C{None}.
        """
        self.connectSources.append(urlOf)

    def listeners(self):
        if self.config.endpoint:
            yield "http.endpoint", self.config.endpoint, self.site
        if self.config.tls_endpoint:
            yield ("http.tls_endpoint", self.config.tls_endpoint,
                   TLSMemoryBIOFactory(self.tlsOptions, False, self.site))

    @defer.inlineCallbacks
    def stopService(self):
        """
        Stop listening and close the HTTP connections still open; those
        that became client streams are the client listeners' to close
        (with C{system-shutdown}).
        """
        yield self.stopListening()
        for channel in list(self.site.channels):
            channel.transport.abortConnection()
