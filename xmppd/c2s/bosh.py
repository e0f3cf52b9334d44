# -*- test-case-name: tests.test_bosh -*-
"""
XMPP over BOSH (XEP-0124, XEP-0206): a client stream whose bytes travel in
the C{<body/>} wrappers of HTTP POST requests to C{/http-bind}.

There is no second client stream: L{BOSHClientStream} is a
L{xmppd.c2s.stream.ClientStream} (negotiation, SASL, bind, limits,
shaping, stream management and every feature), as the WebSocket's is
(L{xmppd.c2s.websocket}).  What BOSH changes is the transport: a
L{BOSHSession} stands where a TCP connection stands, and turns the
stream's writes into responses to the requests it holds.

  - The session creation request (XEP-0124 §7.1, XEP-0206 §4) is the
    stream header; its answer carries C{sid}, C{wait}, C{hold},
    C{requests} (C{hold + 1}), C{polling}, C{inactivity}, C{maxpause},
    C{ack}, C{ver}, C{authid} (the stream id), C{xmpp:version} and the
    stream features.  C{xmpp:restart='true'} (XEP-0206 §5) restarts the
    stream after SASL: the answer holds the new features.
  - Requests are processed in C{rid} order (§9.1), within a window of
    C{requests} past the last one received in order; the payloads go to
    the stream one element at a time, as its parser would hand them.  A
    request is held until the stream has something to say, at most
    C{wait} seconds (then an empty C{<body/>}), and at most C{hold} are
    held: one more answers the oldest.  A C{rid} seen before gets the same
    answer again (§9.2, the last C{requests} answers are kept, fewer once
    the client acknowledges them with C{ack}); a C{rid} out of the window,
    or whose answer is gone, ends the session with C{item-not-found}.
  - C{pause} (§10) answers every held request and stretches the
    inactivity allowed, up to C{maxpause}; a session with no request held
    for C{inactivity} seconds ends as a broken connection would (stream
    management may keep its XMPP session).  C{ack} (§8) is answered with
    the highest C{rid} received in order, and a client C{ack} that shows a
    lost answer with C{report} and C{time}.
  - C{type='terminate'} ends the stream after its payloads (§13).  A
    stream error ends the session with C{condition='remote-stream-error'}
    and the C{<stream:error/>} inside (XEP-0206 §7), C{host-unknown} and
    C{system-shutdown} with their own conditions, a draining node with
    C{see-other-uri} and the same path on another node.
  - Errors are terminal binding conditions (§17.2) in a 200 answer;
    a legacy client (no C{ver} in its session request) gets the HTTP
    status instead (§17.1: 400, 403, 404).

Everything is bounded: a request body by C{http.max_request_size} (413
before it is read), each payload by the stream's stanza size (the
unauthenticated one before SASL) and depth, read by the hardened parser
(L{xmppd.stream.xmlparser}); too many simultaneous requests get
C{policy-violation}, as polling faster than C{polling} does; what waits for
a request to carry it is bounded by C{limits.send_queue_limit}, like a TCP
client that does not read.  A session counts against its address like a
connection (C{limits.connections_per_ip}) and the login-failure delays are
shared with TCP and WebSocket.

Browsers on other sites reach it with CORS (C{Access-Control-Allow-Origin}
for the origins of C{http.bosh_origins}, any when empty; C{OPTIONS}
preflight).

Implements: XEP-0124 1.11 (without key sequencing or multiple streams),
XEP-0206 1.4
"""

from __future__ import annotations

import collections
import secrets
from xml.sax.saxutils import quoteattr

from twisted.internet import address, error
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import resource
from twisted.web.server import NOT_DONE_YET
from twisted.words.protocols.jabber.xmlstream import NS_STREAMS
from twisted.words.xish import domish

from xmppd.c2s.stream import NS_XML, ClientStream
from xmppd.c2s.websocket import standalone
from xmppd.core.jid import InvalidJID, prepDomainpart
from xmppd.stream.elements import NS_CLIENT
from xmppd.stream.xmlparser import HardenedElementStream, PolicyViolation

