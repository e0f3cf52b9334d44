"""
One secret for the cluster (xmppd.cluster.secret): dialback keys verify on
every node, and a node listens only once it uses the cluster's secret.
"""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.protocols import portforward

from xmppd.cluster.secret import SECRET_KEY, clusterSecret
from xmppd.config.redisurl import parseRedisURL
from xmppd.s2s.dialback import dialbackKey, keyMatches
from xmppd.storage.redisclient import connectRedis
from xmppd.testing import ServerFixture
from tests.redisserver import redisServer, _moduleRedis  # noqa: F401  (fixtures)

#: Every wait of these tests ends after this many seconds.
TIMEOUT = 10.0


@pytest_twisted.ensureDeferred
async def test_everyNodeGetsTheFirstNodesSecret(redisServer):
    redis = await connectRedis(parseRedisURL(redisServer.url), reconnect=False)
    try:
        first = await clusterSecret(redis, b"\x01" * 32)
        second = await clusterSecret(redis, b"\x02" * 32)
        assert first == second == b"\x01" * 32
        key = dialbackKey(first, "remote.example", "example.org", "stream-1")
        assert keyMatches(second, "remote.example", "example.org", "stream-1", key)
    finally:
        await redis.disconnect()


@pytest_twisted.ensureDeferred
async def test_secretSurvivesARedisRestart(redisServer):
    redis = await connectRedis(parseRedisURL(redisServer.url), reconnect=False)
    await clusterSecret(redis, b"\x01" * 32)
    await redis.disconnect()
    redisServer.restart()
    redis = await connectRedis(parseRedisURL(redisServer.url), reconnect=False)
    try:
        assert await clusterSecret(redis, b"\x03" * 32) == b"\x01" * 32
    finally:
        await redis.disconnect()


class _HeldProxy(portforward.ProxyServer):
    """A connection to Redis that carries nothing until its factory's C{gate} fires."""

    def connectionMade(self):
        self.transport.pauseProducing()
        self.factory.gate.addCallback(self._open)

    def _open(self, result):
        if self.transport.connected:
            portforward.ProxyServer.connectionMade(self)
        return result


@pytest_twisted.ensureDeferred
async def test_noListenerBeforeTheClusterSecret(redisServer, tmp_path):
    """
    A node does not listen for servers (nor clients, over TCP or HTTP's
    WebSocket) before it knows the cluster's secret: until then it would make dialback keys that no other
    node verifies, and call the other nodes' keys invalid when a remote
    server asks it.  Here the cluster's Redis answers only once the node's
    storage (memory) is open, so the secret comes last.
    """
    cluster = b"\x01" * 32
    redisServer.command("SET", SECRET_KEY, cluster.hex())
    proxy = portforward.ProxyFactory("127.0.0.1", redisServer.port)
    proxy.protocol = _HeldProxy
    proxy.gate = defer.Deferred()
    port = reactor.listenTCP(0, proxy, interface="127.0.0.1")
    node = ServerFixture(config={
        "server": {"data_dir": str(tmp_path / "data")},
        "storage": {"backend": "memory"},
        "s2s": {"listen": "tcp:0:interface=127.0.0.1"},
        "cluster": {"node": "a", "heartbeat": 0.25, "lease": 1.5,
                    "redis": "redis://127.0.0.1:%d/0" % (port.getHost().port,)}})
    try:
        started = node.start()
        await node.service.storageService.whenReady()
        # Time for the listeners to listen, were they to listen now.
        await task.deferLater(reactor, 0.2, lambda: None)
        assert node.service.secret != cluster
        for name in ("s2s", "c2s", "http"):
            assert node.service.getServiceNamed(name).ports == [], name + " listens"
        proxy.gate.callback(None)
        await started.addTimeout(TIMEOUT, reactor)
        assert node.service.secret == cluster
        assert node.s2sPort and node.c2sPort and node.httpPort
    finally:
        await node.close()
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_unreadableSecretStopsTheNode(redisServer, tmp_path):
    """A cluster secret in Redis that is not one stops the node with one line, before it listens."""
    redisServer.command("SET", SECRET_KEY, "not-hex")
    node = ServerFixture(config={
        "server": {"data_dir": str(tmp_path / "data")},
        "storage": {"backend": "memory"},
        "s2s": {"listen": "tcp:0:interface=127.0.0.1"},
        "cluster": {"node": "a", "heartbeat": 0.25, "lease": 1.5, "redis": redisServer.url}})
    fatal = []
    try:
        started = node.start()
        node.service.onFatal = fatal.append
        with pytest.raises(Exception) as caught:
            await started.addTimeout(TIMEOUT, reactor)
        expected = ("cannot read the cluster's secret from Redis at 127.0.0.1:%d: "
                    "xmppd:c:secret is not a hex-encoded secret ('not-hex')" % (redisServer.port,))
        assert str(caught.value) == expected
        assert fatal and fatal[0] == expected
    finally:
        await node.close()
