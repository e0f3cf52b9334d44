# -*- test-case-name: tests.test_drain -*-
"""
A cluster node's control channel (issue 14, item 8): what C{xmppctl drain
NODE} asks a node of the cluster, through Redis, since the operator's
machine need not be the node's.

At start (once the cluster service has joined and the client listeners
listen), the node publishes its public client address under
C{xmppd:c:address:NODE} (C{[cluster] client_address}; by default this
machine's fully qualified name and the port the c2s listener got), clears
a draining mark of a previous life from C{xmppd:c:draining}, and
subscribes to C{xmppd:c:control:NODE} (L{xmppd.cluster.keys}).

A request on that channel is one JSON object C{{"op": "drain" | "undrain",
"reply": TOKEN}}; the node pushes its answer, one JSON object (C{{"ok":
true, ...}} or C{{"ok": false, "error": "one line"}}), on the list
C{xmppd:c:reply:TOKEN}, which expires after L{REPLY_TTL} seconds, so an
answer nobody waited for does not stay.  C{xmppctl} waits for it with a
bounded C{BLPOP}.

C{drain} picks the other node: among the nodes whose heartbeat is alive,
that are not draining and have published an address, the one holding the
fewest sessions; with none, the drain is refused (clients sent nowhere
would only come back).  Then L{xmppd.c2s.drain.Drain} sends the clients
there and refuses new ones, and the node is added to C{xmppd:c:draining}
(C{xmppctl cluster} shows it).  While draining, the node looks again at
every heartbeat: when the node it sends clients to has died or started
draining, new clients are sent to another one.  C{undrain} takes clients
again.  A node that restarts starts taking clients.
"""

from __future__ import annotations

import json
import secrets
import socket

import txredisapi
from twisted.application import service
from twisted.internet import defer, ssl, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from xmppd.c2s.drain import Drain
from xmppd.cluster import keys
from xmppd.config.schema import splitEndpoint
from xmppd.storage.redisclient import CONNECT_TIMEOUT, RECONNECT_MAX_DELAY, watchLink

#: Seconds an answer waits in Redis for the C{xmppctl} that asked.
REPLY_TTL = 60


def newToken() -> str:
    """A reply list's name part: unguessable, so one operator never reads another's answer."""
    return secrets.token_hex(12)


def defaultClientAddress(config, port: int | None) -> str:
    """
    C{[cluster] client_address}, else this machine's fully qualified name
    with C{port} (the port the c2s listener got), else the port of
    C{c2s.endpoint}; IPv6 literals in brackets (RFC 6120 §4.9.3.19).
    """
    if config.cluster.client_address:
        return config.cluster.client_address
    if port is None:
        fields, _ = splitEndpoint(config.c2s.endpoint)
        port = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 5222
    host = socket.getfqdn()
    if ":" in host:
        host = "[%s]" % (host,)
    return "%s:%d" % (host, port)


def observe(d: defer.Deferred) -> defer.Deferred:
    """A Deferred with C{d}'s result that leaves C{d}'s result to its other waiters."""
    copy = defer.Deferred()

    def passOn(result):
        copy.callback(result) if not isinstance(result, Failure) else copy.errback(result)
        return result
    d.addBoth(passOn)
    return copy


class _Subscriber(txredisapi.SubscriberProtocol):
    """The subscription to this node's control channel; tells its L{ControlService}."""

    def connectionMade(self):
        d = defer.maybeDeferred(txredisapi.SubscriberProtocol.connectionMade, self)
        control = self.factory.control
        d.addCallback(lambda _: self.subscribe([keys.controlChannel(control.node)]))
        d.addCallback(lambda _: control.subscribed())
        d.addErrback(self.failed)
        return d

    def failed(self, failure):
        # A connection lost meanwhile is made again by the factory.
        if not failure.check(txredisapi.ConnectionError):
            self.factory.control.log.failure("Subscribing to the control channel failed",
                                             failure)

    def messageReceived(self, pattern, channel, message):
        self.factory.control.request(message)


class _SubscriberFactory(txredisapi.RedisFactory):
    protocol = _Subscriber