NS_HTTPBIND = "http://jabber.org/protocol/httpbind"
NS_XBOSH = "urn:xmpp:xbosh"
#: Where the node serves it, and its XEP-0156 link relation.
PATH = "http-bind"
LINK_REL = "urn:xmpp:alt-connections:xbosh"
#: The XEP-0124 version spoken.
VERSION = (1, 11)
#: The largest rid a client may use (XEP-0124 §14.1: 2^53 - 1).
MAX_RID = 2 ** 53 - 1
#: A client ack this many seconds behind the answer it lost is reported
#: (§8.2); an answer still in flight is not.
REPORT_AFTER = 2.0

#: The HTTP status a legacy client gets for a condition (XEP-0124 §17.1).
LEGACY_STATUS = {"bad-request": 400, "policy-violation": 403, "item-not-found": 404}
#: Stream errors that have a terminal binding condition of their own.
STREAM_CONDITIONS = {"host-unknown": "host-unknown", "system-shutdown": "system-shutdown"}


class BOSHError(Exception):
    """A terminal binding condition (XEP-0124 §17.2) to answer a request with."""

    def __init__(self, condition: str, text: str = ""):
        super().__init__(text or condition)
        self.condition = condition


class BOSHClientStream(ClientStream):
    """A client stream carried by a L{BOSHSession}; see the module docstring."""

    footer = ""
    #: The stanza size of the next request's payloads (see L{newParser}).
    maxStanzaSize = 0
    #: Where a draining node sends the client (C{see-other-uri}).
    otherURI = None

    def newParser(self, maxStanzaSize: int) -> None:
        # Each request is parsed on its own (L{BOSHResource.parse}) with
        # this stream's limits: nothing is parsed across requests.
        self.maxStanzaSize = maxStanzaSize

    def sendHeader(self) -> None:
        # The stream header is the session creation (or restart) answer's
        # attributes: only the stream id is needed from it.
        self.streamId = self.factory.newStreamId()
        self.headerSent = True

    def write(self, obj, text: str) -> None:
        if self.traffic is not None:
            self.traffic.outgoing(self.serial, self.peerAddress, obj, text)
        if text[:1] != "<":
            return  # whitespace keepalives: BOSH has empty bodies for that
        self.sendQueue.written(self.transport.sendText(standalone(text)))

    def closeStream(self) -> None:
        if self.closing:
            return
        super().closeStream()
        # The session ends now: there is no connection to wait for.
        timer = self.timers.pop("close", None)
        if timer is not None and timer.active():
            timer.cancel()
        self.transport.streamClosed()

    def streamError(self, *args, **kwargs) -> None:
        # The error and the end go in one terminal answer (XEP-0206 §7), not
        # the error first in an answer of its own.
        if self.transport is not None:
            self.transport.busy = True
        super().streamError(*args, **kwargs)

    def seeOtherHost(self, address: str) -> None:
        """A draining node: the same URL on the other node (C{see-other-uri})."""
        if self.closing:
            return
        if not self.headerSent:
            self.sendHeader()
        self.errorCondition = "see-other-host"
        self.otherURI = self.transport.uriOnHost(address.rsplit(":", 1)[0])
        if self.backlog is not None:
            self.backlog.dropQueued()
        self.closeStream()

    def channelBindings(self) -> dict[str, bytes]:
        # Every request may come on another TLS connection: nothing to bind to.
        return {}

    def handlePayloads(self, elements) -> None:
        """The payloads of one request, in order, as the parser would deliver them."""
        self.lastReceived = self.factory.clock.seconds()
        for element in elements:
            if self.closing:
                return
            if not self.headerSent:
                return self.streamError("bad-format", "the stream is not open: restart "
                                        "it first (xmpp:restart, XEP-0206 section 5)")
            try:
                self.onElement(element)
            except Exception:
                self.log.failure("Unexpected error on BOSH stream from {peer}",
                                 peer=self.peerAddress)
                return self.streamError("internal-server-error")


class _Held:
    """
    A request waiting for its answer: its rid, its HTTP requests, its timer.
    A request whose connection broke stays until the answer, which is kept
    (L{BOSHSession.keep}) for the client to ask again (§9.2), and written by
    L{BOSHResource.finish} only to a connection still open: nothing is
    watched per request.
    """

    __slots__ = ("rid", "requests", "timer", "pause")

    def __init__(self, rid: int, request):
        self.rid = rid
        self.requests = [request] if request is not None else []
        self.timer = None
        self.pause = False


