"""
Redis URLs in the configuration and the one way to connect
(xmppd.config.redisurl, xmppd.storage.redisclient), and how Redis going
away is told (tests/test_e2e_redis_faults.py shows it on a running node).
"""

from __future__ import annotations

import pytest
import pytest_twisted
import txredisapi
from twisted.internet import error
from twisted.logger import Logger, LogLevel, formatEvent, globalLogPublisher
from twisted.python.failure import Failure

from xmppd.config.redisurl import RedisAddress, parseRedisURL, redisURL
from xmppd.config.schema import ConfigError
from xmppd.storage import redisclient
from xmppd.storage.redisclient import connectRedis, isUnreachable, logFailure, watchLink
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


# -- Redis going away: told in lines, never tracebacks (issue 18) -------------------


def failureOf(exception: BaseException) -> Failure:
    try:
        raise exception
    except BaseException:
        return Failure()


@pytest.mark.parametrize("exception, expected", [
    (txredisapi.ConnectionError("Lost connection"), True),
    (error.ConnectionRefusedError(), True),
    (ConnectionResetError(), True),
    (txredisapi.ResponseError("LOADING Redis is loading the dataset in memory"), True),
    (txredisapi.ResponseError("NOSCRIPT No matching script"), False),
    (ValueError("a bug"), False),
])
def test_unreachable(exception, expected):
    """Lost, refused, reset, still loading: Redis unreachable; an error reply or a bug: not."""
    assert isUnreachable(failureOf(exception)) is expected


def test_unreachableIsOneLine():
    """An operation that failed because Redis is away is one warning, with the reason, no traceback."""
    events = []
    logFailure(Logger(observer=events.append), failureOf(txredisapi.ConnectionError("Lost connection")),
               "Reading inbox {inbox} failed", inbox="i")
    [event] = events
    assert event["log_level"] == LogLevel.warn and "log_failure" not in event
    assert formatEvent(event) == "Reading inbox i failed: Redis is unreachable (Lost connection)"


def test_bugKeepsItsTraceback():
    """Anything else is a bug: logged with its traceback."""
    events = []
    logFailure(Logger(observer=events.append), failureOf(ValueError("a bug")), "Reading failed")
    [event] = events
    assert event["log_level"] == LogLevel.critical and event["log_failure"].check(ValueError)


class FakePool:
    """What L{watchLink} sees of a txredisapi factory."""

    def __init__(self):
        self.size = 0
        self.reconnect = True
        self.disconnectCalled = False

    def addConnection(self, conn):
        self.size += 1

    def delConnection(self, conn):
        self.size -= 1

    def disconnect(self):
        self.disconnectCalled = True


@pytest.fixture
def linkLog(monkeypatch):
    events = []
    monkeypatch.setattr(redisclient, "log", Logger(observer=events.append))
    monkeypatch.setattr(redisclient, "_links", {})
    return events


def test_linkLostAndBackOnce(linkLog):
    """
    Every pool to one address losing its connection is one "lost" line;
    the last of them back is one "back" line.
    """
    pools = [FakePool(), FakePool()]
    for pool in pools:
        watchLink(pool, "redis://127.0.0.1:6379/0")
        pool.addConnection("c")
    assert linkLog == []  # connecting the first time is no news
    for pool in pools:
        pool.delConnection("c")
    pools[0].addConnection("c")
    assert [formatEvent(e) for e in linkLog] == [
        "Redis at redis://127.0.0.1:6379/0: connection lost; reconnecting (operations "
        "wait or fail until it is back)"]
    pools[1].addConnection("c")
    assert len(linkLog) == 2
    assert formatEvent(linkLog[1]).startswith(
        "Redis at redis://127.0.0.1:6379/0: connected again after ")


def test_closingIsNotLosing(linkLog):
    """A pool closed on purpose (the node stopping) or not reconnecting says nothing."""
    closed, once = FakePool(), FakePool()
    once.reconnect = False
    for pool in (closed, once):
        watchLink(pool, "redis://127.0.0.1:6379/0")
        pool.addConnection("c")
    closed.disconnect()
    closed.delConnection("c")
    once.delConnection("c")
    assert linkLog == []


def test_noLinePerReconnectionAttempt():
    """txredisapi's pools reconnect without a line per attempt; warnings still pass."""
    assert txredisapi.ClientService._xmppdQuiet
    seen = []
    globalLogPublisher.addObserver(seen.append)
    try:
        logger = txredisapi.ClientService._log
        logger.info("Scheduling retry {attempt} to connect", attempt=1)
        logger.warn("something else")
    finally:
        globalLogPublisher.removeObserver(seen.append)
    assert [formatEvent(e) for e in seen] == ["something else"]
