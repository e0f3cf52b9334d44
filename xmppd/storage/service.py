# -*- test-case-name: tests.test_storage -*-
"""
The service that opens the store when the server starts and closes it when
the server stops.
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet import defer

from xmppd.storage.interfaces import IStorage


class StorageService(Service):
    """
    Owns the life of one L{IStorage}.

    C{startService} cannot return a Deferred (nothing waits for it), so
    opening runs in the background and L{ready} fires, with C{None} or the
    failure of C{open()}, when it is done: whoever starts the server waits on
    it before accepting connections, and stops the server if it fails.

    C{stopService} may return a Deferred, and a C{MultiService} waits for it:
    this service is started first and stopped last, so the store is closed
    after every listener, and the process does not exit before it is.
    """

    name = "storage"

    def __init__(self, storage: IStorage) -> None:
        self.storage = storage
        self.ready: defer.Deferred = defer.Deferred()

    def startService(self) -> None:
        super().startService()
        if self.ready.called:
            # Started again after a stop: a fresh Deferred for this opening.
            self.ready = defer.Deferred()
        self.storage.open().chainDeferred(self.ready)

    def stopService(self) -> defer.Deferred:
        super().stopService()
        return self.storage.close()
