# -*- test-case-name: tests.test_websocket -*-
"""
XMPP over WebSocket (RFC 7395): a client stream whose bytes travel in
WebSocket messages instead of a TCP stream.

There is no second client stream: L{WebSocketClientStream} is a
L{xmppd.c2s.stream.ClientStream} (the same negotiation, SASL with SCRAM and
its channel binding, bind, limits, shaping, stream management and every
feature), and only what RFC 7395 changes on the wire is different:

  - the stream header is C{<open/>} and the footer C{<close/>}, in
    C{urn:ietf:params:xml:ns:xmpp-framing} (§3.3.1, §3.3.2); a stream
    restart is a new C{<open/>} (§3.4);
  - each message holds exactly one element, which carries its own
    namespace declarations (§3.3.3): the stream's serialized elements get
    C{xmlns='jabber:client'} (stanzas) or C{xmlns:stream} (features,
    errors) added to their start tag, nothing else is re-serialized;
  - a stream error is followed by C{<close/>}, and sending a client to
    another node (see-other-host, L{xmppd.c2s.drain}) is C{<close
    see-other-uri='...'/>} (§3.6.1);
  - there is no STARTTLS: TLS is the HTTP connection's.  Over the HTTPS
    listener the stream is secure and SCRAM-PLUS binds to that TLS
    connection; behind a trusted reverse proxy that says the client used
    HTTPS, the stream is secure but has nothing to bind to (the TLS
    connection is the proxy's), so only SCRAM without -PLUS is offered.

Each message is fed, as it arrives and frame by frame, to the stream's
hardened parser (L{xmppd.stream.xmlparser}), primed with a root element of
our own: the size, depth and name limits of a TCP stream apply to a message
before it is whole (an oversized message gets C{policy-violation} without
being buffered), and the end of a message must fall between two elements.

The common case takes no detour (issue 15 item 8: a message over WebSocket
may cost at most 1.5 times one over TCP): a whole, masked, unfragmented
text frame of up to L{FAST_FRAME} bytes is unmasked here and its UTF-8
bytes go straight to the parser, and every message is sent as one frame
built here around the serialized stanza's bytes, without C{wsproto}'s
per-frame event objects or a decode to C{str} and an encode back.
Everything else (control frames, fragments, binary, larger or malformed
frames, and all traffic once the WebSocket is closing) is C{wsproto}'s,
always handed to it at a frame boundary.

The handshake (L{XMPPWebSocketResource}) requires the C{xmpp} subprotocol
(400 without it, RFC 6455 §4.2.1), answers it (RFC 7395 §3.2), checks the
C{Origin} against C{http.websocket_origins} (403) and admits the connection
like a TCP one (C{limits.connections_per_ip}: 429;
C{limits.new_connections_per_second}: 503).  It is Twisted's
C{twisted.web.websocket}, with two things it does not offer done here:
choosing the subprotocol in the handshake's answer, and delivering a
message in pieces instead of buffering it whole without a bound.

Implements: RFC 7395
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from twisted.internet import address
from twisted.logger import Logger
from twisted.web._websocket_impl import _handleEvent, _WebSocketWireProtocol, serverBootstrap
from twisted.web.server import NOT_DONE_YET
from twisted.web.websocket import WebSocketResource
from twisted.words.protocols.jabber.xmlstream import NS_STREAMS
from twisted.words.xish import domish
from wsproto import ConnectionType
from wsproto.connection import ConnectionState
from wsproto.events import AcceptConnection, BytesMessage, TextMessage
from wsproto.handshake import H11Handshake
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from xmppd.c2s.stream import ClientStream
from xmppd.stream.elements import NS_CLIENT

NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
#: The WebSocket subprotocol of XMPP (RFC 7395 §3.1).
SUBPROTOCOL = "xmpp"
#: Where the node serves it, and its XEP-0156 link relation.
PATH = "xmpp-websocket"
LINK_REL = "urn:xmpp:alt-connections:websocket"

#: What the parser reads before the first message: every message is then
#: one child of it, with C{jabber:client} the namespace of unqualified names.
_ROOT = b"<xmpp xmlns='jabber:client'>"
_STREAM_DECLARATION = " xmlns:stream='%s'" % (NS_STREAMS,)
_CLIENT_DECLARATION = " xmlns='%s'" % (NS_CLIENT,)
#: The largest frame read by L{_MessageWire}'s fast path.  Larger frames go
#: to C{wsproto}, which hands their payload on in pieces as they arrive, so
#: the parser's limits apply before such a frame is whole; this bounds what
#: the fast path buffers per connection.
FAST_FRAME = 16384
_OPEN = ConnectionState.OPEN
_fromLE = int.from_bytes


def standalone(text: str) -> str:
    """
    C{text}, one top-level element as a TCP client stream writes it (the
    stream's namespaces in scope), as a message of its own (RFC 7395
    §3.3.3): the declarations it relied on are added to its start tag.
    """
    if text.startswith("<stream:"):
        end = len("<stream:")
        while text[end] not in " />":
            end += 1
        return text[:end] + _STREAM_DECLARATION + text[end:]
    for name in ("<message", "<presence", "<iq"):
        if text.startswith(name):
            end = len(name)
            if text[end] in " />" and not text.startswith(" xmlns=", end):
                return text[:end] + _CLIENT_DECLARATION + text[end:]
            break
    return text


class WebSocketClientStream(ClientStream):
    """A client stream framed as RFC 7395 says; see the module docstring."""

    footer = "<close xmlns='%s'/>" % (NS_FRAMING,)
    #: Elements the message being read has held so far, and its last
    #: character that is not whitespace.
    messageElements = 0
    messageEnd = b""

    def newParser(self, maxStanzaSize: int) -> None:
        super().newParser(maxStanzaSize)
        parser = self.parser
        parser.DocumentStartEvent = _ignore
        parser.ElementEvent = self.onMessageElement
        parser.parse(_ROOT)

    def messageChunk(self, data: bytes, finished: bool) -> None:
        """A piece of a text message; the last one has C{finished}."""
        if self.closing:
            return
        parser = self.parser
        if data[-1:] == b">":
            self.messageEnd = b">"
        else:
            stripped = data.rstrip()
            if stripped:
                self.messageEnd = stripped[-1:]
        self.dataReceived(data)
        if finished and not self.closing:
            elements, self.messageElements = self.messageElements, 0
            end, self.messageEnd = self.messageEnd, b""
            if self.parser is not parser:
                return  # the stream restarted: the rest of the message is void
            if elements == 0 and not end:
                return  # only whitespace (a keepalive some clients send)
            # The last element must have ended the message: nothing open,
            # not even a start tag, when it ends.
            if elements == 0 or parser.inStanza or end != b">":
                self.streamError("bad-format",
                                 "a WebSocket message must hold one whole element")

    def binaryMessage(self) -> None:
        # RFC 7395 §3.3.3: XMPP is sent in text messages.
        self.streamError("bad-format", "XMPP over WebSocket is sent in text messages")

    def onMessageElement(self, element: domish.Element) -> None:
        if self.closing:
            return
        self.messageElements += 1
        if self.messageElements > 1:
            return self.streamError("bad-format",
                                    "a WebSocket message must hold one element only")
        if element.uri == NS_FRAMING:
            if element.name == "open":
                return self.onOpen(element)
            if element.name == "close":
                return self.onClose(element)
            return self.streamError("bad-format", "unknown framing element <%s/>"
                                    % (element.name,))
        if not self.headerSent:
            return self.streamError("bad-format", "the stream is not open: send <open/> first")
        self.onElement(element)

    def onOpen(self, element: domish.Element) -> None:
        """The client's stream header (RFC 7395 §3.3.1), as if it were C{<stream:stream>}."""
        if self.headerSent:
            return self.streamError("bad-format", "the stream is already open")
        root = domish.Element((NS_STREAMS, "stream"), defaultUri=NS_CLIENT,
                              attribs=dict(element.attributes))
        self.onDocumentStart(root)

    def onClose(self, element: domish.Element) -> None:
        """The client closes the stream (RFC 7395 §3.6)."""
        self.onDocumentEnd()

    def sendHeader(self) -> None:
        self.streamId = self.factory.newStreamId()
        attrs = " id='%s'" % self.streamId
        if self.domain:
            attrs += " from='%s'" % self.domain
        self.transport.sendText("<open xmlns='%s'%s version='1.0' xml:lang='en'/>"
                                % (NS_FRAMING, attrs))
        self.headerSent = True

    def write(self, obj, text: str) -> None:
        if self.traffic is not None:
            self.traffic.outgoing(self.serial, self.peerAddress, obj, text)
        if text[:1] != "<":
            # Whitespace keepalives have no place between messages (§3.3.3).
            return
        self.sendQueue.written(self.transport.sendText(standalone(text)))

    def seeOtherHost(self, address: str) -> None:
        """
        Send the client to another node (RFC 7395 §3.6.1): the same
        WebSocket URL on that node's host, since the nodes of a cluster
        share their configuration.
        """
        if self.closing:
            return
        if not self.headerSent:
            self.sendHeader()
        uri = self.transport.uriOnHost(address.rsplit(":", 1)[0])
        self.log.debug("Sending {peer} to {uri}", peer=self.peerAddress, uri=uri)
        self.errorCondition = "see-other-host"
        if self.backlog is not None:
            self.backlog.dropQueued()
        self.footer = "<close xmlns='%s' see-other-uri=%s/>" % (NS_FRAMING, quoteattr(uri))
        self.closeStream()

    def channelBindings(self) -> dict[str, bytes]:
        # Behind a proxy the TLS connection is the proxy's: nothing to bind to.
        if not self.transport.directTLS:
            return {}
        return super().channelBindings()