class BOSHSession:
    """
    One BOSH session: the rid window, the held requests and the kept
    answers, and the transport of its L{BOSHClientStream} (C{sendText},
    C{streamClosed}, flow control, addresses).
    """

    log = Logger()

    def __init__(self, owner: "BOSHResource", stream: BOSHClientStream, request, body,
                 rid: int, wait: int, hold: int, legacy: bool):
        config = owner.config
        self.owner = owner
        self.stream = stream
        self.clock = stream.factory.clock
        self.sid = secrets.token_hex(16)
        self.wait = wait
        self.hold = hold
        self.requests = hold + 1
        self.polling = config.bosh_polling
        self.normalInactivity = config.bosh_max_inactivity
        if hold == 0:
            # A polling session: a request every polling seconds at most
            # (§12), so more inactivity than that is allowed.
            self.normalInactivity += self.polling
        self.inactivity = self.normalInactivity
        self.legacy = legacy
        self.clientHost = getattr(request, "clientHost", None) or "local"
        self.secure = getattr(request, "viaTLS", False)
        self.scheme = "https" if self.secure else "http"
        self.port = request.getHost().port
        self.path = request.path.decode("ascii", "replace")
        #: The highest rid received with every rid before it.
        self.lastRid = rid
        #: Requests above lastRid that came early: rid -> (body, payloads, _Held).
        self.early: dict[int, tuple] = {}
        self.held: collections.deque[_Held] = collections.deque()
        #: rid -> (answer, when it was sent) of the last answers (§9.2).
        self.answers: collections.OrderedDict[int, tuple[bytes, float]] = \
            collections.OrderedDict()
        self.outbox: list[str] = []
        self.inbox: collections.deque = collections.deque()
        self.readPaused = False
        self.producer = None
        self.inactivityTimer = None
        self.clientAck = None
        self.report = None
        #: Polling (§12): when the last empty request came, and whether
        #: its answer was empty too.
        self.lastPoll = None
        self.lastPollEmpty = False
        #: The answer of a session that ended with no request to carry it.
        self.terminal: bytes | None = None
        self.ended = False
        #: A request is being processed: what the stream writes meanwhile
        #: goes into one answer instead of one answer per element.
        self.busy = False

    # -- requests ------------------------------------------------------------

    def receive(self, request, body: domish.Element, payloads: list, rid: int) -> None:
        """A request of this session (not the creation one): see the module docstring."""
        self.cancelInactivity()
        # A pause lasts until the next request (§10).
        self.inactivity = self.normalInactivity
        if self.terminal is not None:
            # The stream ended while no request was held: this one says how.
            self.owner.forget(self)
            return self.owner.finish(request, self.terminal)
        if rid <= self.lastRid:
            return self.resend(request, rid)
        if rid > self.lastRid + self.requests:
            raise BOSHError("item-not-found", "rid out of the window")
        entry = self.early.get(rid)
        if entry is not None:
            # The same request again before its turn.
            return self.attach(request, entry[2])
        pause = body.getAttribute("pause")
        terminate = body.getAttribute("type") == "terminate"
        unanswered = len(self.held) + len(self.early) + 1
        if unanswered > self.requests and pause is None and not terminate:
            raise BOSHError("policy-violation", "too many simultaneous requests")
        self.noteAck(body)
        held = _Held(rid, request)
        self.early[rid] = (body, payloads, held)
        while self.lastRid + 1 in self.early:
            self.lastRid += 1
            body, payloads, held = self.early.pop(self.lastRid)
            self.checkPolling(body, payloads)
            self.held.append(held)
            self.inbox.append((body, payloads, held))
        self.process()
        self.settle()

    def resend(self, request, rid: int) -> None:
        """A rid already received: its kept answer, or it is still held (§9.2)."""
        kept = self.answers.get(rid)
        if kept is not None:
            return self.owner.finish(request, kept[0])
        for held in self.held:
            if held.rid == rid:
                return self.attach(request, held)
        raise BOSHError("item-not-found", "that answer is no longer kept")

    def attach(self, request, held: _Held) -> None:
        """
        A request sent again while its first copy is held: the new copy
        gets the answer, and the old one's connection, which the client
        gave up on, is closed (however often a client repeats itself, one
        request per rid is held).
        """
        old, held.requests = held.requests, []
        for previous in old:
            previous.loseConnection()
        held.requests.append(request)

    def noteAck(self, body: domish.Element) -> None:
        """The client's ack (§8.2): forget what it has, report what it lost."""
        ack = _integer(body.getAttribute("ack"))
        if ack is None:
            return
        self.clientAck = ack
        while self.answers and next(iter(self.answers)) <= ack:
            self.answers.popitem(last=False)
        missing = self.answers.get(ack + 1)
        if missing is not None:
            late = self.clock.seconds() - missing[1]
            if late >= REPORT_AFTER:
                self.report = (ack + 1, int(late * 1000))

    def checkPolling(self, body: domish.Element, payloads: list) -> None:
        """Two empty polls closer than C{polling} seconds end a polling session (§12)."""
        if self.hold != 0:
            return
        empty = not payloads and body.getAttribute("pause") is None \
            and body.getAttribute("type") is None and body.getAttribute((NS_XBOSH, "restart")) \
            is None
        now = self.clock.seconds()
        if empty and self.lastPoll is not None and self.lastPollEmpty \
                and now - self.lastPoll < self.polling:
            raise BOSHError("policy-violation", "polling too often")
        self.lastPoll = now if empty else None

    def process(self) -> None:
        """Hand the payloads of the requests received in order to the stream."""
        stream = self.stream
        self.busy = True
        try:
            self.processInbox(stream)
        finally:
            self.busy = False

    def processInbox(self, stream: BOSHClientStream) -> None:
        while self.inbox and not self.readPaused and not self.ended:
            body, payloads, held = self.inbox.popleft()
            if stream.closing:
                continue
            if body.getAttribute((NS_XBOSH, "restart")) in ("true", "1"):
                if stream.headerSent:
                    stream.streamError("bad-format", "a restart before authentication")
                    continue
                stream.onDocumentStart(streamHeader(body, stream.domain))
            stream.handlePayloads(payloads)
            pause = _integer(body.getAttribute("pause"))
            if pause is not None:
                held.pause = True
                self.inactivity = min(pause, self.owner.config.bosh_max_pause)
            if body.getAttribute("type") == "terminate":
                stream.onDocumentEnd()

    def settle(self) -> None:
        """
        Answer what can be answered: the oldest held request when the
        stream has something to say, any beyond C{hold}, every one before a
        pause; the others wait at most C{wait} seconds.
        """
        if self.ended:
            return
        if any(held.pause for held in self.held):
            while self.held:
                self.answer(self.held[0])
        while self.held and (self.outbox or len(self.held) > self.hold or self.report):
            self.answer(self.held[0])
        for held in self.held:
            if held.timer is None:
                held.timer = self.clock.callLater(self.wait, self.waited, held)
        if not self.held:
            self.armInactivity()

    def waited(self, held: _Held) -> None:
        """C{wait} seconds passed: an empty answer, and to every older one first."""
        held.timer = None
        while self.held and not self.ended:
            first = self.held[0]
            self.answer(first)
            if first is held:
                break
        if not self.held and not self.ended:
            self.armInactivity()

    def answer(self, held: _Held) -> None:
        """Answer the oldest held request with what the stream wrote."""
        assert self.held[0] is held
        self.held.popleft()
        if held.timer is not None and held.timer.active():
            held.timer.cancel()
        held.timer = None
        attrs = {}
        if held.rid != self.lastRid:
            attrs["ack"] = str(self.lastRid)
        if self.report is not None:
            attrs["report"], attrs["time"] = str(self.report[0]), str(self.report[1])
            self.report = None
        payload = ""
        if self.outbox and not held.pause:
            payload = "".join(self.outbox)
            self.outbox = []
            if self.producer is not None:
                self.producer.resumeProducing()
        if self.hold == 0:
            self.lastPollEmpty = not payload
        data = bodyXML(attrs, payload)
        self.keep(held.rid, data)
        for request in held.requests:
            self.owner.finish(request, data)

    def keep(self, rid: int, data: bytes) -> None:
        """Keep an answer for a request the client may send again (§9.2)."""
        self.answers[rid] = (data, self.clock.seconds())
        while len(self.answers) > self.requests:
            self.answers.popitem(last=False)

    # -- inactivity ----------------------------------------------------------

    def armInactivity(self) -> None:
        self.cancelInactivity()
        self.inactivityTimer = self.clock.callLater(self.inactivity, self.inactive)

    def cancelInactivity(self) -> None:
        if self.inactivityTimer is not None:
            if self.inactivityTimer.active():
                self.inactivityTimer.cancel()
            self.inactivityTimer = None

    def inactive(self) -> None:
        """No request for too long: the client is gone (§10), like a broken connection."""
        self.inactivityTimer = None
        self.log.debug("BOSH session {sid} of {peer} timed out", sid=self.sid,
                       peer=self.clientHost)
        self.owner.forget(self)
        if not self.ended:
            self.ended = True
            self.handOnOutbox()
            self.stream.connectionLost(Failure(error.ConnectionLost("BOSH inactivity")))

    def handOnOutbox(self) -> None:
        """
        What waited for a request that never came is the stream's unsent
        (C{unsent} of L{xmppd.c2s.stream.ClientStream}): with stream management
        it is in the unacknowledged queue already, and without it the
        session hands it on as it ends, rather than losing it.
        """
        if self.outbox:
            self.stream.unsent, self.outbox = self.outbox, []

    # -- the end -------------------------------------------------------------

    def terminate(self, condition: str | None, payload: str = "", uri: str | None = None,
                  stanzas: bool = True) -> None:
        """
        End the session: every held request is answered (the first with
        what the stream wrote last), or the next request will be.
        """
        if self.ended:
            return
        self.ended = True
        attrs = {"type": "terminate"}
        if condition is not None:
            attrs["condition"] = condition
        if uri is not None:
            payload += "<uri>%s</uri>" % (domish.escapeToXml(uri),)
        data = bodyXML(attrs, payload, stream=condition == "remote-stream-error")
        if self.held:
            first = True
            while self.held:
                held = self.held.popleft()
                if held.timer is not None and held.timer.active():
                    held.timer.cancel()
                for request in held.requests:
                    self.owner.finish(request, data if first else bodyXML(attrs, ""))
                first = False
            self.owner.forget(self)
        else:
            self.terminal = data
            self.armInactivity()
        for _, _, held in self.early.values():
            for request in held.requests:
                self.owner.finish(request, bodyXML(attrs, ""))
        self.early.clear()

    def streamClosed(self) -> None:
        """The stream sent its last words (a footer or an error): the session ends with it."""
        stream = self.stream
        payload, self.outbox = "".join(self.outbox), []
        condition = stream.errorCondition
        if condition is None:
            self.terminate(None, payload)
        elif condition == "see-other-host" and stream.otherURI:
            self.terminate("see-other-uri", payload, uri=stream.otherURI)
        elif condition in STREAM_CONDITIONS:
            self.terminate(STREAM_CONDITIONS[condition])
        else:
            self.terminate("remote-stream-error", payload)
        stream.connectionLost(Failure(error.ConnectionDone()))

    def fail(self, condition: str) -> None:
        """A binding error of this session's client: it ends, the stream as if broken."""
        if self.ended:
            return
        self.handOnOutbox()
        self.terminate(condition)
        self.owner.forget(self)
        self.terminal = None
        self.stream.connectionLost(Failure(error.ConnectionLost(condition)))

    # -- the stream's transport ------------------------------------------------

    def sendText(self, text: str) -> int:
        if self.ended:
            return 0
        self.outbox.append(text)
        if self.held and not self.busy:
            self.answer(self.held[0])
            if not self.held:
                self.armInactivity()
        elif not self.held and self.producer is not None:
            # Nothing can carry it now: it counts as unread (the send queue bound).
            self.producer.pauseProducing()
        return len(text)

    def write(self, data: bytes) -> None:
        self.sendText(data.decode("utf-8"))

    def loseConnection(self) -> None:
        """Closing is L{streamClosed}'s, called once the stream's last words are written."""

    def abortConnection(self) -> None:
        # The client does not collect what is written to it (the send
        # queue bound): the session ends without a word to it.
        if not self.ended:
            self.fail("policy-violation")

    def getPeer(self):
        kind = address.IPv6Address if ":" in self.clientHost else address.IPv4Address
        return kind("TCP", self.clientHost, 0)

    def getHost(self):
        return address.IPv4Address("TCP", "0.0.0.0", self.port)

    def pauseProducing(self) -> None:
        self.readPaused = True

    def resumeProducing(self) -> None:
        if self.readPaused:
            self.readPaused = False
            self.process()
            self.settle()

    def registerProducer(self, producer, streaming) -> None:
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def uriOnHost(self, host: str) -> str:
        """This session's URL with another host (C{see-other-uri})."""
        return "%s://%s:%d%s" % (self.scheme, host, self.port, self.path)


