# -*- test-case-name: tests.test_sm -*-
"""
Stream management (XEP-0198): acknowledgements, resumption, and what
happens to the stanzas a client never acknowledged.

Enabling (§3): C{<sm xmlns='urn:xmpp:sm:3'/>} is offered once the client has
authenticated (§2).  C{<enable/>} is answered with C{<enabled/>} only on a
bound stream, once (§3, §6: C{<failed/>} with C{unexpected-request}
otherwise).  With C{resume='true'} and a C{[sm] resume_timeout} above zero
the answer carries an SM-ID and C{max}, the seconds the server keeps the
session (the client's own C{max}, if lower, wins).

Counting (§4): C{h} counts the stanzas the client sent that the server
I{handled}, "accepted responsibility for".  Here that is issue 5's
durability contract: a stanza is handled once routing returned and every
Deferred its takers hold it with (L{xmppd.core.stanzas.hold}) has fired (an
offline write is on disk).  Stanzas complete in the order they came, so
C{h} is the length of the completed prefix; an C{<r/>} that arrives while
writes are pending is answered when the stanzas before it have completed
(withholding the answer until then is the point; storage bounds the wait).
An acceptance Deferred that fails counts as handled too: by the contract,
its feature has already bounced the stanza to its sender with an error,
which is taking responsibility for it.  A stanza forwarded to another node
of a cluster is complete once Redis confirmed the script that carried it
(L{xmppd.core.stanzas.acknowledgeAfter}); the client's next stanzas are
processed meanwhile, so C{h} may lag behind what was processed.  Past a
quarter of C{max_unacked} such stanzas the stream stops reading until
they are down to an eighth (a client faster than Redis waits).

Every stanza the server sends the client is kept, serialized, until an
C{<a/>} covers it; the server asks for one (C{<r/>}) whenever stanzas are
unacknowledged and no request is outstanding, so the queue stays short
without one request per stanza.  An C{h} beyond what was sent closes the
stream with C{undefined-condition} and C{<handled-count-too-high/>} (§6);
over C{[sm] max_unacked} unacknowledged stanzas the stream is closed with
C{policy-violation}, a limit of local policy (RFC 6120 §4.9.3.14; XEP-0198
names none).

A sender that may forget a stanza only once it is settled (the cluster's
inbox, L{xmppd.cluster.transport}) asks the session's stream management to
tell it (L{StreamManagement.settleAfterNext}): when an C{<a/>} covers the
stanza, or, if the session ends first, when the stanza has been re-routed
as below and accepted where it went.  A lone node never asks, and pays one
test per C{<a/>} for it.

Resumption (§5): when the connection of a resumable stream breaks (no
C{</stream:stream>}, no stream error of ours but C{connection-timeout}) the
session stays bound, detached, for C{resume_timeout} seconds: stanzas for it
are queued as unacknowledged, its presence stands, and C{"session/closed"}
is not fired.  A new stream of the same account sends C{<resume/>} after
SASL instead of binding; the server drops what its C{h} acknowledges,
answers C{<resumed/>} with its own C{h} (once every stanza received before
the break is handled), and sends the rest again, once.  A session whose old
stream is somehow still open is taken from it with a C{conflict} stream
error (§5).  An unknown or expired SM-ID, or another account's, gets
C{<failed><item-not-found/></failed>} and the client may bind as usual.

When a session ends without resumption (the timeout, a clean close, a
stream error, a new bind of the same resource), the stanzas it never
acknowledged are treated "in the same way as a stanza sent to an
unavailable resource" (§4), once the session is unbound:

  - a message ("chat", "normal", "headline") is marked C{replayed} and
    C{fromUnacked} (issue 5's contract), stamped with an XEP-0203 C{<delay/>}
    from the domain unless it has one, and routed to the account's bare JID,
    so RFC 6121 §8.5.2 gives it to another available resource, or to
    offline storage; re-routed once, never dropped.  A message first sent
    to the bare JID may have reached another resource too: the server
    cannot know whether it did, and a copy marked with C{<delay/>} beats a
    lost message.  "groupchat" and "error"
    are dropped (§8.5.3.2.1: a room's message to a resource that is gone;
    an error to an error), and so are carbon copies (XEP-0280) and archive
    results (XEP-0313): their originals live elsewhere;
  - an IQ request is answered with C{service-unavailable}, RFC 6121
    §8.5.3.2.1's answer for an IQ to a resource that is gone;
  - presence, and IQ results and errors, are dropped.

Implements: XEP-0198 1.6
"""

