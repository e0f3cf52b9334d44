# -*- test-case-name: tests.test_components -*-
"""
The stream machinery that component streams (XEP-0114, both ends) and
server-to-server streams share: the hardened parser with its limits, a
negotiation deadline, a bound on what is queued for a peer that does not
read, traffic shaping of what the peer sends, header checks, and stream
errors (RFC 6120 §4.9) that end in a clean close.  Client streams
(L{xmppd.c2s.stream}) predate it and keep their own.

Traffic shaping (C{bytesPerSecond}, C{stanzasPerSecond}; the listener's
C{s2s.*} or C{components.*} keys) works as for clients: a peer that sends
faster than its rates has reading paused until its token bucket is out of
debt, so it is slowed, never disconnected, and what it sent is all
processed in order; what it can have in flight is what one read brings
plus the kernel's buffers.  The cost is an addition per stanza and a look
at the buckets per read.  Reading is paused for several reasons at once (shaping, a
sender's stanza still being processed); it resumes once none is left
(L{pauseReading}, L{resumeReading}).
"""

from __future__ import annotations

import dataclasses

from twisted.internet import protocol
from twisted.logger import Logger
from twisted.words.protocols.jabber.xmlstream import NS_STREAMS
from twisted.words.xish import domish

from xmppd.stream.closing import CLOSE_TIMEOUT, ClosedWaiters
from xmppd.stream.elements import NS_CLIENT, STANZA_NAMES, serialize, streamErrorElement
from xmppd.stream.limits import SendQueueWatch, rateBucket
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
    #: Bytes and stanzas read per second on one stream before reading
    #: pauses (traffic shaping); 0: no limit (the client side of a component).
    bytesPerSecond: int = 0
    stanzasPerSecond: int = 0


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
        #: Why reading is paused (C{"shaping"}, C{"backlog"}); empty: reading.
        self.readPauses: set[str] = set()
        self.byteBucket = rateBucket(limits.bytesPerSecond, clock)
        self.stanzaBucket = rateBucket(limits.stanzasPerSecond, clock)
        #: Whether this stream was shaped at least once (logged once).
        self.shaped = False
        #: Stanzas parsed from the read being handled (see L{shapeRead}).
        self.stanzasRead = 0

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
            return
        if not self.closing:
            self.shapeRead(len(data))

    # -- traffic shaping -------------------------------------------------

    def shapeRead(self, size: int) -> None:
        """
        After each read: take its C{size} bytes and the stanzas it held
        (counted by L{onElement}, one addition each) from the buckets, and
        pause reading while they are in debt.
        """
        delay = 0.0
        if self.byteBucket is not None:
            delay = self.byteBucket.consume(size)
        if self.stanzasRead:
            if self.stanzaBucket is not None:
                delay = max(delay, self.stanzaBucket.consume(self.stanzasRead))
            self.stanzasRead = 0
        if delay > 0:
            self.shape(delay)

    def shape(self, delay: float) -> None:
        """Stop reading for C{delay} seconds (the debt of a token bucket); nothing is dropped."""
        if delay <= 0 or "shaping" in self.readPauses or self.closing:
            return
        if not self.shaped:
            self.shaped = True
            self.log.info("Slowing {stream} from {peer}: it sends faster than "
                          "{bytes} bytes or {stanzas} stanzas a second (reading pauses)",
                          stream=self.describeStream(), peer=self.peerAddress,
                          bytes=self.limits.bytesPerSecond or "any",
                          stanzas=self.limits.stanzasPerSecond or "any",
                          event="abuse", limit="traffic_shaping")
        self.rejected("traffic_shaping")
        self.pauseReading("shaping")
        self.timers["shape"] = self.clock.callLater(delay, self.endShaping)

    def endShaping(self) -> None:
        """
        The first debt is paid; what was read in the same chunk after it
        may have added more, so reading waits until every bucket is out of
        debt (one look at each, not one timer per stanza).
        """
        self.timers.pop("shape", None)
        delay = max(bucket.consume(0) if bucket is not None else 0.0
                    for bucket in (self.byteBucket, self.stanzaBucket))
        if delay > 0.001 and not self.closing:
            self.timers["shape"] = self.clock.callLater(delay, self.endShaping)
            return
        self.resumeReading("shaping")

    def rejected(self, limit: str) -> None:
        """Abuse caught by C{limit}, for the metrics of the stream's service (C{xmppd_rejected_total})."""

    def describeStream(self) -> str:
        """The stream, for a log line."""
        return "component stream %s" % (self.domain,)

    def pauseReading(self, reason: str) -> None:
        """Stop reading from the peer until L{resumeReading} for every reason given."""
        if self.closing:
            return
        if not self.readPauses:
            self.transport.pauseProducing()
        self.readPauses.add(reason)

    def resumeReading(self, reason: str) -> None:
        """C{reason} no longer holds reading back; read again if nothing else does."""
        if reason not in self.readPauses:
            return
        self.readPauses.discard(reason)
        if not self.readPauses and not self.closing:
            self.transport.resumeProducing()

    def onSendQueueOverflow(self) -> None:
        self.rejected("send_queue_limit")
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
        self.stanzasRead += 1
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
