"""One secret for the cluster (xmppd.cluster.secret): dialback keys verify on every node."""

from __future__ import annotations

import pytest_twisted

from xmppd.cluster.secret import clusterSecret
from xmppd.config.redisurl import parseRedisURL
from xmppd.s2s.dialback import dialbackKey, keyMatches
from xmppd.storage.redisclient import connectRedis
from tests.redisserver import redisServer, _moduleRedis  # noqa: F401  (fixtures)


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