from __future__ import annotations

import collections
import dataclasses
import math
import secrets
import time

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.words.protocols.jabber.xmlstream import XMPPHandler
from twisted.words.xish import domish

from xmppd.core.events import SESSION_QUEUED, QueuedEvent, UnsentEvent
from xmppd.core.hooks import DELIVER
from xmppd.core.ordering import whenLetGo
from xmppd.c2s.stream import ClientStream
from xmppd.stream.elements import serialize
from xmppd.config import integer, number, option, section
from xmppd.core.jid import InvalidJID, parseJID
from xmppd.core.stanzas import NS_STANZAS, STANZA_NAMES, StanzaText, errorReply, holders, meta

NS_SM = "urn:xmpp:sm:3"
NS_DELAY = "urn:xmpp:delay"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_MAM = "urn:xmpp:mam:2"
NS_STREAMS = "http://etherx.jabber.org/streams"

#: §4: 'h' is an xs:unsignedInt that wraps to zero after 2^32 - 1.
MODULO = 2 ** 32
#: Once C{max_unacked / HOLD_READING} of a client's stanzas are processed
#: but not yet complete (forwards Redis has not confirmed: they do not
#: hold the sender's next stanzas), the stream stops reading, and reads
#: again at C{max_unacked / RELEASE_READING}: a client faster than Redis
#: waits rather than reaching C{max_unacked} and losing its stream.
HOLD_READING = 4
RELEASE_READING = 8


@section("sm")
@dataclasses.dataclass(frozen=True)
class SMConfig:
    resume_timeout: float = option(
        300.0, number(minimum=0),
        "seconds a session whose connection broke is kept for the client to "
        "resume it (XEP-0198); 0 offers no resumption")
    max_unacked: int = option(
        1000, integer(minimum=1),
        "stanzas the server keeps unacknowledged for one session; over it the "
        "stream is closed with policy-violation")


