# -*- test-case-name: tests.test_ordering -*-
"""
In-order processing (RFC 6120 §10.1): what one sender sends over one input
stream is processed in the order it was sent, even when an element waits on
storage or another asynchronous step on its way.

The rule: an element is still being processed while something holds it
(L{xmppd.core.stanzas.hold}; a hook chain that waits holds its stanza, a
route that queues a stanza holds it).  A L{Confirmation} is not a hold
here: it delays only stream management's acknowledgement (a stanza
forwarded to another node of a cluster, confirmed by Redis after the
reactor turn), and the sender's next stanzas go on meanwhile.  While an element of an input is still
being processed, the input's later elements wait in a L{Backlog}, and are
processed, in order, once every holder has let go.  So a join presence
whose hook chain reads storage is in the room before the groupchat message
sent right after it is handled, whatever waited, whatever the route.

What waits together is one I{input}: a client stream (one sender), or one
sender's full JID on a stream many senders share (a server-to-server or
component stream), where one sender's slow stanza must not stop the
others (L{Senders}).

Cost: nothing when nothing waits.  The check after an element is one dict
look-up on the element (no hold: no marks), and a L{Backlog} is made only
while something is pending and dropped once it has drained.

Bounds: a stream pauses reading while its backlog holds anything (the
owner's C{pause}/C{resume}), so what queues is at most what the last read
brought;
past L{MAX_BACKLOG} elements the owner's C{overflow} is called (the streams
close with the stream error C{policy-violation}).  A wait never lasts more
than L{PROCESSING_TIMEOUT} seconds: a stanza whose processing never ends
(a holder that is never let go, an error nobody answered) is logged and the
input goes on with the next one, so one stanza can not stop a sender for
ever.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Hashable

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.protocols.jabber.xmlstream import toResponse
from twisted.words.xish import domish, xpath
from wokkel.subprotocols import IQHandlerMixin

from xmppd.core.stanzas import Confirmation, hold, holders

#: Elements one input may have waiting before its stream is closed.
MAX_BACKLOG = 1000
#: Seconds an input waits for one element's processing before going on.
PROCESSING_TIMEOUT = 30.0


def unfinished(element: domish.Element) -> list[defer.Deferred] | None:
    """
    The holders of C{element} that have not let go yet, or C{None} when its
    processing is over.  Allocates nothing for an element nobody held.
    """
    acceptance = holders(element)
    if not acceptance:
        return None
    # A Confirmation is for stream management's acknowledgement only
    # (L{xmppd.core.stanzas.acknowledgeAfter}): the stanza is processed.
    pending = [held for held in acceptance
               if not held.called and type(held) is not Confirmation]
    return pending or None


def whenLetGo(elements, callback: Callable[[], None]) -> None:
    """
    Call C{callback()} once every holder of each of C{elements} has let go,
    stream management's L{Confirmation}s included, and holders added
    meanwhile (a hook chain's next write) too; at once when none holds
    one.  For what hands a stanza on and may forget it only once its takers
    have it for good (the cluster's inbox, L{xmppd.cluster.transport}): an
    offline write on disk, another node's inbox in Redis.  A holder's
    failure is passed on untouched: by the contract its sender was answered.
    """
    index = 0

    def check(result=None):
        nonlocal index
        while index < len(elements):
            for held in holders(elements[index]) or ():
                if not held.called:
                    held.addBoth(check)
                    return result
            index += 1
        callback()
        return result

    check()


class Backlog:
    """
    The elements an input received while an earlier one was still being
    processed (see the module docstring).  Made by the input's owner when
    an element turns out L{unfinished}; it calls C{handle(element)} for each
    queued element in order, waits again whenever one is unfinished, and
    calls C{drained()} once nothing is left (the owner then forgets it).
    """

    log = Logger()

    __slots__ = ("handle", "drained", "clock", "overflow", "queue", "waitingFor",
                 "timer", "draining", "limit", "timeout", "description", "paused")

    def __init__(self, handle: Callable[[Any], None], drained: Callable[[], None], clock,
                 overflow: Callable[[], None] | None = None, limit: int = MAX_BACKLOG,
                 timeout: float = PROCESSING_TIMEOUT, description: str = "an input"):
        self.handle = handle
        self.drained = drained
        self.clock = clock
        self.overflow = overflow
        self.limit = limit
        self.timeout = timeout
        self.description = description
        self.queue: deque = deque()
        #: The element whose holders are awaited, and its timeout call.
        self.waitingFor: Any = None
        self.timer = None
        self.draining = False
        #: Whether the owner stopped reading for this backlog (it does so
        #: only once something queues: most waits end before the next read).
        self.paused = False

    def __len__(self) -> int:
        return len(self.queue)

    def add(self, element: Any) -> bool:
        """
        Queue C{element} behind what waits; False (and C{overflow()}) when
        the backlog is full, so the caller drops it.
        """
        if len(self.queue) >= self.limit:
            self.log.warn("Over {limit} elements waiting on {input}", limit=self.limit,
                          input=self.description)
            if self.overflow is not None:
                self.overflow()
            return False
        self.queue.append(element)
        return True

    def end(self, marker: Any) -> None:
        """
        Queue C{marker}, the end of the input (its footer, its lost
        connection), behind what waits.  Not counted against the bound:
        nothing comes after it.
        """
        self.queue.append(marker)

    def dropQueued(self) -> None:
        """Forget what waits behind the element being processed (a stream error ends the input)."""
        self.queue.clear()

    def wait(self, element: Any, pending: list[defer.Deferred]) -> None:
        """Wait until C{pending}, the holders of C{element}, have let go."""
        self.waitingFor = element
        if self.timer is None:
            self.timer = self.clock.callLater(self.timeout, self.timedOut)
        pending[0].addBoth(self.released, element)

    def released(self, result: Any, element: Any) -> Any:
        if self.waitingFor is element:
            # New holders may have come meanwhile (the stanza's next hook).
            pending = unfinished(element) if isinstance(element, domish.Element) else None
            if pending:
                pending[0].addBoth(self.released, element)
            else:
                self.proceed()
        return result

    def timedOut(self) -> None:
        self.timer = None
        if self.waitingFor is None:
            return
        self.log.warn("A {name} on {input} was not processed within {timeout} s; "
                      "going on with the next", name=getattr(self.waitingFor, "name", "?"),
                      input=self.description, timeout=self.timeout)
        self.proceed()

    def proceed(self) -> None:
        """The awaited element is done: handle what queued behind it, in order."""
        self.waitingFor = None
        if self.timer is not None:
            if self.timer.active():
                self.timer.cancel()
            self.timer = None
        if self.draining:
            return  # A holder let go while an element was being handled.
        self.draining = True
        try:
            while self.queue and self.waitingFor is None:
                element = self.queue.popleft()
                try:
                    self.handle(element)
                except Exception:
                    self.log.failure("Handling an element that waited on {input}",
                                     input=self.description)
                    continue
                pending = unfinished(element) if isinstance(element, domish.Element) else None
                if pending:
                    self.wait(element, pending)
        finally:
            self.draining = False
        if self.waitingFor is None and not self.queue:
            self.drained()

    def clear(self) -> None:
        """Forget what waits (the input is gone, or closed with an error)."""
        self.queue.clear()
        self.waitingFor = None
        if self.timer is not None:
            if self.timer.active():
                self.timer.cancel()
            self.timer = None


class Senders:
    """
    In-order processing for a stream many senders share: one L{Backlog}
    per sender (C{key}, the stamped C{from}), made only while one of that
    sender's stanzas waits.  Stanzas of other senders go on meanwhile.  The
    stream pauses reading while any sender waits (C{pause}/C{resume}), and
    C{overflow()} is called past L{MAX_BACKLOG} stanzas in all.
    """

    __slots__ = ("handle", "clock", "pause", "resume", "overflow", "backlogs", "description",
                 "timeout")

    def __init__(self, handle: Callable[[domish.Element], None], clock,
                 pause: Callable[[], None], resume: Callable[[], None],
                 overflow: Callable[[], None], description: str = "a shared stream",
                 timeout: float = PROCESSING_TIMEOUT):
        self.handle = handle
        self.clock = clock
        self.pause = pause
        self.resume = resume
        self.overflow = overflow
        self.description = description
        self.timeout = timeout
        self.backlogs: dict[Hashable, Backlog] = {}

    def receive(self, key: Hashable, stanza: domish.Element) -> None:
        """Process C{stanza} of sender C{key} now, or behind the sender's unfinished one."""
        backlogs = self.backlogs
        if backlogs:
            backlog = backlogs.get(key)
            if backlog is not None:
                if sum(len(b) for b in backlogs.values()) >= MAX_BACKLOG:
                    self.overflow()
                    return
                if not any(b.paused for b in backlogs.values()):
                    self.pause()
                backlog.paused = True
                backlog.add(stanza)
                return
        self.handle(stanza)
        pending = unfinished(stanza)
        if pending:
            backlog = backlogs[key] = Backlog(
                self.handle, lambda: self.drained(key), self.clock, self.overflow,
                timeout=self.timeout, description="%s (%s)" % (self.description, key))
            backlog.wait(stanza, pending)

    def drained(self, key: Hashable) -> None:
        backlog = self.backlogs.pop(key, None)
        if backlog is not None and backlog.paused and not any(
                b.paused for b in self.backlogs.values()):
            self.resume()

    def clear(self) -> None:
        """The stream is gone: what waits is dropped (the peer will time out or resend)."""
        backlogs = list(self.backlogs.values())
        self.backlogs.clear()
        for backlog in backlogs:
            backlog.clear()


class SharedInput:
    """
    What a stream kind that many senders share (server-to-server,
    components) mixes in to process each sender's stanzas in order
    (L{Senders}): it calls L{processInOrder} where it used to route a
    checked stanza, and provides C{processStanza} (the routing), C{clock},
    C{closing}, C{pauseReading} and C{resumeReading} (reading paused for
    several reasons at once, L{xmppd.stream.base.StreamBase}) and
    C{streamError}.  The L{Senders} is made
    at the first stanza; stanzas that wait are dropped on a stream error.
    """

    senders: Senders | None = None

    def processStanza(self, stanza: domish.Element) -> None:
        raise NotImplementedError()

    def processInOrder(self, stanza: domish.Element, sender: str) -> None:
        """Process C{stanza} from C{sender} (its stamped C{from}) in order."""
        senders = self.senders
        if senders is None:
            senders = self.senders = Senders(
                self.processStanza, self.clock, self.pauseInput, self.resumeInput,
                self.onInputOverflow, description=repr(self))
        senders.receive(sender, stanza)

    def pauseInput(self) -> None:
        self.pauseReading("backlog")

    def resumeInput(self) -> None:
        # Traffic shaping may still hold reading back.
        self.resumeReading("backlog")

    def onInputOverflow(self) -> None:
        self.streamError("policy-violation", "too many stanzas sent while some are processed")

    def dropWaiting(self) -> None:
        """After a stream error nothing that waits is processed."""
        if self.senders is not None:
            self.senders.clear()


class Answering:
    """
    IQ requests a wokkel C{IQHandlerMixin} answers later, held
    (L{xmppd.core.stanzas.hold}) until their answer has gone out, so the
    requester's next stanza waits for it (a roster get behind a roster set,
    a pubsub retrieve behind a publish).

    wokkel's C{handleRequest} returns nothing to wait on; what marks the end
    is the answer passing through the handler's C{send}, which calls
    L{sending}.  A request answered at once costs one dict entry for the
    call; none is left behind.
    """

    def __init__(self):
        #: (id, requester) of the requests being answered -> their hold
        #: (None while the handler runs): empty unless a request waits.
        self.pending: dict[tuple, defer.Deferred | None] = {}

    def request(self, handleRequest: Callable[[domish.Element], Any],
                iq: domish.Element) -> None:
        """
        Call wokkel's C{handleRequest} on C{iq} (as L{handleRequest}: a
        storage fault is answered with its own condition); hold C{iq} if it
        is not answered yet.
        """
        key = (iq.getAttribute("id"), iq.getAttribute("from"))
        pending = self.pending
        pending[key] = None
        try:
            answeringRequest(handleRequest)(iq)
        except BaseException:
            pending.pop(key, None)
            raise
        if key in pending:
            pending[key] = hold(iq)

    def sending(self, element: domish.Element) -> defer.Deferred | None:
        """
        Note that C{element} goes out; if it answers a held request, the hold
        to let go of once it has been sent (the caller sends, then fires it).
        """
        if self.pending and element.name == "iq":
            return self.pending.pop((element.getAttribute("id"), element.getAttribute("to")), None)
        return None


_log = Logger()


def handleRequest(handler: IQHandlerMixin, iq: domish.Element) -> None:
    """
    wokkel's C{IQHandlerMixin.handleRequest} for C{handler}: call the method
    its C{iqHandlers} name for C{iq} and send the result or the error; a
    failure with a C{stanzaCondition} is answered with that condition and
    its C{stanzaText}, without a traceback (see L{xmppd.core.dispatch}).
    """
    method = None
    for queryString, name in handler.iqHandlers.items():
        if xpath.internQuery(queryString).matches(iq):
            method = getattr(handler, name)
    if method is not None:
        d = defer.maybeDeferred(method, iq)
    else:
        d = defer.fail(NotImplementedError())

    def toResult(result):
        response = toResponse(iq, "result")
        if result:
            if isinstance(result, domish.Element):
                response.addChild(result)
            else:
                for element in result:
                    response.addChild(element)
        return response

    def toError(failure):
        if failure.check(NotImplementedError):
            return StanzaError("feature-not-implemented").toResponse(iq)
        if failure.check(StanzaError):
            return failure.value.toResponse(iq)
        condition = getattr(failure.value, "stanzaCondition", None)
        if condition is not None:
            return StanzaError(condition, text=getattr(failure.value, "stanzaText", None)
                               ).toResponse(iq)
        _log.failure("Unhandled error in iq handler", failure)
        return StanzaError("internal-server-error").toResponse(iq)

    d.addCallback(toResult)
    d.addErrback(toError)
    d.addCallback(handler.send)
    iq.handled = True


def answeringRequest(observer: Observer) -> Observer:
    """L{handleRequest} for a wokkel C{handleRequest} bound method, else C{observer}."""
    handler = getattr(observer, "__self__", None)
    if (getattr(observer, "__name__", None) == "handleRequest"
            and isinstance(handler, IQHandlerMixin)
            and getattr(type(handler), "handleRequest", None) is IQHandlerMixin.handleRequest):
        def request(iq: domish.Element) -> None:
            handleRequest(handler, iq)
        return request
    return observer