def _ignore(root) -> None:
    """The parser's own root element is ours, not the client's."""


class WebSocketConnection:
    """
    Between Twisted's WebSocket wire protocol and one L{WebSocketClientStream}:
    the wire protocol's application (C{negotiationStarted}, messages,
    C{connectionLost}), and the stream's transport (C{sendText}, flow
    control, addresses, the TLS connection for channel binding).
    """

    def __init__(self, stream: WebSocketClientStream, request):
        self.stream = stream
        self.wire = None
        self.tcp = request.channel.transport
        self.clientHost = getattr(request, "clientHost", None) or "local"
        self.directTLS = getattr(request, "directTLS", False)
        self.scheme = "wss" if getattr(request, "viaTLS", False) else "ws"
        self.path = request.path.decode("ascii", "replace")
        self.port = request.getHost().port

    # -- the wire protocol's application ----------------------------------

    def negotiationStarted(self, wire) -> None:
        self.wire = wire

    def negotiationFinished(self) -> None:
        self.stream.makeConnection(self)

    def textChunk(self, data: str, finished: bool) -> None:
        self.stream.messageChunk(data.encode("utf-8"), finished)

    def textMessage(self, data: bytes) -> None:
        """A whole text message, its UTF-8 bytes as they came (the fast path)."""
        self.stream.messageChunk(data, True)

    def bytesChunk(self) -> None:
        self.stream.binaryMessage()

    def pongReceived(self, payload: bytes) -> None:
        pass

    def connectionLost(self, reason) -> None:
        self.stream.connectionLost(reason)

    # -- the stream's transport --------------------------------------------

    def sendText(self, text: str) -> int:
        """
        Send one message; the bytes it took (0 once the WebSocket is closing).
        It is one unmasked text frame (RFC 6455 §5.2, §5.6), built here:
        C{wsproto} would build the same bytes (no extension is negotiated)
        with an event object and a copy more.
        """
        wire = self.wire
        if wire._wsconn.state is not _OPEN:
            return 0
        payload = text.encode("utf-8")
        n = len(payload)
        if n < 126:
            head = b"\x81" + bytes((n,))
        elif n < 65536:
            head = b"\x81\x7e" + n.to_bytes(2, "big")
        else:
            head = b"\x81\x7f" + n.to_bytes(8, "big")
        wire.transport.write(head + payload)
        return n

    def write(self, data: bytes) -> None:
        self.sendText(data.decode("utf-8"))

    def loseConnection(self) -> None:
        try:
            self.wire.loseConnection(1000)
        except LocalProtocolError:
            self.tcp.loseConnection()

    def abortConnection(self) -> None:
        self.tcp.abortConnection()

    def getPeer(self):
        peer = self.tcp.getPeer()
        if getattr(peer, "host", None) == self.clientHost:
            return peer
        kind = address.IPv6Address if ":" in self.clientHost else address.IPv4Address
        return kind("TCP", self.clientHost, 0)

    def getHost(self):
        return self.tcp.getHost()

    def getHandle(self):
        if not self.directTLS:
            raise AttributeError("no TLS connection of the client's own")
        return self.tcp.getHandle()

    def pauseProducing(self) -> None:
        self.tcp.pauseProducing()

    def resumeProducing(self) -> None:
        self.tcp.resumeProducing()

    def registerProducer(self, producer, streaming) -> None:
        self.tcp.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        self.tcp.unregisterProducer()

    def uriOnHost(self, host: str) -> str:
        """This WebSocket's URL with another host (see-other-uri)."""
        return "%s://%s:%d%s" % (self.scheme, host, self.port, self.path)


