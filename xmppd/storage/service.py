# -*- test-case-name: tests.test_storage -*-
"""
The service that opens the store when the server starts and closes it when
the server stops.
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet import defer
from twisted.python.failure import Failure

from xmppd.storage.interfaces import IStorage


_PENDING = object()


class StorageService(Service):
    """
    Owns the life of one L{IStorage}.

    C{startService} cannot return a Deferred (nothing waits for it), so
    opening runs in the background; L{whenReady} gives each party that must
    wait for it (the listeners, a test) a Deferred of its own that fires
    with C{None} or the failure of C{open()}.  One Deferred per waiter, so
    no waiter can swallow a failure the others must see.

    C{stopService} may return a Deferred, and a C{MultiService} waits for it:
    this service is started first and stopped last, so the store is closed
    after every listener, and the process does not exit before it is.
    """

    name = "storage"

    def __init__(self, storage: IStorage) -> None:
        self.storage = storage
        self._result = _PENDING
        self._waiters: list[defer.Deferred] = []

    def startService(self) -> None:
        super().startService()
        self._result = _PENDING
        self.storage.open().addBoth(self._opened)

    def _opened(self, result) -> None:
        self._result = result
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            self._fire(waiter)

    def _fire(self, waiter: defer.Deferred) -> None:
        if isinstance(self._result, Failure):
            waiter.errback(self._result)
        else:
            waiter.callback(self._result)

    def whenReady(self) -> defer.Deferred:
        """A Deferred of your own that fires when the store is open (or failed to)."""
        waiter = defer.Deferred()
        if self._result is _PENDING:
            self._waiters.append(waiter)
        else:
            self._fire(waiter)
        return waiter

    def stopService(self) -> defer.Deferred:
        super().stopService()
        return self.storage.close()
