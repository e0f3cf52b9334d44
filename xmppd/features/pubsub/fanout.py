# -*- test-case-name: tests.test_pubsub_fanout -*-
"""
Notification fan-out (XEP-0060 §7.1.2, §7.2.2, §8.2.4, §8.4.2, §8.5.2)
that serializes the C{<message/>} once per event for every subscriber
(DESIGN §5, issue 12 item 6) and never holds the reactor for long.

A notification differs per recipient only in its C{to}.  L{Prepared}
serializes it once without C{to} and splices each address in as text, as
the MUC fan-out does; a recipient with a session on a domain served here
gets that text from the domain's C{deliverPrepared} (which still lets
blocking object), everyone else (bare JIDs, remote entities) gets a shallow
copy through the router.  L{Fanout} sends at most C{batch} notifications
per reactor turn and continues on the next turn, so publishing to a node
with many thousands of subscribers does not stall other streams.

Implements: XEP-0060 1.26
"""

from __future__ import annotations

from collections import deque

from twisted.logger import Logger

from xmppd.core.jid import InvalidJID, parseJID
from xmppd.core.prepared import Prepared

__all__ = ["Fanout", "Prepared"]


class Fanout:
    """
    Sends prepared stanzas to many recipients, C{batch} per reactor turn.

    @ivar sent: how many stanzas this fan-out has handed on (for tests and
        the benchmark).
    """

    log = Logger()

    def __init__(self, router, clock, batch: int = 500):
        self.router = router
        self.clock = clock
        self.batch = batch
        self.queue: deque = deque()
        self.call = None
        self.sent = 0
        #: Notifications queued and not sent yet (the engine refuses new
        #: events while this is over its limit: the queue stays bounded).
        self.backlog = 0

    def send(self, prepared: Prepared, recipients, later: bool = False) -> None:
        """
        Queue C{prepared} for every JID text in C{recipients}; sending starts
        now, or with C{later} on the next reactor turn (after the IQ result
        that caused it, as XEP-0060 §6.1.7 wants for the last item).
        """
        if not recipients:
            return
        recipients = list(recipients)
        self.backlog += len(recipients)
        self.queue.append((prepared, iter(recipients)))
        if self.call is None:
            if later:
                self.call = self.clock.callLater(0, self._drain)
            else:
                self._drain()

    def _drain(self) -> None:
        self.call = None
        budget = self.batch
        while self.queue and budget > 0:
            prepared, recipients = self.queue[0]
            for to in recipients:
                self._deliver(prepared, to)
                budget -= 1
                if budget == 0:
                    break
            else:
                self.queue.popleft()
        if self.queue:
            self.call = self.clock.callLater(0, self._drain)

    def _deliver(self, prepared: Prepared, to: str) -> None:
        self.sent += 1
        self.backlog -= 1
        try:
            recipient = parseJID(to)
        except InvalidJID:
            return
        if recipient.resource is not None:
            route = self.router.routes.get(recipient.host)
            deliver = getattr(route, "deliverPrepared", None)
            if deliver is not None:
                try:
                    deliver(recipient, prepared)
                except Exception:
                    self.log.failure("Delivering a notification to {to}", to=to)
                return
        self.router.route(prepared.elementFor(to))

    def stop(self) -> None:
        """Drop what is queued (the service stops)."""
        if self.call is not None and self.call.active():
            self.call.cancel()
        self.call = None
        self.queue.clear()
        self.backlog = 0
