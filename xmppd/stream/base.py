# -*- test-case-name: tests.test_components -*-
"""
The stream machinery that component streams (XEP-0114, both ends) and
server-to-server streams share: the hardened parser with its limits, a
negotiation deadline, a bound on what is queued for a peer that does not
read, header checks, and stream errors (RFC 6120 §4.9) that end in a
clean close.  Client streams (L{xmppd.c2s.stream}) predate it and keep their own.
"""

from __future__ import annotations

import dataclasses

from twisted.internet import protocol
from twisted.logger import Logger
from twisted.words.protocols.jabber.xmlstream import NS_STREAMS
from twisted.words.xish import domish

from xmppd.stream.closing import CLOSE_TIMEOUT, ClosedWaiters
from xmppd.stream.elements import NS_CLIENT, STANZA_NAMES, serialize, streamErrorElement
from xmppd.stream.limits import SendQueueWatch
from xmppd.stream.xmlparser import HardenedElementStream

NS_COMPONENT = "jabber:component:accept"


def toClientNamespace(stanza: domish.Element, namespace: str = NS_COMPONENT) -> None:
    """
    Rewrite, in place, every element of C{stanza} in the stream's
    C{namespace} (the stanza and the children that inherit it, like
    C{<body/>}) into C{jabber:client}, the one namespace stanzas have inside
    the server.
    """
    pending = [stanza]
    while pending:
        element = pending.pop()
        if element.uri == namespace:
            element.uri = NS_CLIENT
        if element.defaultUri == namespace:
            element.defaultUri = NS_CLIENT
        pending.extend(child for child in element.children
                       if isinstance(child, domish.Element))


@dataclasses.dataclass(frozen=True)
class StreamLimits:
    """What one stream may cost; shared by all streams of a listener."""

    maxStanzaSize: int = 1048576
    #: Before the handshake only a header and a digest are expected.
    maxStanzaSizeUnauthenticated: int = 10240
    maxDepth: int = 48
    negotiationTimeout: float = 60.0
    sendQueueLimit: int = 16777216