def streamHeader(body: domish.Element, domain: str | None) -> domish.Element:
    """The C{<stream:stream>} a session request or restart stands for (XEP-0206 §4, §5)."""
    attrs = {"to": body.getAttribute("to") or domain or "",
             "version": body.getAttribute((NS_XBOSH, "version")) or "1.0"}
    lang = body.getAttribute((NS_XML, "lang"))
    if lang:
        attrs[(NS_XML, "lang")] = lang
    return domish.Element((NS_STREAMS, "stream"), defaultUri=NS_CLIENT, attribs=attrs)


def bodyXML(attrs: dict, payload: str, stream: bool = False) -> bytes:
    """A C{<body/>} wrapper with C{attrs} around C{payload} (already serialized)."""
    text = "<body xmlns='%s'" % (NS_HTTPBIND,)
    if stream:
        text += " xmlns:stream='%s'" % (NS_STREAMS,)
    for name, value in attrs.items():
        text += " %s=%s" % (name, quoteattr(value))
    if payload:
        text += ">" + payload + "</body>"
    else:
        text += "/>"
    return text.encode("utf-8")


def _integer(value: str | None) -> int | None:
    """A non-negative decimal integer attribute, or None (absent or not one)."""
    if value is None or not value.isdigit() or len(value) > 16:
        return None
    return int(value)