class _MessageWire(_WebSocketWireProtocol):
    """
    Twisted's wire protocol, but a message's pieces go to the application
    as they come (Twisted buffers a whole message, however large, before
    delivering it), and the common frame takes the fast path of the module
    docstring; everything else is Twisted's and C{wsproto}'s.
    """

    #: The start of a frame the fast path waits for the rest of (at most
    #: L{FAST_FRAME} and a header).
    _pending = b""
    #: Once set, every byte goes to C{wsproto}: a frame the fast path does
    #: not take has been handed to it, and it may be in the middle of it.
    _slow = False

    def dataReceived(self, data: bytes) -> None:
        if self._slow:
            return self._viaWsproto(data)
        buf = self._pending + data if self._pending else data
        end, pos = len(buf), 0
        wsconn, app = self._wsconn, self._wsp
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            n = b1 & 0x7F
            if not b1 & 0x80 or n == 127:
                break  # unmasked (refused by wsproto), or a 64-bit length: not ours
            if n < 126:
                head = pos + 2
            elif end - pos >= 4:
                n, head = _fromLE(buf[pos + 2:pos + 4], "big"), pos + 4
            else:
                self._pending = buf[pos:]
                return
            start = head + 4
            if b0 == 0x81 and n <= FAST_FRAME and wsconn.state is _OPEN:
                # FIN, no RSV bit, text, masked (RFC 6455 §5.2): the fast path
                if end - start < n:
                    self._pending = buf[pos:]  # the rest of it is still to come
                    return
                key, stop = buf[head:start], start + n
                mask = (key * ((n >> 2) + 1))[:n]
                pos = stop
                app.textMessage((_fromLE(buf[start:stop], "little")
                                 ^ _fromLE(mask, "little")).to_bytes(n, "little"))
            elif b0 in (0x88, 0x89, 0x8A) and n < 126:
                # a whole control frame (close, ping, pong) goes to wsproto
                stop = start + n
                if end < stop:
                    self._pending = buf[pos:]
                    return
                self._viaWsproto(buf[pos:stop])
                pos = stop
            else:
                break
        else:
            self._pending = buf[pos:]
            return
        # A frame the fast path does not take: wsproto reads from here on.
        self._slow = True
        self._pending = b""
        self._viaWsproto(buf[pos:])

    def _viaWsproto(self, data: bytes) -> None:
        self._wsconn.receive_data(data)
        for event in self._wsconn.events():
            if isinstance(event, TextMessage):
                self._wsp.textChunk(event.data, event.message_finished)
            elif isinstance(event, BytesMessage):
                self._wsp.bytesChunk()
            else:
                _handleEvent(event, self)


