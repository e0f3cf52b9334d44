# -*- test-case-name: tests.test_s2s_incoming -*-
"""
What both directions of a server-to-server stream share (RFC 6120 §4).

L{S2SStream} builds on L{xmppd.stream.base.StreamBase}: the
hardened parser, the negotiation deadline, the bound on what is queued for
a peer that does not read, and stream errors that end in a clean close.  It
adds the C{jabber:server} header with the dialback prefix declared
(XEP-0220 §2.1), restarts after TLS and SASL (RFC 6120 §4.3.3), dispatch of
top-level elements through a table, and the idle timeout: a stream with no
traffic either way for C{s2s.idle_timeout} seconds is closed with the
footer, as a stream that is simply no longer needed (RFC 6120 §4.4).

What the peer sends is shaped (C{s2s.bytes_per_second},
C{s2s.stanzas_per_second}, per stream, either direction): past them
reading pauses until the bucket is out of debt, as for clients.  A
server's rates are those of all its users talking to ours, so they are
ten times a client's by default.

Stanzas are accepted the same way in both directions (an outgoing stream
carries stanzas back only when it is bidirectional, XEP-0288): each must
be addressed C{to} a domain we serve (else C{host-unknown}, RFC 6120
§4.9.3.6) C{from} a domain authenticated on this stream for that domain
(else C{invalid-from}, §4.9.3.9 and §8.1.2.2); both addresses are required
between servers (C{improper-addressing}, §4.9.3.7).  They go to the router
as C{jabber:client}, with their addresses prepared.  Either direction also
answers, as the authoritative server of one of our domains, whether a
dialback key is ours (C{<db:verify/>}, XEP-0220 §2.3): Prosody asks over
whichever stream it routes through, a bidirectional one included.

Inside the server every stanza is C{jabber:client}: the stanzas of a
stream are rewritten on the way in, and written on the way out without a
namespace of their own, which on this stream means C{jabber:server}.
"""

from __future__ import annotations

from twisted.words.protocols.jabber.xmlstream import NS_STREAMS
from twisted.words.xish import domish

from xmppd.stream.elements import streamErrorElement
from xmppd.stream.base import StreamBase, StreamLimits, toClientNamespace
from xmppd.core.jid import InvalidJID, parseJID
from xmppd.core.ordering import SharedInput
from xmppd.s2s.dialback import NS_DIALBACK, keyMatches, verifyElement
from xmppd.core.stanzas import NS_CLIENT, NS_SERVER, errorReply, iqProblem
from xmppd.stream.xmlparser import HardenedElementStream

NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
#: The stream feature offering bidirectional streams (XEP-0288 §2.1)...
NS_BIDI_FEATURE = "urn:xmpp:features:bidi"
#: ... and the element that asks for one (XEP-0288 §2.2).
NS_BIDI = "urn:xmpp:bidi"

PREFIXES = {NS_STREAMS: "stream", NS_DIALBACK: "db"}
PREFIXES_IN_SCOPE = ["stream", "db"]

__all__ = ["NS_BIDI", "NS_BIDI_FEATURE", "NS_SASL", "NS_TLS", "PREFIXES", "S2SStream",
           "StreamLimits", "domainOf", "serialize"]


def serialize(element: domish.Element) -> str:
    """An element as an s2s stream writes it (stanzas without a namespace, C{db:} prefixed)."""
    return element.toXml(prefixes=PREFIXES, defaultUri=NS_CLIENT,
                         prefixesInScope=PREFIXES_IN_SCOPE)


def domainOf(text: str | None) -> str | None:
    """A domain attribute (C{from}/C{to} of a header or a dialback element) prepared, or C{None}."""
    if not text:
        return None
    try:
        jid = parseJID(text)
    except InvalidJID:
        return None
    if jid.user is not None or jid.resource is not None:
        return None
    return jid.host