def stamp(seconds: float) -> str:
    """XEP-0082 DateTime in UTC, as XEP-0203 wants for C{<delay/>}."""
    whole = int(seconds)
    millis = int((seconds - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + ".%03dZ" % millis


def parseStanza(text: str) -> domish.Element | None:
    """A stanza back from its serialized form (as L{xmppd.stream.elements.serialize} wrote it)."""
    result = []
    stream = domish.elementStream()
    stream.DocumentStartEvent = lambda root: None
    stream.ElementEvent = result.append
    stream.DocumentEndEvent = lambda: None
    try:
        stream.parse(("<s xmlns='jabber:client' xmlns:stream='%s'>%s</s>"
                      % (NS_STREAMS, text)).encode("utf-8"))
    except Exception:
        return None
    return result[0] if len(result) == 1 else None


def parseCounter(value: str | None) -> int | None:
    """An 'h' attribute (xs:unsignedInt), or None when it is not one."""
    if value is None or not value.isdigit():
        return None
    number = int(value)
    return number if number < MODULO else None


def failed(condition: str) -> domish.Element:
    element = domish.Element((NS_SM, "failed"))
    element.addElement((NS_STANZAS, condition))
    return element


class DetachedStream:
    """
    What a detached session's C{stream} is while nobody is connected: it
    queues what is sent to the session, and ends the session when a feature
    would close the stream (an account removed, a resource bound again).
    """

    __slots__ = ("sm",)

    #: It takes stanzas until the session ends.
    closing = False
    #: Nothing is read, so nothing is paused (L{ClientStream.holdReading}).
    ackPaused = False

    def __init__(self, sm: "StreamManagement"):
        self.sm = sm

    @property
    def lastReceived(self) -> float:
        """Always now: nobody is there to ping (XEP-0199), the timeout runs instead."""
        return self.sm.handler.domain.clock.seconds()

    def send(self, obj) -> None:
        if isinstance(obj, domish.Element) and obj.name in STANZA_NAMES:
            self.sm.stanzaSent(serialize(obj))
        elif type(obj) is StanzaText:
            self.sm.stanzaSent(obj)
        else:
            return
        # Someone (push notifications, XEP-0357) wants to know what the
        # client is missing; nobody listening costs one lookup.
        hooks = self.sm.handler.domain.hooks
        if hooks.has(SESSION_QUEUED):
            hooks.notify(SESSION_QUEUED, QueuedEvent(self.sm.session, obj))

    def streamError(self, condition: str, text: str | None = None, appCondition=None) -> None:
        self.sm.end()

    def replaceSession(self) -> None:
        self.sm.end()


class StreamManagement:
    """
    One session's stream management: made on C{<enable/>}, put in the
    stream's C{sm} slot, and moved with the session when it is resumed.
    Counters are kept as plain integers and written modulo 2^32.
    """

    __slots__ = ("handler", "stream", "session", "id", "timeout", "handled", "pending",
                 "watched", "advancing", "acksDue", "sent", "acked", "unacked",
                 "requested", "timer", "resuming", "ended", "settling")

    log = Logger()

    def __init__(self, handler: "StreamManagementHandler", stream):
        self.handler = handler
        self.stream = stream
        self.session = stream.session
        #: The SM-ID when the session may be resumed, else None.
        self.id: str | None = None
        self.timeout = 0.0
        #: Inbound: stanzas handled (the completed prefix), and the
        #: acceptance lists of those received but not complete yet.
        self.handled = 0
        self.pending: collections.deque[list] = collections.deque()
        #: How many Deferreds of the first pending list have a watcher.
        self.watched = 0
        self.advancing = False
        #: For each <r/> not answered yet, the count of handled stanzas it waits for.
        self.acksDue: list[int] | None = None
        #: Outbound: stanzas sent, the client's last 'h', and what it does
        #: not cover yet as (when, serialized stanza), oldest first.
        self.sent = 0
        self.acked = 0
        self.unacked: collections.deque[tuple[float, str]] = collections.deque()
        self.requested = False
        self.timer = None
        #: (stream, h) of a <resume/> waiting for pending stanzas to complete.
        self.resuming = None
        self.ended = False
        #: (sequence number, waiter) of stanzas whose sender wants to know
        #: when they are settled (L{settleAfterNext}), oldest first; None
        #: until one does, so a lone node pays nothing for it.
        self.settling: collections.deque | None = None

    @property
    def clock(self):
        return self.handler.domain.clock

    # -- inbound ---------------------------------------------------------------

    def stanzaHandled(self, stanza: domish.Element) -> None:
        """The stream routed C{stanza}; count it once what it waits for is done."""
        acceptance = holders(stanza)
        if not self.pending and (not acceptance or all(d.called for d in acceptance)):
            self.handled += 1
            return
        # The list itself is kept: a taker may still add to it later on,
        # from within the processing of one that is already there.
        pending = self.pending
        behind = bool(pending)
        pending.append(acceptance if acceptance is not None else [])
        if len(pending) > self.handler.maxUnacked:
            self.stream.streamError("resource-constraint",
                                    "too many stanzas waiting to be stored")
            return
        if len(pending) >= self.handler.maxUnacked // HOLD_READING and isinstance(
                self.stream, ClientStream):
            self.stream.holdReading()
        if not behind:
            self.advance()
        # Else the first pending stanza is not complete, and one of its
        # Deferreds is watched: when it fires, advance() looks at the rest
        # (a burst of forwards waiting for one confirmation costs an append
        # each, not a walk).

    def advance(self) -> None:
        """Move C{handled} over the pending stanzas that have completed, in order."""
        if self.advancing:
            return
        self.advancing = True
        try:
            pending = self.pending
            while pending:
                acceptance = pending[0]
                while self.watched < len(acceptance):
                    d = acceptance[self.watched]
                    self.watched += 1
                    if not d.called:
                        d.addBoth(self.settled)
                if not all(d.called for d in acceptance):
                    break
                pending.popleft()
                self.watched = 0
                self.handled += 1
        finally:
            self.advancing = False
        stream = self.stream
        if stream.ackPaused and len(self.pending) <= self.handler.maxUnacked // RELEASE_READING:
            stream.releaseReading()
        self.answerDue()

    def settled(self, result):
        if isinstance(result, Failure):
            # The contract: the taker has answered the sender with an error.
            self.log.info("A stanza of {jid} was not accepted: {error}",
                          jid=self.session.jid.full(), error=result.getErrorMessage())
            result = None
        self.advance()
        return result

    def answerDue(self) -> None:
        due = self.acksDue
        while due and due[0] <= self.handled:
            due.pop(0)
            self.sendAck()
        if self.resuming is not None and not self.pending:
            (stream, announce), self.resuming = self.resuming, None
            self.finishResume(stream, announce)

    def onRequest(self) -> None:
        """§4: an <r/> is answered with the count of handled stanzas."""
        if not self.pending:
            self.sendAck()
            return
        if self.acksDue is None:
            self.acksDue = []
        self.acksDue.append(self.handled + len(self.pending))

    def sendAck(self) -> None:
        if isinstance(self.stream, ClientStream):
            ack = domish.Element((NS_SM, "a"))
            ack["h"] = str(self.handled % MODULO)
            self.stream.send(ack)

    # -- outbound ----------------------------------------------------------------

    def stanzaSent(self, text: str) -> None:
        """A stanza went to the client (or was queued for it while detached)."""
        self.sent += 1
        self.unacked.append((self.clock.seconds(), text))
        if len(self.unacked) > self.handler.maxUnacked:
            self.log.info("{jid} left over {limit} stanzas unacknowledged",
                          jid=self.session.jid.full(), limit=self.handler.maxUnacked)
            if isinstance(self.stream, ClientStream):
                self.stream.streamError("policy-violation", "too many unacknowledged stanzas")
            else:
                self.end()
            return
        self.request()

    def request(self) -> None:
        """Ask for an ack unless one is on its way (§4)."""
        if not self.requested and self.unacked and isinstance(self.stream, ClientStream):
            self.requested = True
            self.stream.send(domish.Element((NS_SM, "r")))

    def acknowledge(self, h: int) -> bool:
        """
        Drop the stanzas the client's 'h' covers; False when it covers more
        than were sent (§6: handled-count-too-high).
        """
        count = (h - self.acked) % MODULO
        if count > len(self.unacked):
            return False
        for _ in range(count):
            self.unacked.popleft()
        self.acked += count
        settling = self.settling
        if settling:
            acked = self.acked
            while settling and settling[0][0] <= acked:
                settling.popleft()[1].settle()
        return True

    def settleAfterNext(self, waiter) -> bool:
        """
        Call C{waiter.settle()} once the next stanza sent to this session is
        settled: the client acknowledged it (an C{h} covering it), or the
        session ended and it was re-routed and accepted where it went (see
        L{sessionEnded}).  For a sender that may forget a stanza only then
        (the cluster's inbox, L{xmppd.cluster.transport}): call before
        sending.  When C{waiter} already waits on the previous stanza sent
        here, it now waits on this one instead, and the answer is False: it
        is settled once, for both (acknowledgements are cumulative).
        """
        sequence = self.sent + 1
        settling = self.settling
        if settling is None:
            settling = self.settling = collections.deque()
        elif settling and settling[-1][1] is waiter:
            settling[-1] = (sequence, waiter)
            return False
        settling.append((sequence, waiter))
        return True

    def onAck(self, h: int) -> None:
        if not self.acknowledge(h):
            self.tooHigh(self.stream, h)
            return
        self.requested = False
        self.request()

    def tooHigh(self, stream, h: int) -> None:
        """§6: the peer acknowledged more stanzas than it was sent."""
        condition = domish.Element((NS_SM, "handled-count-too-high"))
        condition["h"] = str(h)
        condition["send-count"] = str(self.sent % MODULO)
        stream.streamError("undefined-condition",
                           "you acknowledged more stanzas than were sent", condition)

    # -- resumption --------------------------------------------------------------

    def streamLost(self) -> bool:
        """The stream's connection broke: keep the session for resumption?"""
        if self.id is None or self.ended or self.handler.stopping:
            return False
        self.detach()
        self.timer = self.clock.callLater(self.timeout, self.end)
        hooks = self.handler.domain.hooks
        if self.unacked and hooks.has(SESSION_QUEUED):
            # The messages the client never acknowledged are missed as much
            # as those that come from now on (push notifications).
            for _, text in list(self.unacked):
                if text.startswith("<message"):
                    stanza = parseStanza(text)
                    if stanza is not None:
                        hooks.notify(SESSION_QUEUED, QueuedEvent(self.session, stanza))
        return True

    def detach(self) -> None:
        self.stream = DetachedStream(self)
        self.session.stream = self.stream
        # An <r/> of ours or of the client's died with the connection;
        # <resumed/> carries the counts instead.
        self.requested = False
        self.acksDue = None

    def resume(self, stream: ClientStream, h: int, announce=None) -> None:
        """
        A new stream asks for this session (the checks are done).  With
        C{announce}, the resumption was asked inline in SASL2: instead of
        being sent, C{<resumed/>} goes to C{announce(resumed, resend)}, and
        the stanzas to send again wait until its caller calls C{resend()}.
        """
        old = self.stream
        if isinstance(old, ClientStream):
            # §5: the old stream is still open on our side; it loses.
            old.releaseSession()
            self.detach()
            old.streamError("conflict", "the session was resumed on another connection")
        self.acknowledge(h)
        if self.resuming is not None:
            # Two resumptions racing: the newer one wins.
            (earlier, _), self.resuming = self.resuming, None
            earlier.streamError("conflict", "the session was resumed again")
        if self.pending:
            # Stanzas received before the break are still being stored: the
            # 'h' of <resumed/> must count them, or the client sends them
            # twice.  The timeout still runs, so the wait is bounded.
            self.resuming = (stream, announce)
            if self.timer is None:
                self.timer = self.clock.callLater(self.timeout, self.end)
            return
        self.finishResume(stream, announce)

    def finishResume(self, stream: ClientStream, announce=None) -> None:
        if stream.closing:
            return  # That connection is gone too; the timeout still runs.
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None
        stream.attachSession(self.session)
        stream.sm = self
        self.stream = stream
        resumed = domish.Element((NS_SM, "resumed"))
        resumed["previd"] = self.id
        resumed["h"] = str(self.handled % MODULO)
        self.handler.log.info("{jid} resumed its session with {count} stanzas to send again",
                              jid=self.session.jid.full(), count=len(self.unacked))

        def resend():
            # §5: what the client did not acknowledge is sent again, once; the
            # stanzas keep their sequence numbers, so they are not counted again:
            # sent as plain text, which a stream writes without counting (a
            # StanzaText would be counted, and appended to the deque read here).
            if self.stream is not stream:
                return
            for _, text in list(self.unacked):
                stream.send(str(text))
            self.request()
        if announce is not None:
            announce(resumed, resend)
            return
        stream.send(resumed)
        resend()

    # -- the end -------------------------------------------------------------------

    def end(self) -> None:
        """End a detached session: the timeout, or a feature closing it."""
        if self.ended or isinstance(self.stream, ClientStream):
            return
        if self.resuming is not None:
            (stream, _), self.resuming = self.resuming, None
            stream.streamError("conflict", "the session ended")
        session = self.session
        hooks = self.handler.domain.hooks
        hooks.notify("session/closed", session)
        self.handler.domain.sessions.unbind(session)
        self.sessionEnded(session)

    def sessionEnded(self, session) -> None:
        """The session is over and unbound: re-route what the client never acknowledged."""
        if self.ended:
            return
        self.ended = True
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None
        if self.id is not None:
            self.handler.forget(self)
        unacked, self.unacked = self.unacked, collections.deque()
        rerouted = self.handler.reroute(session, unacked) if unacked else []
        settling, self.settling = self.settling, None
        if settling:
            # What waited for an acknowledgement is settled once what was
            # re-routed is accepted where it went (offline storage written).
            whenLetGo(rerouted, lambda: [waiter.settle() for _, waiter in settling])


class StreamManagementHandler(XMPPHandler):
    """XEP-0198 for the client streams of one domain; see the module docstring."""

    log = Logger()

    def __init__(self, domain):
        XMPPHandler.__init__(self)
        self.domain = domain
        #: SM-ID -> the resumable sessions of this domain, attached or not.
        self.resumable: dict[str, StreamManagement] = {}
        #: The listeners are stopping (C{c2s/shutdown}): a stream lost from
        #: now on ends its session instead of keeping it for a resumption
        #: that cannot come, while storage is still open.
        self.stopping = False

    @property
    def maxUnacked(self) -> int:
        return self.domain.config.sm.max_unacked

    def register(self) -> None:
        hooks = self.domain.hooks
        hooks.add("c2s/features", self.onFeatures, DELIVER)
        hooks.add("c2s/nonza", self.onNonza, DELIVER)
        # Inline in SASL2 and Bind 2 (§5 and §3 "inline"; L{xmppd.c2s.sasl2}).
        hooks.add("sasl2/features", self.onSASL2Features, DELIVER)
        hooks.add("sasl2/inline", self.onSASL2Inline, DELIVER)
        hooks.add("bind2/inline", self.onBind2Inline, DELIVER)
        hooks.add("c2s/shutdown", self.onStopping, DELIVER)
        # A BOSH session that ended with stanzas never sent, without XEP-0198.
        hooks.add("session/unsent", self.onUnsent, DELIVER)
        # A draining node's clients go elsewhere and cannot resume here.
        hooks.add("c2s/draining", self.onShutdown, DELIVER)

    def onFeatures(self, event) -> None:
        stream = event.stream
        # §2: offered only once the client has authenticated, and not
        # again once it is enabled (inline, in Bind 2).
        if stream.username is not None and stream.domain == self.domain.domain \
                and stream.sm is None:
            event.features.addElement((NS_SM, "sm"))

    def onNonza(self, event):
        element, stream = event.stanza, event.stream
        if element.uri != NS_SM or stream.domain != self.domain.domain:
            return None
        if stream.username is None:
            return None  # Before authentication: not-authorized, from the stream.
        name = element.name
        if name == "enable":
            self.onEnable(stream, element)
        elif name == "resume":
            self.onResume(stream, element)
        elif stream.sm is None:
            return None
        elif name == "r":
            stream.sm.onRequest()
        elif name == "a":
            h = parseCounter(element.getAttribute("h"))
            if h is None:
                stream.streamError("bad-format", "'h' must be an unsigned integer")
            else:
                stream.sm.onAck(h)
        else:
            return None
        return True

    def onSASL2Features(self, event) -> None:
        """Offer resumption inside SASL2 and enabling inside Bind 2."""
        if event.stream.domain == self.domain.domain:
            event.inline.addElement((NS_SM, "sm"))
            event.bindFeatures.append(NS_SM)

    def onSASL2Inline(self, event):
        """
        A C{<resume/>} inside C{<authenticate/>}: C{<resumed/>} (or
        C{<failed/>}) goes inside the C{<success/>}, and the stanzas to
        send again follow it.
        """
        stream = event.stream
        if stream.domain != self.domain.domain:
            return None
        element = next(event.request.elements(NS_SM, "resume"), None)
        if element is None:
            return None
        sm = self.resumable.get(element.getAttribute("previd") or "")
        if sm is None or sm.ended or not self.sameAccount(sm.session, stream):
            event.answer(failed("item-not-found"))
            return None
        h = parseCounter(element.getAttribute("h"))
        if h is None:
            event.answer(failed("bad-request"))
            return None
        if (h - sm.acked) % MODULO > len(sm.unacked):
            sm.tooHigh(stream, h)
            return None
        done = Deferred()

        def announce(resumed, resend):
            event.answer(resumed)
            event.resumed = True
            event.afterSuccess(resend)
            done.callback(None)
        sm.resume(stream, h, announce)
        return done

    def onBind2Inline(self, event) -> None:
        """An C{<enable/>} inside a Bind 2 C{<bind/>}: C{<enabled/>} goes in C{<bound/>}."""
        stream = event.stream
        if stream.domain != self.domain.domain:
            return
        element = next(event.request.elements(NS_SM, "enable"), None)
        if element is not None:
            self.onEnable(stream, element, event.bound.addChild)

    def onEnable(self, stream: ClientStream, element: domish.Element, answer=None) -> None:
        if answer is None:
            answer = stream.send
        # §3: after resource binding, and once per stream.
        if stream.session is None or stream.sm is not None:
            answer(failed("unexpected-request"))
            return
        sm = StreamManagement(self, stream)
        enabled = domish.Element((NS_SM, "enabled"))
        timeout = self.domain.config.sm.resume_timeout
        if element.getAttribute("resume") in ("true", "1") and timeout > 0:
            wanted = parseCounter(element.getAttribute("max"))
            if wanted:
                timeout = min(timeout, wanted)
            sm.id = secrets.token_urlsafe(18)
            sm.timeout = timeout
            self.resumable[sm.id] = sm
            enabled["id"] = sm.id
            enabled["resume"] = "true"
            enabled["max"] = str(math.ceil(timeout))
        answer(enabled)
        stream.sm = sm

    def onResume(self, stream: ClientStream, element: domish.Element) -> None:
        if stream.session is not None or stream.sm is not None:
            # §5: resumption takes the place of binding.
            stream.send(failed("unexpected-request"))
            return
        sm = self.resumable.get(element.getAttribute("previd") or "")
        # Only the account that had the session may resume it (§9); any
        # other sees the same answer as for an SM-ID that never existed.
        if sm is None or sm.ended or not self.sameAccount(sm.session, stream):
            stream.send(failed("item-not-found"))
            return
        h = parseCounter(element.getAttribute("h"))
        if h is None:
            stream.send(failed("bad-request"))
            return
        if (h - sm.acked) % MODULO > len(sm.unacked):
            sm.tooHigh(stream, h)
            return
        sm.resume(stream, h)

    @staticmethod
    def sameAccount(session, stream: ClientStream) -> bool:
        try:
            account = parseJID("%s@%s" % (stream.username, stream.domain))
        except InvalidJID:
            return False
        return account.userhost() == session.jid.userhost()

    def forget(self, sm: StreamManagement) -> None:
        if self.resumable.get(sm.id) is sm:
            del self.resumable[sm.id]

    def onStopping(self, event) -> None:
        """
        The server stops: detached sessions end now, and so does every
        session whose stream is lost from now on (streams still closing
        when this is notified), while storage is still there.
        """
        self.stopping = True
        self.onShutdown(event)

    def onShutdown(self, event) -> None:
        """
        The server stops, or drains: detached sessions end now, while storage
        is still there (what they never acknowledged is sent on).
        """
        for sm in list(self.resumable.values()):
            sm.end()

    # -- what the client never acknowledged -----------------------------------------

    def onUnsent(self, event: UnsentEvent) -> None:
        """
        A session without stream management ended with stanzas its
        transport never sent (a BOSH session that timed out): the server
        knows for certain they were not delivered, so they go on as
        unacknowledged ones do, not lost with the session.
        """
        self.reroute(event.session, [(event.when, text) for text in event.texts])

    def reroute(self, session, unacked) -> list[domish.Element]:
        """
        See the module docstring (XEP-0198 §4, RFC 6121 §8.5.3.2.1).  The
        stanzas routed, for their holders (L{xmppd.core.stanzas.hold}).
        """
        bare = session.jid.userhost()
        route = self.domain.router.route
        routed = []
        rerouted = 0
        for when, text in unacked:
            stanza = parseStanza(text)
            if stanza is None:
                continue
            if stanza.name == "iq":
                if stanza.getAttribute("type") in ("get", "set"):
                    reply = errorReply(stanza, "service-unavailable")
                    if reply is not None:
                        route(reply)
                        routed.append(reply)
            elif stanza.name == "message" and self.mayReroute(stanza):
                found = meta(stanza)
                found.replayed = found.fromUnacked = True
                if not any(child.uri == NS_DELAY and child.name == "delay"
                           for child in stanza.elements()):
                    delay = stanza.addElement((NS_DELAY, "delay"))
                    delay["from"] = self.domain.domain
                    delay["stamp"] = stamp(when)
                stanza["to"] = bare
                route(stanza)
                routed.append(stanza)
                rerouted += 1
        if rerouted:
            self.log.info("{count} unacknowledged messages of {jid} sent on to {bare}",
                          count=rerouted, jid=session.jid.full(), bare=bare)
        return routed

    @staticmethod
    def mayReroute(message: domish.Element) -> bool:
        if message.getAttribute("type") in ("groupchat", "error"):
            return False
        for child in message.elements():
            if child.uri == NS_CARBONS and child.name in ("sent", "received"):
                return False
            if child.uri == NS_MAM and child.name == "result":
                return False
        return True


def makeHandler(domain) -> StreamManagementHandler:
    handler = StreamManagementHandler(domain)
    handler.register()
    return handler