def _clientNamespace(element: domish.Element) -> None:
    """
    Payloads written without a namespace of their own inherit the body's;
    they mean C{jabber:client} (XEP-0206 §6, as Prosody reads them).  Only
    the children of an element that inherited it can have inherited it too:
    a stanza that declares its namespace (as most clients write them) is
    left alone without a walk through its children.
    """
    if element.uri != NS_HTTPBIND:
        return
    element.uri = NS_CLIENT
    if element.defaultUri == NS_HTTPBIND:
        element.defaultUri = NS_CLIENT
    for child in element.elements():
        _clientNamespace(child)


class _Parsed:
    """What the parser of one request found."""

    def __init__(self):
        self.body = None
        self.session = None
        self.payloads: list[domish.Element] = []
        self.complete = False


class BOSHResource(resource.Resource):
    """
    C{/http-bind}: the sessions of this node and the requests that reach
    them (see the module docstring).  C{factory} is a
    L{xmppd.c2s.listeners.C2SFactory} from
    L{xmppd.c2s.listeners.C2SService.transportFactory}, C{config} the
    C{[http]} section.
    """

    isLeaf = True
    log = Logger()

    def __init__(self, factory, config):
        super().__init__()
        self.factory = factory
        self.config = config
        self.origins = frozenset(config.bosh_origins)
        self.sessions: dict[str, BOSHSession] = {}
        #: So the scrape of /metrics finds the sessions (L{xmppd.core.bounds}).
        factory.bosh = self

    # -- CORS -----------------------------------------------------------------

    def allowOrigin(self, request) -> bool:
        """Add the CORS headers; whether the request's origin may use BOSH."""
        origin = request.getHeader(b"origin")
        if not self.origins:
            request.setHeader(b"access-control-allow-origin", b"*")
            return True
        request.setHeader(b"vary", b"Origin")
        if origin is None:
            return True  # not a browser's cross-origin request
        if origin.decode("ascii", "replace").lower() not in self.origins:
            return False
        request.setHeader(b"access-control-allow-origin", origin)
        return True

    def render_OPTIONS(self, request) -> bytes:
        """The CORS preflight of a browser on another site."""
        if self.allowOrigin(request):
            request.setHeader(b"access-control-allow-methods", b"POST, OPTIONS")
            request.setHeader(b"access-control-allow-headers", b"Content-Type")
            request.setHeader(b"access-control-max-age", b"86400")
        request.setHeader(b"content-length", b"0")
        return b""

    def render_GET(self, request) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"XMPP over BOSH (XEP-0206): POST <body/> wrappers here\n"

    # -- requests ---------------------------------------------------------------

    def render_POST(self, request):
        if not self.allowOrigin(request):
            request.setResponseCode(403)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"pages of this origin may not use BOSH\n"
        data = request.content.read()
        parsed = _Parsed()
        session = None
        legacy = False
        try:
            try:
                self.parse(data, parsed)
            finally:
                session = parsed.session
                legacy = session.legacy if session is not None else (
                    parsed.body is not None and parsed.body.getAttribute("sid") is None
                    and parsed.body.getAttribute("ver") is None)
            body = parsed.body
            if body.getAttribute("sid") is None:
                return self.create(request, body)
            if session is None:
                raise BOSHError("item-not-found", "no such session")
            if session.secure and not getattr(request, "viaTLS", False):
                # §21.1: a secure session never continues in the clear, and
                # its session is not ended for whoever tried.
                request.channel.transport.loseConnection()
                return NOT_DONE_YET
            rid = _integer(body.getAttribute("rid"))
            if rid is None or rid > MAX_RID:
                raise BOSHError("bad-request", "rid must be a positive integer")
            stream = session.stream
            if stream.byteBucket is not None and not stream.closing:
                stream.shape(stream.byteBucket.consume(len(data)))
            session.receive(request, body, parsed.payloads, rid)
            return NOT_DONE_YET
        except BOSHError as e:
            self.log.debug("BOSH request from {peer}: {condition} ({text})",
                           peer=getattr(request, "clientHost", "?"),
                           condition=e.condition, text=str(e))
            if session is not None:
                session.fail(e.condition)
            return self.refuse(request, e.condition, legacy)

    def parse(self, data: bytes, parsed: _Parsed) -> None:
        """
        The C{<body/>} of a request and its payloads, read by the hardened
        parser with the stream's limits (the session is known once the
        C{<body>} start tag is read).
        """
        parser = HardenedElementStream()
        limits = self.factory.limits
        parser.maxStanzaSize = limits.max_stanza_size_unauthenticated
        parser.maxDepth = limits.max_depth

        def start(root):
            if root.uri != NS_HTTPBIND or root.name != "body":
                raise BOSHError("bad-request", "the request must be a <body/> of %s"
                                % (NS_HTTPBIND,))
            parsed.body = root
            session = self.sessions.get(root.getAttribute("sid") or "")
            if session is not None:
                parsed.session = session
                parser.maxStanzaSize = session.stream.maxStanzaSize

        def element(child):
            _clientNamespace(child)
            parsed.payloads.append(child)

        def end():
            parsed.complete = True

        parser.DocumentStartEvent = start
        parser.ElementEvent = element
        parser.DocumentEndEvent = end
        try:
            parser.parse(data)
        except PolicyViolation as e:
            raise BOSHError("policy-violation", str(e)) from None
        except domish.ParserError as e:
            raise BOSHError("bad-request", "not XML: %s" % (e,)) from None
        if not parsed.complete:
            raise BOSHError("bad-request", "the request is not one whole <body/>")

    def create(self, request, body: domish.Element):
        """A session creation request (XEP-0124 §7.1, XEP-0206 §4)."""
        config = self.config
        rid = _integer(body.getAttribute("rid"))
        if rid is None or rid == 0 or rid > MAX_RID:
            raise BOSHError("bad-request", "rid must be a positive integer")
        wait = _integer(body.getAttribute("wait"))
        hold = _integer(body.getAttribute("hold"))
        if (wait is None and body.getAttribute("wait") is not None) or \
                (hold is None and body.getAttribute("hold") is not None):
            raise BOSHError("bad-request", "wait and hold must be non-negative integers")
        wait = config.bosh_max_wait if wait is None else min(wait, config.bosh_max_wait)
        hold = 1 if hold is None else min(hold, config.bosh_max_hold)
        if wait == 0:
            hold = 0
        to = body.getAttribute("to")
        if not to:
            raise BOSHError("improper-addressing", "the session request needs 'to'")
        try:
            domain = prepDomainpart(to)
        except InvalidJID:
            domain = None
        factory = self.factory
        if domain not in factory.domains:
            raise BOSHError("host-unknown", "this server does not serve %s" % (to,))
        host = getattr(request, "clientHost", None) or "local"
        if not factory.peers.acquire(host):
            factory.metrics.reject("connections_per_ip")
            self.log.info("Refusing BOSH session of {host}: too many connections from it",
                          host=host, event="abuse", limit="connections_per_ip")
            raise BOSHError("policy-violation", "too many connections from your address")
        if factory.newConnections is not None and not factory.newConnections.tryConsume(1):
            factory.peers.release(host)
            factory.metrics.reject("new_connections_per_second")
            raise BOSHError("policy-violation", "too many new connections, try again later")
        stream = BOSHClientStream(factory, getattr(request, "viaTLS", False))
        stream.peerKey = host
        legacy = body.getAttribute("ver") is None
        session = BOSHSession(self, stream, request, body, rid, wait, hold, legacy)
        while session.sid in self.sessions:
            session.sid = secrets.token_hex(16)
        self.sessions[session.sid] = session
        session.busy = True
        try:
            stream.makeConnection(session)
            stream.onDocumentStart(streamHeader(body, domain))
        finally:
            session.busy = False
        if session.ended:
            # The stream refused at once (a draining node): say how.
            data = session.terminal
            self.forget(session)
            self.finish(request, data)
            return NOT_DONE_YET
        attrs = {"sid": session.sid, "wait": str(wait), "requests": str(session.requests),
                 "hold": str(hold), "polling": str(session.polling),
                 "inactivity": str(session.inactivity),
                 "maxpause": str(config.bosh_max_pause), "ack": str(rid),
                 "from": domain, "authid": stream.streamId, "xmpp:version": "1.0",
                 "xmpp:restartlogic": "true", "xmlns:xmpp": NS_XBOSH}
        if self.secure(request):
            attrs["secure"] = "true"
        ver = body.getAttribute("ver")
        if ver is not None:
            attrs["ver"] = "%d.%d" % min(VERSION, _version(ver))
        payload, session.outbox = "".join(session.outbox), []
        data = bodyXML(attrs, payload)
        session.keep(rid, data)
        session.armInactivity()
        self.log.debug("BOSH session {sid} for {peer}", sid=session.sid, peer=host)
        self.finish(request, data)
        return NOT_DONE_YET

    @staticmethod
    def secure(request) -> bool:
        return bool(getattr(request, "viaTLS", False))

    def forget(self, session: BOSHSession) -> None:
        if self.sessions.get(session.sid) is session:
            del self.sessions[session.sid]
        if session.inactivityTimer is not None and session.inactivityTimer.active():
            session.inactivityTimer.cancel()
        session.inactivityTimer = None

    def refuse(self, request, condition: str, legacy: bool) -> bytes:
        """A terminal binding condition; a legacy client's HTTP status (§17.1)."""
        if legacy and condition in LEGACY_STATUS:
            request.setResponseCode(LEGACY_STATUS[condition])
        request.setHeader(b"content-type", b"text/xml; charset=utf-8")
        return bodyXML({"type": "terminate", "condition": condition}, "")

    @staticmethod
    def finish(request, data: bytes) -> None:
        """Send an answer, unless its connection went meanwhile."""
        if request is None or request.finished or getattr(request, "_disconnected", False):
            return
        request.setHeader(b"content-type", b"text/xml; charset=utf-8")
        request.setHeader(b"content-length", b"%d" % (len(data),))
        request.write(data)
        request.finish()


def _version(text: str) -> tuple[int, int]:
    """A C{ver} attribute ("1.6"); a malformed one counts as ours."""
    major, _, minor = text.partition(".")
    if major.isdigit() and minor.isdigit() and len(major) < 5 and len(minor) < 5:
        return int(major), int(minor)
    return VERSION