class S2SStream(SharedInput, StreamBase):
    """
    One server-to-server stream, either direction.  Subclasses set
    C{direction} (C{"in"} or C{"out"}), C{elements} ((namespace, name) ->
    method name) and provide C{sendHeader}, C{onDocumentStart} and
    C{onStanza}.
    """

    direction = "?"
    elements: dict[tuple[str, str], str] = {}
    streamNamespace = NS_SERVER
    requireVersion = True
    #: Dialback elements go out as C{db:result} / C{db:verify}: XEP-0220 §2
    #: says every element of its namespace MUST carry the prefix the header
    #: declares, and ejabberd recognises only the prefixed form.
    serialize = staticmethod(serialize)

    def __init__(self, service, secure: bool = False):
        StreamBase.__init__(self, None, service.clock, service.limits)
        self.service = service
        #: Whether TLS protects the stream (STARTTLS done, or direct TLS).
        self.secure = secure
        self.connectedAt = service.clock.seconds()
        self.lastActivity = self.connectedAt
        #: The domains of the last stream header, ours and the peer's.
        self.localDomain: str | None = None
        self.remoteDomain: str | None = None
        #: Whether the stream carries stanzas both ways (XEP-0288).
        self.bidi = False

    def __repr__(self) -> str:
        return "<%s %s %s %s>" % (type(self).__name__, self.localDomain,
                                  "<-" if self.direction == "in" else "->", self.remoteDomain)

    # -- connection --------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self.closing:
            return
        self.lastActivity = self.clock.seconds()
        try:
            self.parser.parse(data)
        except domish.ParserError as e:
            self.streamError(getattr(e, "condition", "not-well-formed"), str(e) or None)
        except Exception:
            # A bug of ours costs this peer its stream, nobody else.
            self.log.failure("Unexpected error on s2s stream {stream!r} ({peer})",
                             stream=self, peer=self.peerAddress)
            self.streamError("internal-server-error")
            return
        if not self.closing:
            self.shapeRead(len(data))

    def describeStream(self) -> str:
        return "s2s stream %r" % (self,)

    def rejected(self, limit: str) -> None:
        self.service.server.metrics.reject(limit)

    def onSendQueueOverflow(self) -> None:
        self.rejected("send_queue_limit")
        self.log.warn("Dropping s2s stream {stream!r} ({peer}): over {limit} bytes queued "
                      "unread", stream=self, peer=self.peerAddress,
                      limit=self.limits.sendQueueLimit)
        self.closing = True
        self.streamClosing()
        self.transport.abortConnection()

    def onNegotiationTimeout(self) -> None:
        self.streamError("connection-timeout", "negotiation took too long")

    def streamError(self, condition: str, text: str | None = None) -> None:
        """Send a stream error (RFC 6120 §4.9) and close the stream."""
        if self.closing:
            return
        if not self.headerSent:
            # RFC 6120 §4.9.1.2: the header comes first even for an error.
            self.sendHeader()
        self.log.debug("Stream error {condition} on s2s stream {stream!r} ({peer}): {text}",
                       condition=condition, stream=self, peer=self.peerAddress, text=text)
        self.errorCondition = condition
        self.dropWaiting()
        self.send(streamErrorElement(condition, text))
        self.closeStream()

    def restart(self) -> None:
        """A new stream on the same connection, after TLS or SASL (RFC 6120 §4.3.3)."""
        self.headerSent = False
        parser = HardenedElementStream()
        parser.maxStanzaSize = self.parser.maxStanzaSize
        parser.maxDepth = self.limits.maxDepth
        parser.DocumentStartEvent = self.onDocumentStart
        parser.ElementEvent = self.onElement
        parser.DocumentEndEvent = self.closeStream
        old, self.parser = self.parser, parser
        # Bytes after the restart point in this read belong to no stream
        # (RFC 6120 §5.4.3.3).
        old.halt()

    def startIdleTimer(self) -> None:
        """Close the stream after C{idle_timeout} seconds without traffic (0: never)."""
        if self.service.idleTimeout and "idle" not in self.timers:
            self.timers["idle"] = self.clock.callLater(self.service.idleTimeout,
                                                       self.checkIdle)

    def checkIdle(self) -> None:
        idle = self.clock.seconds() - self.lastActivity
        remaining = self.service.idleTimeout - idle
        if remaining > 0:
            self.timers["idle"] = self.clock.callLater(remaining, self.checkIdle)
            return
        del self.timers["idle"]
        self.log.info("Closing idle s2s stream {stream!r} ({peer}) after {idle:.0f} s",
                      stream=self, peer=self.peerAddress, idle=idle)
        self.closeStream()

    # -- output ------------------------------------------------------------

    def send(self, obj) -> None:
        """Write as the base does, and count it as activity (see the idle close)."""
        if not self.closing:
            self.lastActivity = self.clock.seconds()
        StreamBase.send(self, obj)

    def writeHeader(self, attributes: str) -> None:
        self.transport.write(
            ("<?xml version='1.0'?><stream:stream xmlns:stream='%s' xmlns='%s' "
             "xmlns:db='%s' version='1.0' xml:lang='en'%s>"
             % (NS_STREAMS, NS_SERVER, NS_DIALBACK, attributes)).encode("utf-8"))
        self.headerSent = True

    # -- input -------------------------------------------------------------

    def onElement(self, element: domish.Element) -> None:
        if self.closing:
            return
        self.stanzasRead += 1
        key = (element.uri, element.name)
        method = self.elements.get(key)
        if method is not None:
            getattr(self, method)(element)
        elif key == (NS_STREAMS, "error"):
            self.onPeerStreamError(element)
            self.closeStream()
        elif element.uri == NS_SERVER and element.name in ("message", "presence", "iq"):
            self.onStanza(element)
        elif element.name in ("message", "presence", "iq"):
            self.streamError("invalid-namespace", "stanzas must be in jabber:server")
        else:
            self.streamError("unsupported-stanza-type")

    def onPeerStreamError(self, error: domish.Element) -> None:
        conditions = [child.name for child in error.elements() if child.name != "text"]
        self.log.info("s2s stream {stream!r} ({peer}) closed by a stream error: {condition}",
                      stream=self, peer=self.peerAddress,
                      condition=conditions[0] if conditions else "(none)")

    def addRoute(self, route) -> None:
        """C{route} sends through this stream: tell it (C{route.streamGone}) when it closes."""
        raise NotImplementedError()

    def receivingPairs(self):
        """
        The pairs (our domain, the peer's domain) the peer may send stanzas
        for on this stream, as a collection supporting C{in}; empty until
        one is authenticated.
        """
        raise NotImplementedError()

    def onStanza(self, stanza: domish.Element) -> None:
        """See the module docstring."""
        pairs = self.receivingPairs()
        if not pairs:
            return self.streamError("not-authorized")
        to, sent = stanza.getAttribute("to"), stanza.getAttribute("from")
        if not to or not sent:
            return self.streamError("improper-addressing",
                                    "stanzas between servers need to and from")
        try:
            sender = parseJID(sent)
        except InvalidJID:
            return self.streamError("invalid-from")
        try:
            recipient = parseJID(to)
        except InvalidJID:
            recipient = None
        if recipient is None:
            ours = sorted(local for local, remote in pairs if remote == sender.host)
            if not ours:
                return self.refuseSender(sent, to)
            toClientNamespace(stanza, NS_SERVER)
            answer = errorReply(stanza, "jid-malformed")
            if answer is not None:
                # From the domain the peer authenticated for us with.
                answer["from"] = ours[0]
                answer["to"] = sender.full()
                self.service.router.route(answer)
            return
        if not self.service.serves(recipient.host):
            self.log.info("Closing s2s stream {stream!r} ({peer}): stanza to {to!r}",
                          stream=self, peer=self.peerAddress, to=to[:100])
            return self.streamError("host-unknown")
        if (recipient.host, sender.host) not in pairs:
            return self.refuseSender(sent, to)
        toClientNamespace(stanza, NS_SERVER)
        stanza["from"] = sender.full()
        stanza["to"] = recipient.full()
        if stanza.name == "iq" and not self.validIQ(stanza):
            return
        # RFC 6120 §10.1, per sender: one remote user's stanza that waits
        # holds back that user's next ones, not everyone's on this stream.
        self.processInOrder(stanza, stanza["from"])

    def processStanza(self, stanza: domish.Element) -> None:
        """L{SharedInput}: a checked stanza, its turn come, goes to the router."""
        self.service.router.route(stanza)

    def refuseSender(self, sent: str, to: str) -> None:
        """RFC 6120 §4.9.3.9: a C{from} not authenticated on this stream for its C{to}."""
        self.log.info("Closing s2s stream {stream!r} ({peer}): stanza from {sender!r} "
                      "to {to!r} not authenticated", stream=self, peer=self.peerAddress,
                      sender=sent[:100], to=to[:100])
        self.streamError("invalid-from", "the sender's domain is not authenticated on "
                                         "this stream for the recipient's")

    def validIQ(self, iq: domish.Element) -> bool:
        """RFC 6120 §8.2.3 (L{xmppd.core.stanzas.iqProblem}); a bad one is answered."""
        problem = iqProblem(iq)
        if problem == "bad-request":
            self.reply(iq, problem)
        return problem is None

    def reply(self, stanza: domish.Element, condition: str) -> None:
        """An error back to the remote sender, through the router (never to an error)."""
        answer = errorReply(stanza, condition)
        if answer is not None:
            self.service.router.route(answer)

    def answerVerify(self, element: domish.Element) -> None:
        """As the authoritative server: is this key ours (XEP-0220 §2.3)?"""
        ours = domainOf(element.getAttribute("to"))
        receiving = domainOf(element.getAttribute("from"))
        streamId = element.getAttribute("id")
        if receiving is None:
            return self.streamError("invalid-from")
        if ours is None or not self.service.serves(ours) or not streamId:
            self.send(verifyElement(ours or element.getAttribute("to") or "", receiving,
                                    streamId or "", verifyType="error",
                                    condition="item-not-found"))
            return
        valid = keyMatches(self.service.secret, receiving, ours, streamId, str(element))
        self.send(verifyElement(ours, receiving, streamId,
                                verifyType="valid" if valid else "invalid"))
