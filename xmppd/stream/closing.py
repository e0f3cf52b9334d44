# -*- test-case-name: tests.test_c2s -*-
"""
Waiting for a connection to go: what a service that stops waits on for each
of its streams (clients, components, servers), so that it stops once every
stream has written its last word and closed, never before.
"""

from __future__ import annotations

from twisted.internet import defer

#: Seconds a closing stream waits for the peer to read its last words.
CLOSE_TIMEOUT = 10.0


class ClosedWaiters:
    """
    Mixed into a stream protocol: L{whenClosed} for whoever waits, and
    L{notifyClosed} for the protocol's C{connectionLost}.
    """

    #: None before anyone waits, a list while they do, () once closed.
    closedWaiters = None

    def whenClosed(self) -> defer.Deferred:
        """A Deferred that fires once the connection is gone."""
        if self.closedWaiters == ():
            return defer.succeed(None)
        if self.closedWaiters is None:
            self.closedWaiters = []
        waiter = defer.Deferred()
        self.closedWaiters.append(waiter)
        return waiter

    def notifyClosed(self) -> None:
        """The connection is gone: fire every waiter, now and later."""
        waiters, self.closedWaiters = self.closedWaiters, ()
        for waiter in waiters or ():
            waiter.callback(None)
