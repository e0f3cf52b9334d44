# -*- test-case-name: tests.test_e2e_muc_component -*-
"""
The MUC service as an external component (XEP-0114): C{twistd -n xmppd-muc
--config FILE} runs the same L{muc.service.MUCService} as the in-process
feature, in a process of its own, connected to one or more xmppd nodes.

The configuration file has the same format as the server's: C{server.domains}
and C{[muc] domain} say which MUC domains to serve (one component
connection each), C{[storage]} and C{server.data_dir} where rooms are kept
(a directory of its own, not a node's), and C{[muc_component]} the nodes to
connect to and the secret, which each node lists in its
C{[components] secrets}.  The node must not also run "muc" in-process for
that domain.

Several such processes may serve the same MUC domain, each connected to
every node, when the nodes list the domain in C{components.balance}: each
node then sends a room's stanzas to one process, chosen by the room's bare
JID (L{xmppd.components.balance}), and a process's rooms move to the others
when it disconnects.  Each process names itself with
C{muc_component.instance} (default: host name and process id), so every
node gives it the same rooms.  The rooms must then be kept in storage all
processes share (C{storage.backend = "redis"}): with SQLite, each process
has its own rooms, and the rooms of a process that goes away start afresh
on the process that takes them over.  Occupants are in memory only: the
occupants of a room that moves are no longer in it, find out with
self-ping (XEP-0410) and join again.

The room model and everything it does are the same; only fan-out differs:
with no local sessions in this process every occupant's copy goes over the
component connection as its own stanza (XEP-0114 has no multicast).
"""

from __future__ import annotations

import os
import socket

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from muc.service import MUCService, mucDomainOf
from xmppd.components.client import ComponentClient
from xmppd.config import ConfigError
from xmppd.core.server import loadSecret
from xmppd.storage import makeStorage
from xmppd.storage.service import StorageService


class ComponentRoute:
    """
    What the component connections deliver to: the MUC service, plus word
    of the connection coming and going, for the log and for whoever waits
    (L{whenConnected}).
    """

    log = Logger()

    def __init__(self, muc: MUCService):
        self.muc = muc
        self.connected = False
        self.waiting: list[defer.Deferred] = []

    def deliver(self, stanza) -> None:
        self.muc.deliver(stanza)

    def componentConnected(self) -> None:
        self.connected = True
        self.log.info("MUC service {domain} is connected", domain=self.muc.domain)
        waiting, self.waiting = self.waiting, []
        for d in waiting:
            d.callback(None)

    def componentDisconnected(self) -> None:
        self.connected = False
        self.log.warn("MUC service {domain} lost its last connection", domain=self.muc.domain)

    def whenConnected(self) -> defer.Deferred:
        if self.connected:
            return defer.succeed(None)
        d = defer.Deferred()
        self.waiting.append(d)
        return d


class ConnectWhenReady(service.Service):
    """Starts the component connections once storage is open, so no room waits on it."""

    def __init__(self, storageService: StorageService, client: ComponentClient):
        self.storageService = storageService
        self.client = client
        self.name = "connect " + client.domain

    def startService(self) -> None:
        service.Service.startService(self)
        self.storageService.whenReady().addCallback(lambda _: self.running and
                                                    self.client.startService())

    def stopService(self):
        service.Service.stopService(self)
        if self.client.running:
            return self.client.stopService()
        return None


def makeService(config, reactor=None) -> service.MultiService:
    """The service tree of a MUC component process (see the module docstring)."""
    if reactor is None:
        from twisted.internet import reactor
    settings = config.muc_component
    if not settings.connect:
        raise ConfigError("muc_component.connect: list the xmppd nodes to connect to, "
                          "like [\"tcp:host=127.0.0.1:port=5347\"]")
    if not settings.secret:
        raise ConfigError("muc_component.secret: set the component secret the nodes expect")
    root = service.MultiService()
    storage = makeStorage(config.storage.backend, config.server.data_dir, reactor,
                          config.storage.redis, config.storage.redis_unsafe)
    storageService = StorageService(storage)
    storageService.setServiceParent(root)
    secret = loadSecret(config.server.data_dir)
    instance = settings.instance or "%s-%d" % (socket.gethostname(), os.getpid())
    for domain in config.server.domains:
        mucDomain = mucDomainOf(config.muc, domain)
        muc = MUCService(mucDomain, None, lambda: storageService.storage, reactor, config.muc,
                         secret, localDomains=config.server.domains)
        route = ComponentRoute(muc)
        client = ComponentClient(route, mucDomain, settings.secret, settings.connect,
                                 reactor=reactor, instance=instance)
        muc.router = client
        muc.componentRoute = route
        # Connections start after storage and stop after the service, which
        # says goodbye to its occupants through them.
        ConnectWhenReady(storageService, client).setServiceParent(root)
        muc.setServiceParent(root)
    return root
