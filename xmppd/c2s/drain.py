# -*- test-case-name: tests.test_drain -*-
"""
Draining a node's clients (issue 14, item 8; C{xmppctl drain NODE}): every
client stream is sent to another node with the stream error
C{see-other-host} (RFC 6120 §4.9.3.19, whose element's text is the other
host, C{"host:port"} or C{"[IPv6]:port"}), and every new stream gets it
right after the stream header, so clients reconnect elsewhere and the node
can stop with nobody on it.  L{Drain.stop} takes clients again.

No accepted stanza is lost on the way:

  - A stream in negotiation (no session yet) is redirected at once: it
    has sent nothing the server accepted.
  - A bound stream first stops reading (what the client sends afterwards
    stays unread, unacknowledged, and the client sends it again on its
    new connection).  What it has already read is still handled, in order
    (L{xmppd.core.ordering}), and, with stream management (XEP-0198), what
    is being stored completes and what was forwarded to another node of a
    cluster is confirmed by Redis.  Only then does the stream end: an C{<a/>}
    with the final count tells the client which of its stanzas the server
    took (so it sends none twice and drops none; a forward still unconfirmed
    when the wait runs out is not counted, the client sends it again), the
    session is unbound
    (whatever arrives for it from now on goes to the account's other
    resources or to offline storage, RFC 6121 §8.5), and the stanzas the
    client never acknowledged follow stream management's rules for a
    session that ends (L{xmppd.features.sm}: messages routed again to the
    bare JID, marked delayed).  Then comes C{see-other-host}.
  - Sessions kept for a client that lost its connection (stream
    management resumption) end at once: their client cannot come back to
    this node to resume them, and whatever waits for them is sent on the
    same way (the hook C{"c2s/draining"}, notified with no payload; the
    C{sm} feature listens).
  - The wait is bounded (L{WAIT}); a stanza whose processing never ends
    does not keep a node from draining.

The check for streams still waiting runs every L{INTERVAL} seconds, only
while some wait: nothing is added to the per-stanza path.
"""

from __future__ import annotations

from twisted.internet import task
from twisted.logger import Logger

from xmppd.core.ordering import PROCESSING_TIMEOUT

#: Seconds a bound stream may take to finish what it read before it is redirected anyway.
WAIT = PROCESSING_TIMEOUT
#: Seconds between two looks at the streams that still finish their stanzas.
INTERVAL = 0.05


class Drain:
    """
    The client side of draining one node: C{factories} are the node's
    L{xmppd.c2s.listeners.C2SFactory}s (read when draining starts, so
    listeners opened meanwhile count), C{clock} its clock, C{hooks} its
    hooks (L{xmppd.core.hooks.Hooks}), told C{"c2s/draining"}.
    """

    log = Logger()

    def __init__(self, factories, clock, hooks=None):
        self.factories = factories
        self.clock = clock
        self.hooks = hooks
        #: The other host while draining, else None.
        self.address: str | None = None
        #: Bound streams finishing their stanzas -> when they are redirected anyway.
        self.waiting: dict = {}
        self.loop: task.LoopingCall | None = None

    @property
    def draining(self) -> bool:
        return self.address is not None

    def start(self, address: str) -> int:
        """Send every client to C{address} and refuse new ones; return how many streams are told."""
        self.address = address
        count = 0
        for factory in self.factories():
            factory.redirect = address
            for stream in list(factory.streams):
                if not stream.closing:
                    self.redirect(stream)
                    count += 1
        if self.hooks is not None:
            self.hooks.notify("c2s/draining", None)
        self.log.info("Draining: {count} client streams sent to {address}",
                      count=count, address=address)
        return count

    def retarget(self, address: str) -> None:
        """Send clients to C{address} from now on (the other node went away)."""
        if self.address is None or address == self.address:
            return
        self.address = address
        for factory in self.factories():
            factory.redirect = address
        self.log.info("Draining: clients are now sent to {address}", address=address)

    def stop(self) -> None:
        """Take clients again; streams still finishing their stanzas stay."""
        self.address = None
        for factory in self.factories():
            factory.redirect = None
        waiting, self.waiting = self.waiting, {}
        for stream in waiting:
            if stream.closing:
                continue
            if stream.backlog is not None:
                # Reading resumes once what it waits for is handled.
                stream.backlog.paused = True
                stream.readPaused = False
            else:
                stream.resumeReading()
        self.stopLoop()
        self.log.info("Draining stopped: clients are taken again")

    def redirect(self, stream) -> None:
        if stream.session is None:
            stream.seeOtherHost(self.address)
            return
        # Stop reading; what was read is still handled (module docstring).
        # Traffic shaping's timer must not start reading again either.
        shaping = stream.timers.pop("shape", None)
        if shaping is not None and shaping.active():
            shaping.cancel()
        stream.readPaused = True
        stream.transport.pauseProducing()
        self.waiting[stream] = self.clock.seconds() + WAIT
        if self.finished(stream):
            del self.waiting[stream]
            self.finish(stream)
        elif self.loop is None:
            self.loop = task.LoopingCall(self.check)
            self.loop.clock = self.clock
            self.loop.start(INTERVAL, now=False)

    @staticmethod
    def finished(stream) -> bool:
        """Has C{stream} handled all it read (stored what it took, had its forwards confirmed)?"""
        sm = stream.sm
        return stream.backlog is None and (sm is None or not sm.pending)

    def check(self) -> None:
        now = self.clock.seconds()
        for stream, deadline in list(self.waiting.items()):
            if stream.closing:
                del self.waiting[stream]
            elif self.finished(stream) or now >= deadline:
                del self.waiting[stream]
                self.finish(stream)
        if not self.waiting:
            self.stopLoop()

    def stopLoop(self) -> None:
        if self.loop is not None:
            if self.loop.running:
                self.loop.stop()
            self.loop = None

    def finish(self, stream) -> None:
        """Final count, end of the session, then see-other-host (module docstring)."""
        if stream.closing or self.address is None:
            return
        if stream.sm is not None and stream.session is not None:
            stream.sm.sendAck()
        stream.endSession()
        stream.seeOtherHost(self.address)
