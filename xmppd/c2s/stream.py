# -*- test-case-name: tests.test_c2s -*-
"""
Client-to-server streams (RFC 6120 §4-§8, XEP-0368 direct TLS).

A L{ClientStream} is one client connection: the hardened parser (DESIGN §4),
stream header checks, negotiation through the initializers of
L{xmppd.c2s.negotiation}, and, once a resource is bound, stamping C{from} on
every stanza before it goes to the router.  It is a plain Twisted
C{Protocol} rather than Twisted's C{XmlStream}: the receiving side needs none
of the initiating-side machinery, and top-level elements are dispatched with
one dict lookup instead of XPath observers.  The listeners that make
streams, and admit or refuse connections, are L{xmppd.c2s.listeners}.

Every way a stream can go wrong ends the same way: L{ClientStream.streamError}
sends the header if needed, the C{<stream:error/>} and the footer, then closes
the connection (aborting it if the peer does not read).  Nothing a client
sends can raise out of C{dataReceived}, so one broken client never disturbs
another.

Extension points for features that live at the stream level (stream
management, XEP-0198, in L{xmppd.features.sm}):

  - the hook C{"c2s/nonza"} (L{OutgoingEvent} with no recipient, C{fire}): a
    top-level element that is neither a stanza nor a negotiation step, at any
    point of the stream (C{event.session} is C{None} before bind); return
    C{True} when it was yours, or the stream closes as RFC 6120 says;
  - the slot C{ClientStream.sm}, C{None} unless a feature puts an object
    there (so streams that do not use it cost nothing), which the stream
    tells about every stanza it has received and handled
    (C{stanzaHandled(stanza)}), every stanza it sends, serialized
    (C{stanzaSent(data)}), a connection that broke while a session was bound
    (C{streamLost()}: true when the object keeps the session for later), and
    the end of the session, after it is unbound (C{sessionEnded(session)});
  - the slot C{ClientStream.csi}, C{None} unless a feature puts an object
    there (client state indication, XEP-0352, in L{xmppd.features.csi}):
    every object the stream is about to send is first given to its
    C{hold(obj)}, which returns C{True} when it keeps it for later (and
    sends it through the stream later, with the slot cleared meanwhile);
    its C{release()}, which sends what it kept and clears the slot, is
    called when the connection is lost and when the session leaves or
    ends, before stream management hears of it;
  - L{ClientStream.attachSession} and L{ClientStream.releaseSession}, which
    move a bound session from one stream to another without a new bind;
  - the hook C{"c2s/shutdown"} (C{notify}, no payload): the listeners are
    stopping and every stream was told C{system-shutdown}; sessions kept
    without a stream end now;
  - the hook C{"c2s/draining"} (C{notify}, no payload): the node sends its
    clients to another node (L{xmppd.c2s.drain}); sessions kept without a
    stream end now, since their clients will not come back here.

Implements: RFC 6120, XEP-0368
"""

from __future__ import annotations

import hashlib
import re

from cryptography.hazmat.primitives import serialization

from twisted.internet import defer, protocol
from twisted.logger import Logger
from twisted.words.protocols.jabber.xmlstream import NS_STREAMS
from twisted.words.xish import domish

from xmppd.stream.closing import CLOSE_TIMEOUT, ClosedWaiters
from xmppd.stream.elements import NS_CLIENT, STANZA_NAMES, serialize, streamErrorElement
from xmppd.stream.limits import SendQueueWatch
from xmppd.core.events import FeaturesEvent, OutgoingEvent, UnsentEvent
from xmppd.core.jid import InvalidJID, parseJID, prepDomainpart
from xmppd.core.ordering import Backlog, unfinished
from xmppd.c2s.negotiation import (BindInitializer, ChannelBindingInitializer,
                                   SASLInitializer, SessionInitializer, StartTLSInitializer)
from xmppd.c2s.sasl import SASLFailure
from xmppd.c2s.sasl2 import SASL2Initializer
from xmppd.core.stanzas import StanzaText, errorReply, iqProblem
from xmppd.storage.interfaces import DISABLED
from xmppd.stream.xmlparser import HardenedElementStream

NS_XML = "http://www.w3.org/XML/1998/namespace"
VERSION = re.compile(r"^(\d{1,9})\.(\d{1,9})$")


