# -*- test-case-name: tests.test_cluster -*-
"""
The cluster's part of a node (DESIGN §6): L{ClusterService} puts the
Redis session directory in place of the in-memory one, keeps this node's
heartbeat, watches the other nodes' heartbeats, subscribes to the
cluster's channels and runs the inbox reader.  L{xmppd.tap} adds it, right
after storage, only when the configuration has a C{[cluster]} section.

The heartbeat is a key with a TTL of C{lease} seconds, set again every
C{heartbeat} seconds on the node's clock.  On the same beat the node
reads the set of nodes and their heartbeat keys (two commands, whatever
the number of sessions) and reaps the nodes whose key expired.  At start
it reaps its own previous life first: whatever a crashed process of the
same name left (sessions, inbox) is cleared and routed again.
"""

from __future__ import annotations

import txredisapi
from twisted.application import service
from twisted.internet import defer, ssl, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from xmppd.cluster import keys
from xmppd.cluster.lease import Leases, RoomOwnership
from xmppd.cluster.secret import clusterSecret
from xmppd.cluster.directory import ClusterDirectory, RemoteSession
from xmppd.cluster.invalidation import ClusterInvalidation
from xmppd.cluster.transport import Transport, relayed
from xmppd.config.redisurl import RedisAddress, parseRedisURL
from xmppd.config.sections import DEFAULT_CLUSTER_REDIS
from xmppd.core.hooks import COPY
from xmppd.storage.redisclient import CONNECT_TIMEOUT, connectRedis, logFailure, watchLink


#: What L{ClusterService.secretResult} is while the secret is being read.
PENDING = object()


class ClusterUnavailable(Exception):
    """The node cannot start as a node of its cluster (the message says why, in one line)."""


def clusterAddress(config) -> RedisAddress:
    """C{[cluster] redis}, else C{[storage] redis}, else the default."""
    return config.cluster.redis or config.storage.redis or parseRedisURL(DEFAULT_CLUSTER_REDIS)


class _Subscriber(txredisapi.SubscriberProtocol):
    """The subscription to the cluster's channels; tells its L{ClusterService}."""

    def connectionMade(self):
        d = defer.maybeDeferred(txredisapi.SubscriberProtocol.connectionMade, self)
        d.addCallback(lambda _: self.subscribe([keys.DIRECTORY_CHANNEL, keys.INVALIDATE_CHANNEL]))
        d.addCallback(lambda _: self.factory.cluster.subscribed(self))
        d.addErrback(lambda f: logFailure(self.factory.cluster.log, f, "Subscribing failed"))
        return d

    def messageReceived(self, pattern, channel, message):
        self.factory.cluster.messageReceived(channel, message)

    def connectionLost(self, reason):
        txredisapi.SubscriberProtocol.connectionLost(self, reason)
        self.factory.cluster.unsubscribed()


class _SubscriberFactory(txredisapi.RedisFactory):
    protocol = _Subscriber