class ControlService(service.Service):
    """See the module docstring; added by L{xmppd.tap} on the nodes of a cluster."""

    log = Logger()
    name = "control"

    def __init__(self, server):
        self.server = server
        self.cluster = server.cluster
        self.node = self.cluster.node
        self.drain = Drain(self.factories, server.clock, server.hooks)
        self.address: str | None = None
        self.subscriber = None
        #: While draining: the node clients are sent to, and the look at it every heartbeat.
        self.target: str | None = None
        self.watching: task.LoopingCall | None = None
        #: Fires once the node listens on its control channel.
        self.ready = defer.Deferred()

    def factories(self):
        try:
            return list(self.server.getServiceNamed("c2s").factories)
        except KeyError:
            return []

    @property
    def redis(self):
        return self.cluster.directory.redis

    def startService(self) -> None:
        service.Service.startService(self)
        d = self._start()
        d.addErrback(lambda f: self.log.failure("Starting the control channel failed", f))

    @defer.inlineCallbacks
    def _start(self):
        yield observe(self.cluster.started)
        ports = yield observe(self.server.getServiceNamed("c2s").ready)
        port = ports[0].getHost().port if ports else None
        self.address = defaultClientAddress(self.server.config, port)
        yield self.redis.set(keys.addressKey(self.node), self.address)
        yield self.redis.srem(keys.DRAINING, self.node)
        if not self.running:
            return  # Stopped while starting: no subscription left behind.
        address = self.cluster.address
        factory = _SubscriberFactory(None, address.db, 1, isLazy=True, password=address.password,
                                     username=address.username, convertNumbers=False)
        factory.control = self
        factory.reconnect = True
        factory.maxDelay = RECONNECT_MAX_DELAY
        watchLink(factory, address)
        self.subscriber = factory
        factory.startConnecting(txredisapi._makeEndpoint(
            address.host, address.port, CONNECT_TIMEOUT,
            ssl.optionsForClientTLS(address.host) if address.tls else None))

    def subscribed(self):
        self.log.info("Cluster node {node} takes operations on {channel}; clients reach it at "
                      "{address}", node=self.node, channel=keys.controlChannel(self.node),
                      address=self.address)
        if not self.ready.called:
            self.ready.callback(self)

    def request(self, message) -> None:
        try:
            request = json.loads(message)
            op, token = request["op"], request["reply"]
            if not isinstance(token, str) or not token.isalnum():
                raise ValueError("bad reply token")
        except (ValueError, KeyError, TypeError):
            self.log.warn("Ignoring a malformed control request: {message!r}", message=message)
            return
        d = defer.maybeDeferred(self.perform, op)
        d.addErrback(lambda f: {"ok": False, "error": "the node failed: %s" % (
            f.getErrorMessage(),)})
        d.addCallback(self.answer, token)
        d.addErrback(lambda f: self.log.failure("Answering a control request failed", f))

    def perform(self, op: str):
        if op == "drain":
            return self.startDraining()
        if op == "undrain":
            return self.stopDraining()
        return {"ok": False, "error": "unknown operation %r" % (op,)}

    @defer.inlineCallbacks
    def answer(self, result: dict, token: str):
        key = keys.replyKey(token)
        yield self.redis.rpush(key, json.dumps(result))
        yield self.redis.expire(key, REPLY_TTL)

    @defer.inlineCallbacks
    def startDraining(self):
        target = yield self.otherNode()
        if target is None:
            return {"ok": False, "error": "no other live node (not draining, with a client "
                    "address) to send %s's clients to" % (self.node,)}
        node, address = target
        yield self.redis.sadd(keys.DRAINING, self.node)
        self.target = node
        streams = self.drain.start(address)
        if self.watching is None:
            self.watching = task.LoopingCall(self.watchTarget)
            self.watching.clock = self.server.clock
            self.watching.start(self.cluster.heartbeat, now=False)
        return {"ok": True, "node": self.node, "draining": True, "to": node,
                "address": address, "streams": streams}

    @defer.inlineCallbacks
    def watchTarget(self):
        """The node clients are sent to died or drains: pick another (module docstring)."""
        try:
            redis = self.redis
            alive = yield redis.get(keys.heartbeatKey(self.target))
            if alive is not None and not (yield redis.sismember(keys.DRAINING, self.target)):
                return
            target = yield self.otherNode()
        except Exception:
            self.log.failure("Looking at the node clients are sent to failed")
            return
        if not self.drain.draining:
            return
        if target is None:
            self.log.warn("Draining: {node} is gone and no other node can take clients",
                          node=self.target)
            return
        self.target = target[0]
        self.drain.retarget(target[1])

    def stopWatching(self) -> None:
        if self.watching is not None:
            if self.watching.running:
                self.watching.stop()
            self.watching = None

    @defer.inlineCallbacks
    def stopDraining(self):
        self.stopWatching()
        self.target = None
        self.drain.stop()
        yield self.redis.srem(keys.DRAINING, self.node)
        return {"ok": True, "node": self.node, "draining": False}

    @defer.inlineCallbacks
    def otherNode(self):
        """(node, client address) of the live, not draining node with the fewest sessions."""
        redis = self.redis
        nodes = sorted(n for n in (yield redis.smembers(keys.NODES)) if n != self.node)
        if not nodes:
            return None
        beats = yield redis.mget([keys.heartbeatKey(n) for n in nodes])
        addresses = yield redis.mget([keys.addressKey(n) for n in nodes])
        draining = set((yield redis.smembers(keys.DRAINING)))
        best = None
        for node, beat, address in zip(nodes, beats, addresses):
            if beat is None or address is None or node in draining:
                continue
            held = yield redis.scard(keys.heldKey(node))
            if best is None or held < best[0]:
                best = (held, node, address)
        return None if best is None else best[1:]

    @defer.inlineCallbacks
    def stopService(self):
        service.Service.stopService(self)
        self.stopWatching()
        self.drain.stopLoop()
        if self.subscriber is not None:
            try:
                yield self.subscriber.disconnect()
            except Exception:
                self.log.failure("Closing the control subscription failed")
            self.subscriber = None