class ClientStream(ClosedWaiters, protocol.Protocol):
    """One client connection; see the module docstring."""

    log = Logger()

    #: The traffic log and this stream's serial in it, when log.verbose is on.
    traffic = None
    serial = 0
    #: Stream management's state once a client enables it (see the module
    #: docstring); a class attribute so that streams without it pay nothing.
    sm = None
    #: What holds back stanzas while the client says it is inactive (see the
    #: module docstring); a class attribute so active streams pay one test.
    csi = None
    #: Stanzas the transport never put on the wire when the connection
    #: went (a BOSH session's outbox): the session hands them on as it ends.
    unsent = None
    #: The condition of the stream error we sent, if any.
    errorCondition = None
    #: What the client sent while an earlier element was still being
    #: processed (RFC 6120 §10.1, L{xmppd.core.ordering}); None, the class
    #: attribute, whenever nothing waits.
    backlog = None
    #: Whether stream management stopped reading: too many of the client's
    #: stanzas are processed but not yet safe (L{holdReading}).
    ackPaused = False

    # Settings every stream of a listener shares, read from the factory
    # rather than copied into each stream: per-session memory is a feature.
    limits = property(lambda self: self.factory.limits)
    tlsOptions = property(lambda self: self.factory.tlsOptions)
    plainWithoutTLS = property(lambda self: self.factory.plainWithoutTLS)
    #: Authenticated with SASL ANONYMOUS (XEP-0175): the account exists only
    #: while this session does, and nothing is stored for it.
    anonymous = False
    #: The SASL initializer whose attempt is under way, of either profile
    #: (RFC 6120 or XEP-0388): one at a time.
    authenticating = None
    #: Failed authentication attempts on this connection, both profiles.
    authFailureCount = 0
    #: The XEP-0388 C{<user-agent/>} the client authenticated with
    #: (L{xmppd.core.events.UserAgent}), for FAST and Bind 2; None otherwise.
    userAgent = None
    #: While a SASL2 C{<success/>} is being prepared, what stands in for the
    #: stream as its session's C{stream} (L{xmppd.c2s.sasl2.HeldOutput}).
    heldOutput = None

    @property
    def host(self):
        """The L{xmppd.config.hosts.HostSettings} of the domain the client named, or C{None}."""
        return self.factory.hosts.get(self.domain)

    @property
    def requireTLS(self) -> bool:
        """No authentication before TLS: the domain's setting (C{c2s.require_tls} by default)."""
        host = self.factory.hosts.get(self.domain)
        return self.factory.requireTLS if host is None else host.requireTLS

    def __init__(self, factory, secure: bool):
        """C{factory} is the L{xmppd.c2s.listeners.C2SFactory} that accepted the connection."""
        self.factory = factory
        self.secure = secure
        self.domain: str | None = None
        self.username: str | None = None
        self.session = None
        self.jid = None
        self.streamId = None
        self.parser = None
        self.closing = False
        if factory.traffic is not None:
            self.traffic = factory.traffic
            self.serial = factory.traffic.newSerial()
        self.peerKey = None
        self.headerSent = False
        self.peerAddress = "local"
        #: When the client last sent anything (the idle-ping feature reads it).
        self.lastReceived = factory.clock.seconds()
        self.timers: dict[object, object] = {}
        self.readPaused = False
        self.byteBucket = factory.makeBucket(self.limits.bytes_per_second)
        self.stanzaBucket = factory.makeBucket(self.limits.stanzas_per_second)
        #: One instance per negotiation step until a resource is bound, then
        #: None (see L{initializer}).
        self.initializers = [init(self) for init in INITIALIZERS]

    # -- connection ------------------------------------------------------

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        self.peerAddress = getattr(peer, "host", None) or "local"
        setNoDelay = getattr(self.transport, "setTcpNoDelay", None)
        if setNoDelay is not None:
            # Stanzas are small and interactive: without this, Nagle holds
            # our writes for the peer's delayed ACK (measured: 61 ms per
            # login instead of 17 ms over TLS).
            setNoDelay(True)
        self.factory.streams.add(self)
        self.sendQueue = SendQueueWatch(self.limits.send_queue_limit, self.onSendQueueOverflow)
        self.transport.registerProducer(self.sendQueue, True)
        self.newParser(self.limits.max_stanza_size_unauthenticated)
        self.timers["negotiation"] = self.factory.clock.callLater(
            self.limits.negotiation_timeout, self.onNegotiationTimeout)

    def connectionLost(self, reason) -> None:
        # The connection broke, rather than being closed: the client sent no
        # footer and we sent no stream error, except that a client we found
        # dead (connection-timeout, RFC 6120 §4.9.3.4) broke too.
        broken = not self.closing or self.errorCondition == "connection-timeout"
        self.closing = True
        self.parser = None
        for timer in self.timers.values():
            if timer.active():
                timer.cancel()
        self.timers.clear()
        self.factory.connectionClosed(self)
        self.factory.streams.discard(self)
        if self.backlog is not None:
            # What the client sent before the connection went is still
            # processed, in order, by the session that sent it; the
            # session ends after it (RFC 6120 §10.1).
            self.backlog.end(_Lost(broken))
            return
        self.sessionLost(broken)

    def sessionLost(self, broken: bool) -> None:
        """The connection is gone and nothing it sent waits any more."""
        if self.backlog is not None:
            self.backlog.clear()
            self.backlog = None
        if self.csi is not None:
            self.csi.release()
        if broken and self.session is not None and self.sm is not None \
                and self.sm.streamLost():
            self.releaseSession()
        self.endSession()
        self.notifyClosed()

    def callLater(self, delay: float, f, *args):
        """Run C{f} later unless the connection is gone by then."""
        if delay <= 0:
            f(*args)
            return
        key = object()

        def run():
            del self.timers[key]
            if not self.closing:
                f(*args)
        self.timers[key] = self.factory.clock.callLater(delay, run)

    def newParser(self, maxStanzaSize: int) -> None:
        parser = HardenedElementStream()
        parser.maxStanzaSize = maxStanzaSize
        parser.maxDepth = self.limits.max_depth
        parser.DocumentStartEvent = self.onDocumentStart
        parser.ElementEvent = self.onElement
        parser.DocumentEndEvent = self.onDocumentEnd
        old, self.parser = self.parser, parser
        if old is not None:
            # The old parser may still be inside Parse() on this very chunk;
            # what follows the restart point in it must never be dispatched
            # (RFC 6120 §5.4.3.3: plaintext after <starttls/> is discarded).
            old.halt()

    def dataReceived(self, data: bytes) -> None:
        if self.closing:
            return
        self.lastReceived = self.factory.clock.seconds()
        try:
            self.parser.parse(data)
        except domish.ParserError as e:
            limit = getattr(e, "limit", None)
            if limit is not None:
                self.factory.metrics.reject(limit)
                self.log.info("Closing the stream of {peer} ({account}): {limit}",
                              peer=self.peerAddress, account=self.accountText(), limit=limit,
                              event="abuse")
            self.streamError(getattr(e, "condition", "not-well-formed"), str(e) or None)
            return
        except Exception:
            # A bug of ours must cost this client its stream, nobody else.
            self.log.failure("Unexpected error on stream from {peer}", peer=self.peerAddress)
            self.streamError("internal-server-error")
            return
        if self.byteBucket is not None and not self.closing:
            self.shape(self.byteBucket.consume(len(data)))

    def shape(self, delay: float) -> None:
        """Traffic shaping: stop reading for C{delay} seconds; nothing is dropped."""
        if delay <= 0 or self.readPaused or self.closing:
            return
        self.factory.metrics.reject("traffic_shaping")
        self.readPaused = True
        self.transport.pauseProducing()
        self.timers["shape"] = self.factory.clock.callLater(delay, self.resumeReading)

    def resumeReading(self) -> None:
        self.readPaused = False
        if not self.closing and self.backlog is None and not self.ackPaused:
            self.transport.resumeProducing()

    def holdReading(self) -> None:
        """
        Stop reading until L{releaseReading}: stream management has many of
        the client's stanzas processed but not yet safe (forwards to another
        node of a cluster whose script has not answered), and a client that
        outruns Redis waits for it instead of piling up unconfirmed
        stanzas until C{[sm] max_unacked} closes its stream.
        """
        if not self.ackPaused and not self.closing:
            self.ackPaused = True
            self.transport.pauseProducing()

    def releaseReading(self) -> None:
        """Read again after L{holdReading}, unless something else still pauses."""
        if self.ackPaused:
            self.ackPaused = False
            if not self.closing and not self.readPaused and self.backlog is None:
                self.transport.resumeProducing()

    def onSendQueueOverflow(self) -> None:
        self.factory.metrics.reject("send_queue_limit")
        self.log.info("Dropping {peer} ({account}): over {size} bytes queued unread",
                      peer=self.peerAddress, account=self.accountText(),
                      size=self.limits.send_queue_limit, event="abuse",
                      limit="send_queue_limit")
        self.closing = True
        self.transport.abortConnection()

    def accountText(self) -> str:
        """The account of this stream for a log line: its JID, or C{"-"} before login."""
        if self.jid is not None:
            return self.jid.full()
        if self.username is not None:
            return "%s@%s" % (self.username, self.domain)
        return "-"

    def onNegotiationTimeout(self) -> None:
        self.streamError("connection-timeout", "negotiation took too long")

    # -- output ----------------------------------------------------------

    def send(self, obj) -> None:
        if self.csi is not None and self.csi.hold(obj):
            return
        sm = self.sm
        if isinstance(obj, domish.Element):
            if obj.name in STANZA_NAMES:
                self.factory.metrics.stanzasOut[obj.name] += 1
                if sm is not None:
                    # Counted and kept until the client acknowledges it
                    # (XEP-0198 §4), even when this stream can no longer write
                    # it: the session's end then re-routes it.
                    text = serialize(obj)
                    if not self.closing:
                        self.write(obj, text)
                    sm.stanzaSent(text)
                    return
            if self.closing:
                return
            self.write(obj, serialize(obj))
        elif obj is not None:
            if type(obj) is StanzaText:
                # Serialized once for many (MUC): "<message", "<presence", "<iq".
                kind = _KIND_OF_TEXT.get(obj[1:2])
                if kind is not None:
                    self.factory.metrics.stanzasOut[kind] += 1
                if sm is not None:
                    if not self.closing:
                        self.write(obj, obj)
                    sm.stanzaSent(obj)
                    return
                if self.closing:
                    return
            self.write(obj, obj)

    def write(self, obj, text: str) -> None:
        if self.traffic is not None:
            self.traffic.outgoing(self.serial, self.peerAddress, obj, text)
        data = text.encode("utf-8")
        self.transport.write(data)
        self.sendQueue.written(len(data))

    def sendHeader(self) -> None:
        self.streamId = self.factory.newStreamId()
        attrs = " id='%s'" % self.streamId
        if self.domain:
            attrs += " from='%s'" % self.domain
        self.transport.write(
            ("<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='%s'"
             " version='1.0' xml:lang='en'%s>" % (NS_CLIENT, NS_STREAMS, attrs)
             ).encode("utf-8"))
        self.headerSent = True

    def sendFeatures(self) -> None:
        """
        The C{<stream:features/>} for the stream's state, serialized once
        per state and listener (L{featuresKey}): every login asks for them
        once or twice, and building them (the initializers' offers, the
        C{"c2s/features"} and C{"sasl2/features"} hooks) cost more than a
        tenth of a millisecond each time.
        """
        cache = self.factory.featuresCache
        key = self.featuresKey()
        text = cache.get(key)
        if text is None:
            features = domish.Element((NS_STREAMS, "features"))
            for initializer in self.initializers or ():
                feature = initializer.feature()
                if feature is not None:
                    features.addChild(feature)
            event = FeaturesEvent(self, features)
            self.factory.hooks.notify("c2s/features", event, self.domain)
            text = serialize(features)
            if event.cacheable:
                if len(cache) >= FEATURES_CACHE_SIZE:
                    cache.clear()
                cache[key] = text
        self.send(text)

    def featuresKey(self) -> tuple:
        """
        Everything the features offered on this stream depend on besides
        the listener's configuration (the cache is the listener's, emptied
        when it is configured again): the domain, TLS and what it can bind
        to, the negotiation state, and the callbacks of the hooks that add
        features (a new tuple whenever one is added or removed).  A hook
        whose offer depends on anything else says so (C{event.cacheable}).
        """
        hooks, domain = self.factory.hooks, self.domain
        return (domain, self.secure, tuple(self.channelBindings()) if self.secure else (),
                self.username is None, self.anonymous, self.session is None,
                self.initializers is None, self.sm is None,
                hooks.callbacks("c2s/features", domain),
                hooks.callbacks("sasl2/features", domain))

    def sendError(self, stanza: domish.Element, condition: str, text: str | None = None) -> None:
        """Answer C{stanza} on this stream with a stanza error (if it may be answered)."""
        reply = errorReply(stanza, condition, text)
        if reply is not None:
            if reply.getAttribute("to") is None and self.jid is not None:
                reply["to"] = self.jid.full()
            self.send(reply)

    def streamError(self, condition: str, text: str | None = None,
                    appCondition: domish.Element | None = None,
                    conditionText: str | None = None) -> None:
        """Send a stream error (RFC 6120 §4.9) and close the stream."""
        if self.closing:
            return
        if not self.headerSent:
            self.sendHeader()
        self.log.debug("Stream error {condition} for {peer}: {text}",
                       condition=condition, peer=self.peerAddress, text=text)
        self.errorCondition = condition
        if self.backlog is not None:
            # Nothing the client sent after the error's cause is processed.
            self.backlog.dropQueued()
        self.send(streamErrorElement(condition, text, appCondition, conditionText))
        self.closeStream()

    def seeOtherHost(self, address: str) -> None:
        """
        Send the client to C{address}, C{"host:port"} (RFC 6120 §4.9.3.19:
        the client should reconnect there); the node is draining
        (L{xmppd.c2s.drain}).
        """
        self.streamError("see-other-host", "this server is draining; connect to " + address,
                         conditionText=address)

    #: What ends the stream on the wire (a WebSocket sends C{<close/>} instead).
    footer = "</stream:stream>"

    def closeStream(self) -> None:
        """Send the footer and close; abort if the peer does not read it."""
        if self.closing:
            return
        self.send(self.footer)
        self.closing = True
        if self.parser is not None:
            # Nothing after the error or the footer is ours to act on; stop
            # parsing the rest of the read now rather than discard it slowly.
            self.parser.halt()
        # A transport does not close while a producer is registered (TLS
        # does not even send its close_notify), so the send queue watch must
        # go first, or every close would wait for the abort below.
        self.transport.unregisterProducer()
        self.transport.loseConnection()
        self.timers["close"] = self.factory.clock.callLater(
            CLOSE_TIMEOUT, self.transport.abortConnection)

    # -- stream header ---------------------------------------------------

    def onDocumentStart(self, root: domish.Element) -> None:
        if self.traffic is not None:
            self.traffic.header(self.serial, self.peerAddress, root)
        try:
            requested = prepDomainpart(root.getAttribute("to") or "")
        except InvalidJID:
            requested = None
        if self.domain is None and requested in self.factory.domains:
            self.domain = requested
        if root.uri != NS_STREAMS:
            return self.streamError("invalid-namespace")
        if root.name != "stream":
            return self.streamError("bad-format", "the root element must be <stream:stream>")
        if root.defaultUri != NS_CLIENT:
            return self.streamError("invalid-namespace", "expected jabber:client")
        version = VERSION.match(root.getAttribute("version") or "")
        if version is None or int(version.group(1)) != 1:
            return self.streamError("unsupported-version", "version 1.0 is required")
        if not requested or requested != self.domain:
            return self.streamError("host-unknown")
        if self.factory.redirect is not None:
            # A draining node takes no new client (L{xmppd.c2s.drain}).
            return self.seeOtherHost(self.factory.redirect)
        self.sendHeader()
        self.sendFeatures()

    def onDocumentEnd(self) -> None:
        # The client closed its stream (RFC 6120 §4.4): close ours too,
        # once what it sent before is processed.
        if self.backlog is not None:
            self.backlog.end(_END)
            return
        self.closeStream()

    def restart(self) -> None:
        """Restart the stream after TLS or SASL (RFC 6120 §4.3.3)."""
        size = (self.limits.max_stanza_size if self.username is not None
                else self.limits.max_stanza_size_unauthenticated)
        self.headerSent = False
        self.newParser(size)

    # -- elements ----------------------------------------------------------

    def onElement(self, element: domish.Element) -> None:
        if self.closing:
            return
        if self.traffic is not None:
            self.traffic.incoming(self.serial, self.peerAddress, element)
        if self.stanzaBucket is not None:
            self.shape(self.stanzaBucket.consume(1))
        backlog = self.backlog
        if backlog is not None:
            if not backlog.paused:
                # Stop reading until what waits is processed (the bound).
                backlog.paused = True
                self.transport.pauseProducing()
            backlog.add(element)
            return
        self.handleElement(element)
        # RFC 6120 §10.1: while something still holds this element, what
        # the client sends next waits (one dict look-up when nothing does).
        pending = unfinished(element)
        if pending is not None:
            self.waitFor(element, pending)

    def waitFor(self, element: domish.Element, pending: list) -> None:
        """Queue what comes until C{element} is processed."""
        self.backlog = Backlog(self.handleQueued, self.backlogDrained, self.factory.clock,
                               self.onBacklogOverflow,
                               description="the stream of %s" % (self.peerAddress,))
        self.backlog.wait(element, pending)

    def handleQueued(self, element) -> None:
        """An element that waited in the backlog, or the end it saw."""
        if element is _END:
            self.closeStream()
        elif type(element) is _Lost:
            self.sessionLost(element.broken)
        elif self.session is not None or not self.closing:
            self.handleElement(element)

    def backlogDrained(self) -> None:
        backlog, self.backlog = self.backlog, None
        if backlog is not None and backlog.paused and not self.closing \
                and not self.readPaused and not self.ackPaused:
            self.transport.resumeProducing()

    def onBacklogOverflow(self) -> None:
        self.streamError("policy-violation", "too many stanzas sent while one is processed")

    def handleElement(self, element: domish.Element) -> None:
        """One top-level element from the client, in the order they came."""
        key = (element.uri, element.name)
        if self.session is not None:
            if element.uri == NS_CLIENT and element.name in STANZA_NAMES:
                self.onStanza(element)
                if self.sm is not None:
                    # Routing is done, so whoever took the stanza has said
                    # what its safety still waits for.
                    self.sm.stanzaHandled(element)
                return
        else:
            entry = NEGOTIATION_ELEMENTS.get(key)
            if entry is not None:
                getattr(self.initializer(entry[0]), entry[1])(element)
                return
            if element.uri == NS_CLIENT and element.name == "iq":
                if self.username and self.onNegotiationIQ(element):
                    return
                if self.username is None and self.unlessTaken(self.factory.hooks.fire(
                        "c2s/unauthenticated-iq", OutgoingEvent(self, None, element, None),
                        self.domain), self.refuseElement, element):
                    return
        if key == (NS_STREAMS, "error"):
            self.log.info("{peer} sent a stream error", peer=self.peerAddress)
            self.closeStream()
        elif element.uri != NS_CLIENT and self.unlessTaken(self.factory.hooks.fire(
                "c2s/nonza", OutgoingEvent(self, self.session, element, None), self.domain),
                self.refuseElement, element):
            return
        else:
            self.refuseElement(element)

    @staticmethod
    def unlessTaken(taken, otherwise, element) -> bool:
        """
        Whether a hook took C{element}.  A hook chain that waited (a
        Deferred, see L{xmppd.core.hooks}) counts as taken now, and
        C{otherwise(element)} runs once it is over if nobody took it.
        """
        if taken and isinstance(taken, defer.Deferred):
            taken.addCallback(lambda result: None if result else otherwise(element))
        return bool(taken)

    def refuseElement(self, element: domish.Element) -> None:
        """The stream error for a top-level element nobody takes."""
        if self.session is None:
            # RFC 6120 §7.1 and §4.9.3.12: nothing but negotiation before bind.
            self.streamError("not-authorized")
        elif element.name in STANZA_NAMES:
            self.streamError("invalid-namespace", "stanzas must be in jabber:client")
        else:
            self.streamError("unsupported-stanza-type")

    def onNegotiationIQ(self, iq: domish.Element) -> bool:
        """Bind or legacy session on an authenticated, unbound stream."""
        payload = firstChild(iq)
        if payload is None:
            return False
        entry = IQ_PAYLOADS.get((payload.uri, payload.name))
        if entry is None:
            return False
        # RFC 6120 §8.2.3 holds for negotiation IQs too: a bind without an
        # id could not be matched to its result.
        if self.validIQ(iq):
            getattr(self.initializer(entry[0]), entry[1])(iq, payload)
        return True

    def initializer(self, index: int):
        """
        The negotiation step C{index}.  After bind only the stateless ones
        (a second bind, the legacy session IQ) can be reached, and they are
        made on demand instead of kept for the life of the session.
        """
        if self.initializers is None:
            return INITIALIZERS[index](self)
        return self.initializers[index]

    def onStanza(self, stanza: domish.Element) -> None:
        """
        A stanza from the bound client: C{from} is always ours to stamp
        (RFC 6120 §8.1.2.1), C{to} is validated, then the router decides.
        """
        stanza["from"] = sent = self.jidText
        self.factory.metrics.stanzasIn[stanza.name] += 1
        to = stanza.getAttribute("to")
        recipient = None
        if to is not None:
            try:
                recipient = parseJID(to)
            except InvalidJID as e:
                # The reason, so a user learns why (a room nick with an emoji
                # variation selector or a control character ends up here).
                self.sendError(stanza, "jid-malformed", "not a valid address: %s" % (e,))
                return
            stanza["to"] = to = recipient.full()
        if stanza.name == "iq":
            if not self.validIQ(stanza):
                return
            payload = firstChild(stanza)
            # Bind and session are the server's own business whether or not
            # the client addresses the server: RFC 3921 §3 sends the session
            # request to the domain, and legacy clients still do.
            if payload is not None and (to is None or stanza["to"] == self.domain):
                entry = IQ_PAYLOADS.get((payload.uri, payload.name))
                if entry is not None:
                    getattr(self.initializer(entry[0]), entry[1])(stanza, payload)
                    return
        taken = self.factory.hooks.fire(
            "c2s/outgoing", OutgoingEvent(self, self.session, stanza, recipient), self.domain)
        if taken:
            if isinstance(taken, defer.Deferred):
                self.unlessTaken(taken, self.factory.router.route, stanza)
            return
        # The addresses go along, parsed, unless a hook readdressed the
        # stanza (the same string objects mean untouched attributes).
        attributes = stanza.attributes
        self.factory.router.route(
            stanza, self.jid if attributes.get("from") is sent else None,
            recipient if attributes.get("to") is to else None)

    def validIQ(self, iq: domish.Element) -> bool:
        """RFC 6120 §8.2.3 (L{xmppd.core.stanzas.iqProblem}); a bad one is answered."""
        problem = iqProblem(iq)
        if problem == "bad-request":
            self.sendError(iq, problem)
        return problem is None

    # -- negotiation outcomes ----------------------------------------------

    def channelBindings(self) -> dict[str, bytes]:
        """
        What SCRAM-PLUS and FAST's HT mechanisms can bind to on this
        connection: C{tls-exporter} (RFC 9266) on TLS 1.3; C{tls-unique}
        (RFC 5929) on TLS 1.2, which is the client's Finished message
        because our TLS contexts never resume sessions; and on both,
        C{tls-server-end-point} (RFC 5929 §4), the hash of our certificate,
        which XEP-0440 has every server offer for clients that can do no
        other (see L{serverEndPoint}).  Empty before TLS.
        """
        if not self.secure:
            return {}
        bindings = {}
        try:
            connection = self.transport.getHandle()
            version = connection.get_protocol_version_name()
            if version == "TLSv1.3":
                bindings["tls-exporter"] = connection.export_keying_material(
                    b"EXPORTER-Channel-Binding", 32)
            elif version == "TLSv1.2":
                finished = connection.get_peer_finished()
                if finished:
                    bindings["tls-unique"] = finished
            else:
                return {}
            endPoint = serverEndPoint(connection.get_certificate())
            if endPoint is not None:
                bindings["tls-server-end-point"] = endPoint
        except (AttributeError, ValueError):
            pass
        return bindings

    async def lookupCredentials(self, username: str):
        """
        The account's stored credentials; an account an administrator
        disabled (XEP-0133 §4.3) is refused with C{account-disabled}
        (RFC 6120 §6.5.1) whatever the password.
        """
        credentials = await self.factory.users.getCredentials(username, self.domain)
        if credentials and await self.factory.server.storage.accountData.get(
                username, self.domain, DISABLED) is not None:
            self.log.info("{user}@{domain}: login refused, the account is disabled",
                          user=username, domain=self.domain)
            raise SASLFailure("account-disabled", "this account is disabled")
        return credentials

    async def saveCredentials(self, username: str, seen: dict, credentials: dict) -> None:
        """
        Store the credentials a PLAIN login completed (keys for hashes an
        imported account lacked), unless the account's credentials changed
        since the login read them (a password change meanwhile wins).  A
        failure is logged and the login goes on: the next PLAIN login
        tries again.
        """
        users = self.factory.users
        try:
            if await users.getCredentials(username, self.domain) == seen:
                await users.setCredentials(username, self.domain, credentials)
                self.log.info("{user}@{domain}: added {mechanisms} keys at login",
                              user=username, domain=self.domain,
                              mechanisms=", ".join(sorted(credentials.keys() - seen.keys())))
        except Exception:
            self.log.failure("Could not store new SCRAM keys of {user}@{domain}",
                             user=username, domain=self.domain)

    def onAuthenticated(self, username: str, mechanism: str, restart: bool = True) -> None:
        """
        The client is C{username}: restart the stream (RFC 6120 §6.4.6), or,
        after SASL2 (XEP-0388 §2.6.1), which has no restart, just let
        stanzas as large as an authenticated stream's through.
        """
        self.username = username
        if mechanism == "ANONYMOUS":
            self.anonymous = True
        metrics = self.factory.metrics
        metrics.count(metrics.logins, mechanism)
        self.log.info("{user}@{domain} authenticated with {mechanism} from {peer}",
                      user=username, domain=self.domain, mechanism=mechanism,
                      peer=self.peerAddress, event="login", transport=self.factory.transport)
        if restart:
            self.restart()
        elif self.parser is not None:
            self.parser.maxStanzaSize = self.limits.max_stanza_size

    #: A bind of this stream is waiting for the session directory.
    binding = False

    def bind(self, jid):
        """
        Claim the full JID C{jid} in the session directory, which settles
        it asynchronously (L{xmppd.core.sessions.ISessionDirectory}); fires
        with True once this stream holds it and features heard of it, with
        False when the stream closed meanwhile (the claim is then let go).
        """
        self.binding = True

        def bound(session):
            self.binding = False
            if self.closing:
                self.factory.sessions.unbind(session)
                return False
            self.attachSession(session)
            self.factory.hooks.notify("session/bound", self.session, self.domain)
            return True

        def failed(failure):
            self.binding = False
            return failure

        return self.factory.sessions.bind(jid, self).addCallbacks(bound, failed)

    def attachSession(self, session) -> None:
        """
        Become the stream of the bound C{session}: after a bind, or when a
        client resumes a session another stream left (XEP-0198 §5), which
        is then neither bound again nor announced.
        """
        session.stream = self if self.heldOutput is None else self.heldOutput
        if self.session is None and self.jid is None:
            metrics = self.factory.metrics
            metrics.count(metrics.sessionsOpened, self.factory.transport)
        self.session = session
        self.jid = session.jid
        self.jidText = session.jid.full()
        self.initializers = None
        timer = self.timers.pop("negotiation", None)
        if timer is not None and timer.active():
            timer.cancel()

    def releaseSession(self):
        """
        Let go of the session without ending it (someone else keeps it
        bound, see L{attachSession}); return it.  Stream management's state
        goes with it.
        """
        if self.csi is not None:
            self.csi.release()
        session, self.session = self.session, None
        self.sm = None
        return session

    def endSession(self) -> None:
        """
        The bound session ends (logout, lost connection, replaced): features
        hear it while it is still in the session table (presence broadcasts
        unavailable from it), then it is unbound.
        """
        if self.csi is not None:
            self.csi.release()
        session, self.session = self.session, None
        if session is not None:
            self.log.info("{jid} logged out from {peer} ({reason})", jid=session.jid.full(),
                          peer=self.peerAddress, reason=self.errorCondition or "closed",
                          event="logout", transport=self.factory.transport)
            self.factory.hooks.notify("session/closed", session, self.domain)
            self.factory.sessions.unbind(session)
            if self.sm is not None:
                self.sm.sessionEnded(session)
            elif self.unsent:
                # Without stream management nothing else knows they never
                # left: handed on as unacknowledged ones are (features.sm).
                unsent, self.unsent = self.unsent, None
                self.factory.hooks.notify(
                    "session/unsent", UnsentEvent(session, unsent, self.factory.clock.seconds()),
                    self.domain)

    def replaceSession(self) -> None:
        """Another stream bound our full JID (RFC 6120 §7.7.2.2)."""
        self.endSession()
        self.streamError("conflict", "replaced by a new connection")


