"""Redis URLs in the configuration and the one way to connect (xmppd.config.redisurl, xmppd.storage.redisclient)."""

from __future__ import annotations

import pytest
import pytest_twisted

from xmppd.config.redisurl import RedisAddress, parseRedisURL, redisURL
from xmppd.config.schema import ConfigError
from xmppd.storage.redisclient import connectRedis
from tests.redisserver import redisServer, _moduleRedis  # noqa: F401  (fixtures)


@pytest.mark.parametrize("url, address", [
    ("redis://127.0.0.1:6379/0", RedisAddress("127.0.0.1", 6379, 0)),
    ("redis://localhost", RedisAddress("localhost")),
    ("redis://:s%40cret@redis.example:6380/3",
     RedisAddress("redis.example", 6380, 3, None, "s@cret")),
    ("redis://xmppd:pw@[::1]:7000/1", RedisAddress("::1", 7000, 1, "xmppd", "pw")),
    ("rediss://redis.example/2", RedisAddress("redis.example", 6379, 2, tls=True)),
])
def test_parse(url, address):
    assert parseRedisURL(url) == address


@pytest.mark.parametrize("url, message", [
    ("http://127.0.0.1:6379", "redis:// or rediss://"),
    ("redis://", "names no host"),
    ("redis://host:99999/0", "port must be a number"),
    ("redis://host/zero", "database must be a number"),
    ("redis://host/0?timeout=1", "no ?query"),
])
def test_refused(url, message):
    with pytest.raises(ConfigError) as e:
        redisURL()("storage.redis", url)
    assert str(e.value).startswith("storage.redis: ")
    assert message in str(e.value)


def test_passwordNotShown():
    address = parseRedisURL("redis://:hunter2@h:1/0")
    assert "hunter2" not in str(address) and "hunter2" not in repr(address)


def test_emptyMeansUnset():
    assert redisURL(allowEmpty=True)("cluster.redis", "") is None


@pytest_twisted.ensureDeferred
async def test_connects(redisServer):
    redis = await connectRedis(parseRedisURL(redisServer.url), reconnect=False)
    try:
        await redis.set("k", "v")
        assert await redis.get("k") == "v"
        assert await redis.execute_command("PING") == "PONG"
    finally:
        await redis.disconnect()