class StreamBase(ClosedWaiters, protocol.Protocol):
    """
    One XEP-0114 stream, either side: the hardened parser, a negotiation
    deadline, a bound on what is queued for a peer that does not read, and
    stream errors (RFC 6120 §4.9) that end in a clean close.  Nothing the
    peer sends can raise out of C{dataReceived}.  Subclasses provide the
    header and handshake of their side and C{onStanza}.
    """

    log = Logger()
    #: How this kind of stream writes an element: the client form (stanzas
    #: without a namespace of their own, C{stream:} prefixed); s2s adds the
    #: C{db:} prefix its header declares (XEP-0220 §2).
    serialize = staticmethod(serialize)
    #: The condition of the stream error we sent, if any.
    errorCondition = None

    def __init__(self, domain: str | None, clock, limits: StreamLimits):
        self.domain = domain
        self.clock = clock
        self.limits = limits
        self.streamId: str | None = None
        self.parser: HardenedElementStream | None = None
        self.headerSent = False
        self.authenticated = False
        self.closing = False
        self.peerAddress = "local"
        self.timers: dict[str, object] = {}

    # -- connection ------------------------------------------------------

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        host = getattr(peer, "host", None)
        port = getattr(peer, "port", None)
        if host:
            self.peerAddress = "[%s]:%s" % (host, port) if ":" in host else "%s:%s" % (host, port)
        setNoDelay = getattr(self.transport, "setTcpNoDelay", None)
        if setNoDelay is not None:
            setNoDelay(True)
        self.sendQueue = SendQueueWatch(self.limits.sendQueueLimit, self.onSendQueueOverflow)
        self.transport.registerProducer(self.sendQueue, True)
        parser = HardenedElementStream()
        parser.maxStanzaSize = self.limits.maxStanzaSizeUnauthenticated
        parser.maxDepth = self.limits.maxDepth
        parser.DocumentStartEvent = self.onDocumentStart
        parser.ElementEvent = self.onElement
        parser.DocumentEndEvent = self.closeStream
        self.parser = parser
        self.timers["negotiation"] = self.clock.callLater(
            self.limits.negotiationTimeout, self.onNegotiationTimeout)

    def connectionLost(self, reason) -> None:
        self.closing = True
        self.parser = None
        for timer in self.timers.values():
            if timer.active():
                timer.cancel()
        self.timers.clear()
        self.streamClosing()
        self.notifyClosed()

    def dataReceived(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            self.parser.parse(data)
        except domish.ParserError as e:
            self.streamError(getattr(e, "condition", "not-well-formed"), str(e) or None)
        except Exception:
            # A bug of ours costs this peer its stream, nobody else.
            self.log.failure("Unexpected error on component stream {domain} from {peer}",
                             domain=self.domain, peer=self.peerAddress)
            self.streamError("internal-server-error")

    def onSendQueueOverflow(self) -> None:
        self.log.warn("Dropping component stream {domain} ({peer}): over {limit} bytes "
                      "queued unread", domain=self.domain, peer=self.peerAddress,
                      limit=self.limits.sendQueueLimit)
        self.closing = True
        self.streamClosing()
        self.transport.abortConnection()

    def onNegotiationTimeout(self) -> None:
        self.streamError("connection-timeout", "the handshake took too long")

    def accepted(self) -> None:
        """The handshake succeeded: stanzas may flow, at their full size."""
        self.authenticated = True
        self.parser.maxStanzaSize = self.limits.maxStanzaSize
        timer = self.timers.pop("negotiation", None)
        if timer is not None and timer.active():
            timer.cancel()

    # -- output ----------------------------------------------------------

    def send(self, obj) -> None:
        """Write an element (stanzas are C{jabber:client} inside) or raw text."""
        if self.closing:
            return
        text = self.serialize(obj) if isinstance(obj, domish.Element) else obj
        data = text.encode("utf-8")
        self.transport.write(data)
        self.sendQueue.written(len(data))

    def writeHeader(self, attributes: str) -> None:
        self.transport.write(
            ("<?xml version='1.0'?><stream:stream xmlns:stream='%s' xmlns='%s'%s>"
             % (NS_STREAMS, NS_COMPONENT, attributes)).encode("utf-8"))
        self.headerSent = True

    def sendHeader(self) -> None:
        raise NotImplementedError()

    def streamError(self, condition: str, text: str | None = None) -> None:
        """Send a stream error (RFC 6120 §4.9) and close the stream."""
        if self.closing:
            return
        if not self.headerSent:
            # RFC 6120 §4.9.1.2: the header comes first even for an error.
            self.sendHeader()
        self.log.debug("Stream error {condition} for component {domain} ({peer}): {text}",
                       condition=condition, domain=self.domain, peer=self.peerAddress,
                       text=text)
        self.errorCondition = condition
        self.send(streamErrorElement(condition, text))
        self.closeStream()

    def closeStream(self) -> None:
        """Send the footer and close; abort if the peer does not read it."""
        if self.closing:
            return
        self.send("</stream:stream>")
        self.closing = True
        self.streamClosing()
        if self.parser is not None:
            self.parser.halt()
        # The transport closes only once no producer is registered.
        self.transport.unregisterProducer()
        self.transport.loseConnection()
        self.timers["close"] = self.clock.callLater(CLOSE_TIMEOUT, self.transport.abortConnection)

    def streamClosing(self) -> None:
        """The stream can carry no more stanzas (called again when the connection is gone)."""

    # -- input -------------------------------------------------------------

    def onDocumentStart(self, root: domish.Element) -> None:
        raise NotImplementedError()

    #: The namespace a peer's stream header must declare, and whether it
    #: must say version 1.0 (RFC 6120 §4.7.5; XEP-0114 streams have none).
    streamNamespace = NS_COMPONENT
    requireVersion = False

    def checkHeader(self, root: domish.Element) -> bool:
        """RFC 6120 §4.8: the namespaces (and version) of a peer's header; False after a stream error."""
        if root.uri != NS_STREAMS:
            self.streamError("invalid-namespace")
        elif root.name != "stream":
            self.streamError("bad-format", "the root element must be <stream:stream>")
        elif root.defaultUri != self.streamNamespace:
            self.streamError("invalid-namespace", "expected %s" % (self.streamNamespace,))
        elif self.requireVersion and (root.getAttribute("version") or "").split(".")[0] != "1":
            # Dialback-only servers of before RFC 3920 cannot do TLS.
            self.streamError("unsupported-version", "version 1.0 is required")
        else:
            return True
        return False

    def onElement(self, element: domish.Element) -> None:
        if self.closing:
            return
        if (element.uri, element.name) == (NS_STREAMS, "error"):
            self.onPeerStreamError(element)
            self.closeStream()
        elif not self.authenticated:
            if (element.uri, element.name) == (NS_COMPONENT, "handshake"):
                self.onHandshake(element)
            else:
                # XEP-0114 §3: nothing but the handshake before the handshake.
                self.streamError("not-authorized")
        elif element.name in STANZA_NAMES:
            if element.uri != NS_COMPONENT:
                self.streamError("invalid-namespace",
                                 "stanzas must be in jabber:component:accept")
                return
            toClientNamespace(element)
            self.onStanza(element)
        else:
            self.streamError("unsupported-stanza-type")

    def onPeerStreamError(self, error: domish.Element) -> None:
        conditions = [child.name for child in error.elements() if child.name != "text"]
        self.log.info("Component stream {domain} ({peer}) closed by a stream error: "
                      "{condition}", domain=self.domain, peer=self.peerAddress,
                      condition=conditions[0] if conditions else "(none)")

    def onHandshake(self, element: domish.Element) -> None:
        raise NotImplementedError()

    def onStanza(self, stanza: domish.Element) -> None:
        raise NotImplementedError()