class XMPPWebSocketResource(WebSocketResource):
    """
    C{/xmpp-websocket}: the handshake checks of the module docstring, then
    a L{WebSocketClientStream} of C{factory} (a
    L{xmppd.c2s.listeners.C2SFactory} from
    L{xmppd.c2s.listeners.C2SService.transportFactory}).
    """

    log = Logger()

    def __init__(self, factory, origins=()):
        super().__init__(factory)
        #: Lower-case origins allowed to connect; empty allows any.
        self.origins = frozenset(origins)

    def render_GET(self, request):
        upgrade = (request.getHeader(b"upgrade") or b"").lower()
        if upgrade != b"websocket":
            request.setHeader(b"upgrade", b"websocket")
            return self.refuse(request, 426, "this is an XMPP WebSocket endpoint (RFC 7395)")
        offered = {token.strip().lower() for value in
                   request.requestHeaders.getRawHeaders(b"sec-websocket-protocol", [])
                   for token in value.decode("ascii", "replace").split(",")}
        if SUBPROTOCOL not in offered:
            return self.refuse(request, 400, "the WebSocket subprotocol \"xmpp\" is "
                               "required (RFC 7395 section 3.1)")
        origin = request.getHeader(b"origin")
        if self.origins and origin is not None \
                and origin.decode("ascii", "replace").lower() not in self.origins:
            return self.refuse(request, 403, "pages of this origin may not connect")
        handshake = H11Handshake(ConnectionType.SERVER)
        headers = [(key, value) for key, values in request.requestHeaders.getAllRawHeaders()
                   for value in values]
        try:
            handshake.initiate_upgrade_connection(headers, request.path)
        except RemoteProtocolError as e:
            return self.refuse(request, 400, "not a WebSocket handshake: %s" % (e,))
        factory = self.factory
        host = getattr(request, "clientHost", None) or "local"
        if not factory.peers.acquire(host):
            self.log.info("Refusing WebSocket from {host}: too many connections from it",
                          host=host)
            return self.refuse(request, 429, "too many connections from your address")
        if factory.newConnections is not None and not factory.newConnections.tryConsume(1):
            factory.peers.release(host)
            request.setHeader(b"retry-after", b"1")
            return self.refuse(request, 503, "too many new connections, try again later")
        stream = WebSocketClientStream(factory, getattr(request, "viaTLS", False))
        stream.peerKey = host
        connection = WebSocketConnection(stream, request)
        accept = handshake.send(AcceptConnection(subprotocol=SUBPROTOCOL))
        wire = _MessageWire(handshake.connection, serverBootstrap, connection)
        request.channel._protocolUpgradeForWebsockets(wire)
        request.channel.transport.write(accept)
        connection.negotiationFinished()
        return NOT_DONE_YET

    @staticmethod
    def refuse(request, status: int, reason: str) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return reason.encode("utf-8") + b"\n"