class ClusterService(service.Service):
    """See the module docstring."""

    log = Logger()
    name = "cluster"

    def __init__(self, server, reactor=None):
        self.server = server
        self.reactor = reactor if reactor is not None else server.reactor
        self.clock = server.clock
        settings = server.config.cluster
        self.node = settings.node
        self.heartbeat = settings.heartbeat
        self.lease = settings.lease
        self.address = clusterAddress(server.config)
        self.directory = ClusterDirectory(self.node)
        server.sessions = self.directory
        self.directory.onReaped = self.sessionsOfDeadNode
        self.invalidation = server.invalidation = ClusterInvalidation(self.node)
        server.cluster = self
        # No listener before the cluster's secret is known (see _start).
        server.startGates.append(self.whenSecretKnown)
        #: C{None} once the cluster's secret is in use, the L{Failure} that
        #: kept it from being read, or L{PENDING}; then L{secretWaiters}.
        self.secretResult = PENDING
        self.secretWaiters: list[defer.Deferred] = []
        # Presence probes answered on every node holding available resources.
        server.hooks.add("presence/bare", self.relayProbe, COPY)
        server.hooks.add("presence/full", self.relayProbe, COPY)
        self.transport = None
        self.connections = []
        self.subscriber = None
        self.beating = None
        #: When this node's link to Redis last came (back) up; None while down.
        self.calmSince = None
        #: MUC services of this node whose rooms it owns through leases, and
        #: their ownerships (L{spreadRooms} tells them the live nodes).
        self.roomServices = []
        self.ownerships = []

    def _connect(self):
        connection = connectRedis(self.address, lazy=True)
        self._paceReconnection(connection._factory)
        self.connections.append(connection)
        return connection

    def _paceReconnection(self, factory) -> None:
        """
        Try to reconnect to Redis at least once a heartbeat (txredisapi
        backs off to 10 s): a node whose link came back late would miss
        its heartbeats and be taken for dead by nodes that reconnected
        first, which wait one lease only (L{checkNodes}).
        """
        factory.initialDelay = min(0.1, self.heartbeat)
        factory.maxDelay = self.heartbeat

    def startService(self) -> None:
        service.Service.startService(self)
        redis = self._connect()
        self.directory.redis = self.invalidation.redis = redis
        self.transport = Transport(self.node, self.directory, self._connect(), self._connect(),
                                   self.server.router.route, self.clock)
        self.transport.mayReap = self.mayReap
        self.transport.retryDelay = self.heartbeat
        self.directory.transport = self.transport
        factory = _SubscriberFactory(None, self.address.db, 1, isLazy=True,
                                     password=self.address.password,
                                     username=self.address.username, convertNumbers=False)
        factory.cluster = self
        factory.reconnect = True
        self._paceReconnection(factory)
        watchLink(factory, self.address)
        self.subscriber = factory
        factory.startConnecting(txredisapi._makeEndpoint(
            self.address.host, self.address.port, CONNECT_TIMEOUT,
            ssl.optionsForClientTLS(self.address.host) if self.address.tls else None))
        self.secretResult = PENDING
        self.started = self._start()

    @defer.inlineCallbacks
    def _start(self):
        # Dialback keys and fake SCRAM salts must agree on every node.
        try:
            self.server.secret = yield clusterSecret(self.directory.redis, self.server.secret)
        except Exception as e:
            self._secretSettled(Failure(ClusterUnavailable(
                "cannot read the cluster's secret from Redis at %s:%d: %s"
                % (self.address.host, self.address.port, e))))
            raise
        self._secretSettled(None)
        for muc in self.roomServices:
            self._ownRooms(muc)
        # This node's previous life (a crash, a restart within the lease).
        entries = yield self.directory.reap(self.node, force=True)
        yield self._beat()
        if self.ownerships:
            # Rooms spread from the first stanza on, not from the first tick.
            try:
                yield self.checkNodes()
            except Exception:
                logFailure(self.log, Failure(), "Reading the live nodes failed")
        self.transport.rerouteEntries(entries or [])
        self.transport.start()
        self.beating = task.LoopingCall(self._tick)
        self.beating.clock = self.clock
        self.beating.start(self.heartbeat, now=False)
        yield self.directory.whenReady()

    def whenSecretKnown(self) -> defer.Deferred:
        """
        A Deferred of the caller's own that fires once this node uses the
        cluster's secret: a start gate of the node's listeners
        (L{xmppd.core.server.XMPPServer.whenReady}).  Before, the node
        would make dialback keys no other node verifies and call theirs
        invalid when a remote server asks it (issue 14 item 7).  While
        Redis cannot be reached the node waits, as its commands do.
        """
        waiter = defer.Deferred()
        if self.secretResult is PENDING:
            self.secretWaiters.append(waiter)
        else:
            self._settle(waiter)
        return waiter

    def _secretSettled(self, result: Failure | None) -> None:
        self.secretResult = result
        waiters, self.secretWaiters = self.secretWaiters, []
        for waiter in waiters:
            self._settle(waiter)

    def _settle(self, waiter: defer.Deferred) -> None:
        if self.secretResult is None:
            waiter.callback(None)
        else:
            waiter.errback(self.secretResult)

    def ownRooms(self, muc) -> None:
        """
        Have the in-process MUC service C{muc} own its rooms through leases
        in Redis (one node per room at a time) and forward the stanzas of
        rooms another node owns to that node (issue 14, item 6).
        """
        self.roomServices.append(muc)
        if self.running:
            self._ownRooms(muc)

    def _ownRooms(self, muc) -> None:
        leases = Leases(self.directory.redis, self.node, self.lease)
        ownership = RoomOwnership(leases, self.clock)
        self.ownerships.append(ownership)
        muc.useOwnership(ownership,
                         forward=lambda stanza, node: self.transport.relay(node, stanza))

    def _beat(self):
        redis = self.directory.redis
        d = redis.set(keys.heartbeatKey(self.node), "1", pexpire=int(self.lease * 1000))
        d.addCallback(lambda _: redis.sadd(keys.NODES, self.node))
        d.addCallback(self._beaten)
        return d

    def _beaten(self, _):
        if self.calmSince is None and self.directory.synced:
            self.calmSince = self.clock.seconds()

    def mayReap(self) -> bool:
        """Whether this node may take other nodes for dead now (see L{checkNodes})."""
        return self.calmSince is not None and self.clock.seconds() - self.calmSince >= self.lease

    def _tick(self):
        d = self._beat()
        d.addErrback(self._beatFailed)
        d.addCallback(lambda _: self.checkNodes())
        d.addErrback(lambda f: logFailure(self.log, f, "Cluster heartbeat failed"))
        # Never return the Deferred: a slow Redis must not stop the loop.

    @defer.inlineCallbacks
    def checkNodes(self):
        """
        Reap the nodes whose heartbeat expired (two commands, then one
        script per dead node).  Not within a lease of this node's own
        (re)connection to Redis: after Redis was away (restarted, or
        unreachable from here), the other nodes' heartbeats may have
        expired meanwhile without their nodes being dead, and they get one
        lease to beat again.  The same read tells the room ownerships which
        nodes are live (L{spreadRooms}).
        """
        if not self.mayReap() and not self.ownerships:
            return
        redis = self.directory.redis
        nodes = [n for n in (yield redis.smembers(keys.NODES)) if n != self.node]
        beats = (yield redis.mget([keys.heartbeatKey(n) for n in nodes])) if nodes else []
        if self.ownerships:
            yield self.spreadRooms([n for n, beat in zip(nodes, beats) if beat is not None])
        if not self.mayReap():
            return
        for node, beat in zip(nodes, beats):
            if beat is None:
                entries = yield self.directory.reap(node)
                if entries is not None:
                    self.transport.rerouteEntries(entries)

    @defer.inlineCallbacks
    def spreadRooms(self, alive):
        """
        Tell the room ownerships the candidates for rooms: this node and the
        other nodes C{alive} (heartbeat present), less the draining ones
        (one more command a heartbeat, only on a node with an in-process
        MUC service).  See L{xmppd.cluster.lease}.
        """
        draining = set((yield self.directory.redis.smembers(keys.DRAINING)))
        candidates = [n for n in [self.node, *alive] if n not in draining]
        for ownership in self.ownerships:
            ownership.setNodes(candidates)

    def relayProbe(self, event):
        """
        A probe (RFC 6121 §4.3) is answered from the last presence of each
        available resource, which the presence feature keeps on the
        resource's node only: each other node holding available resources
        of the probed account gets the probe too, routes it there, and
        answers for its own resources.  Never takes the stanza.
        """
        stanza = event.stanza
        if stanza.getAttribute("type") != "probe" or relayed(stanza):
            return None
        recipient = event.recipient
        if recipient is None or self.transport is None:
            return None
        nodes = {session.node for session in self.directory.availableSessionsOf(recipient)
                 if isinstance(session, RemoteSession)}
        for node in nodes:
            self.transport.relay(node, stanza)
        return None

    def sessionsOfDeadNode(self, views) -> None:
        """
        End the bindings of a dead node as its streams would have
        (C{session/closed}, in their domain): the presence feature then
        broadcasts unavailable presence from them to their contacts (RFC
        6121 §4.5.2), which nobody else would.  Called on the one node
        whose reap removed them.
        """
        for view in views:
            self.server.hooks.notify("session/closed", view, view.jid.host)

    def _beatFailed(self, failure):
        # Redis is away from here: count the lease again from when it is back.
        self.calmSince = None
        return failure

    def subscribed(self, protocol):
        self.calmSince = self.clock.seconds()
        self.invalidation.subscribed()
        return self.directory.subscribed()

    def unsubscribed(self):
        self.calmSince = None
        self.directory.unsubscribed()

    def messageReceived(self, channel, message):
        if channel == keys.DIRECTORY_CHANNEL:
            self.directory.notified(message)
        elif channel == keys.INVALIDATE_CHANNEL:
            self.invalidation.received(message)

    @defer.inlineCallbacks
    def stopService(self):
        service.Service.stopService(self)
        if self.beating is not None and self.beating.running:
            self.beating.stop()
        if self.transport is not None:
            try:
                # Settled inbox entries go before the heartbeat does.
                yield self.transport.stop()
            except Exception:
                logFailure(self.log, Failure(), "Stopping the cluster transport failed")
        redis = self.directory.redis
        try:
            # Others reap this node at their next check and route its inbox again.
            yield redis.delete(keys.heartbeatKey(self.node))
        except Exception:
            logFailure(self.log, Failure(), "Removing the heartbeat failed")
        if self.subscriber is not None:
            yield self.subscriber.disconnect()
        for connection in self.connections:
            yield connection.disconnect()
        self.connections = []
