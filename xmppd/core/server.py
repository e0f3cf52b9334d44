# -*- test-case-name: tests.test_tap -*-
"""
The node: the root of the service tree (DESIGN §1).

L{XMPPServer} owns what every part shares (configuration, router, session
manager, clock) and holds its children in start order: storage first, the
served domains, the c2s listeners last, so stopping closes listeners first
and storage last.  Twisted's C{MultiService} would stop them all at once
(storage too, while the listeners still end sessions that write to it:
last activity, stanzas a stream-management session never acknowledged);
L{XMPPServer.stopService} stops storage only once every other child has
stopped.
"""

from __future__ import annotations

import os
import secrets

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from xmppd.core.hooks import Hooks
from xmppd.core.invalidation import LocalInvalidation
from xmppd.core.metrics import Metrics
from xmppd.core.router import Router
from xmppd.core.sessions import SessionManager
from xmppd.stream.traffic import TrafficLog

SECRET_FILE = "server-secret"


def loadSecret(dataDir: str) -> bytes:
    """
    A per-installation secret (0600 in the data directory), stable across
    restarts so the fake SCRAM salts of unknown users never change and never
    give them away.
    """
    path = os.path.join(dataDir, SECRET_FILE)
    try:
        with open(path, "rb") as f:
            secret = f.read()
        if len(secret) >= 32:
            return secret
    except FileNotFoundError:
        pass
    os.makedirs(dataDir, mode=0o700, exist_ok=True)
    secret = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secret)
    return secret


class XMPPServer(service.MultiService):
    """One node: see the module docstring."""

    log = Logger()

    def __init__(self, config, reactor=None, clock=None):
        service.MultiService.__init__(self)
        if reactor is None:
            from twisted.internet import reactor
        self.config = config
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        self.router = Router()
        self.sessions = SessionManager()
        self.hooks = Hooks()
        #: What the node counts for its operators (L{xmppd.core.metrics}).
        self.metrics = Metrics()
        #: Tells other nodes about changed account data (the cluster replaces it).
        self.invalidation = LocalInvalidation()
        self.secret = loadSecret(config.server.data_dir)
        self.nodeId = secrets.token_hex(4)
        self.storageService = None
        #: Served domain -> its LocalDomain and feature services
        #: (L{xmppd.core.local.addDomain}), so a reload can remove a host.
        self.domainServices: dict[str, list] = {}
        #: The c2s and HTTP TLS options (an L{xmppd.stream.tls.SNICertificateOptions}),
        #: set by the wiring; a reload swaps their certificates.
        self.tlsOptions = None
        #: What must be settled, besides storage, before the node listens
        #: (L{whenReady}): callables each returning a Deferred of its own.
        #: A cluster node adds the fetching of the cluster's secret.
        self.startGates: list = []
        #: The traffic log when C{log.verbose} is on, shared by all streams.
        self.traffic = TrafficLog() if config.log.verbose else None
        #: Called with a one-line message when the node cannot run (a port in
        #: use, storage that does not open); twistd stops then.
        self.onFatal = None

    @property
    def storage(self):
        return self.storageService.storage

    #: The log observer twistd should use instead of its text one
    #: (C{log.format = "json"}, set by L{xmppd.launch}); C{None}: twistd's.
    logObserver = None

    def setServiceParent(self, parent):
        """
        Join C{parent}; a twistd application (a C{Componentized}) is also
        told L{logObserver}, the one way a service can choose twistd's log
        format: twistd asks the application for an C{ILogObserver} once the
        service tree is built.
        """
        if self.logObserver is not None and hasattr(parent, "setComponent"):
            from twisted.logger import ILogObserver
            parent.setComponent(ILogObserver, self.logObserver)
        return service.MultiService.setServiceParent(self, parent)

    def stopService(self) -> defer.Deferred:
        """
        Stop every child but storage, in reverse start order, and storage
        once all of them have stopped (see the module docstring).
        """
        service.Service.stopService(self)
        storage = self.storageService
        children = [child for child in reversed(list(self)) if child is not storage]
        stopping = [defer.maybeDeferred(child.stopService) for child in children]
        done = defer.DeferredList(stopping)
        if storage is not None and storage.parent is self:
            done.addCallback(lambda _: defer.maybeDeferred(storage.stopService))
        return done

    def whenReady(self) -> defer.Deferred:
        """
        A Deferred of the caller's own that fires once storage is open and
        every one of L{startGates} has passed, or fails with the first
        failure.  The listeners wait for it: what they answer depends on
        both (a cluster node that still had its own secret would make
        dialback keys no other node verifies, and call theirs invalid).
        """
        storage = self.storageService
        d = storage.whenReady() if storage is not None else defer.succeed(None)
        for gate in list(self.startGates):
            d.addCallback(lambda _, gate=gate: gate())
        return d

    def fatal(self, message: str) -> None:
        self.log.critical("xmppd cannot run: {message}", message=message)
        if self.onFatal is not None:
            self.onFatal(message)