#: Serialized stream features one listener keeps (L{ClientStream.sendFeatures}):
#: a handful of states per served domain.
FEATURES_CACHE_SIZE = 256

#: The negotiation steps, in the order their features are offered.
INITIALIZERS = (StartTLSInitializer, SASLInitializer, SASL2Initializer,
                ChannelBindingInitializer, BindInitializer, SessionInitializer)

#: A stanza serialized once (L{StanzaText}) starts "<message", "<presence" or "<iq".
_KIND_OF_TEXT = {"m": "message", "p": "presence", "i": "iq"}

#: The client's stream footer, queued behind what waits (L{ClientStream.onDocumentEnd}).
_END = object()


class _Lost:
    """The connection went while elements waited: end the session after them."""

    __slots__ = ("broken",)

    def __init__(self, broken: bool):
        self.broken = broken


def _dispatchTable(attribute: str) -> dict[tuple[str, str], tuple[int, str]]:
    """(namespace, name) -> (index in INITIALIZERS, method name), built once."""
    table = {}
    for index, initializer in enumerate(INITIALIZERS):
        for key, method in getattr(initializer, attribute).items():
            table[key] = (index, method)
    return table


NEGOTIATION_ELEMENTS = _dispatchTable("elements")
IQ_PAYLOADS = _dispatchTable("iqPayloads")


def firstChild(element: domish.Element) -> domish.Element | None:
    for child in element.children:
        if isinstance(child, domish.Element):
            return child
    return None


def serverEndPoint(certificate) -> bytes | None:
    """
    RFC 5929 §4.1: our certificate (DER) hashed with the hash of its own
    signature algorithm, SHA-256 when that is MD5 or SHA-1.  C{None} for a
    certificate whose signature has no separate hash (Ed25519, Ed448: the
    RFC defines nothing for them) or when there is no certificate.
    """
    if certificate is None:
        return None
    x509 = certificate.to_cryptography()
    algorithm = x509.signature_hash_algorithm
    if algorithm is None:
        return None
    name = algorithm.name
    if name in ("md5", "sha1"):
        name = "sha256"
    try:
        digest = hashlib.new(name)
    except ValueError:
        return None
    digest.update(x509.public_bytes(serialization.Encoding.DER))
    return digest.digest()
