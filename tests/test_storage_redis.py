"""
What only the Redis storage backend promises (L{xmppd.storage.redis}): what
it acknowledged survives Redis being killed, it refuses a Redis that could
lose acknowledged writes unless told otherwise, it fails readably when
Redis is away and recovers when Redis is back, and it keeps its keys under
its own prefix without scans on the hot paths.  The contract itself runs in
the shared suites (L{tests.test_storage} and the others parametrized over
every backend).
"""

import pytest
import pytest_twisted
from twisted.internet import defer

from tests.foreignserver import freePort
from tests.redisserver import redisServer, _moduleRedis  # noqa: F401  (fixtures)
from tests.test_storage import CREDENTIALS, DOMAIN
from tests.test_storage_issue5 import _message
from xmppd.config.redisurl import parseRedisURL
from xmppd.storage import StorageError, makeStorage
from xmppd.storage.interfaces import ArchivedMessage
from xmppd.storage.redis import CannotOpenRedis, RedisNotDurable, RedisStorage, engine, keys


async def _open(server, **kwargs) -> RedisStorage:
    store = RedisStorage(parseRedisURL(server.url), **kwargs)
    await store.open()
    return store


@pytest_twisted.ensureDeferred
async def test_survivesSIGKILL(redisServer):
    """An account, an offline message and an archived message acknowledged before Redis is killed are there after it restarts."""
    store = await _open(redisServer)
    assert store.mode == "always"
    await store.users.addUser("juliet", DOMAIN, CREDENTIALS)
    stored = await store.offline.store("juliet", DOMAIN, "<message><body>hi</body></message>",
                                       1700000000.25)
    await store.archive.append("juliet", DOMAIN, _message(1))
    redisServer.restart()
    await store.close()
    store = await _open(redisServer)
    try:
        assert await store.users.getCredentials("juliet", DOMAIN) == CREDENTIALS
        [message] = await store.offline.fetch("juliet", DOMAIN)
        assert (message.id, message.stamp) == (stored, 1700000000.25)
        page = await store.archive.query("juliet", DOMAIN)
        assert page.messages == (_message(1),)
    finally:
        await store.close()


def test_durabilityModes():
    """Only appendfsync always, or WAITAOF on an append-only Redis, count as durable."""
    assert engine.durabilityMode("yes", "always", False) == "always"
    assert engine.durabilityMode("yes", "always", True) == "always"
    assert engine.durabilityMode("yes", "everysec", True) == "waitaof"
    assert engine.durabilityMode("yes", "everysec", False) == "unsafe"
    assert engine.durabilityMode("no", "always", True) == "unsafe"
    assert engine.durabilityMode(None, None, False) == "unsafe"


@pytest_twisted.ensureDeferred
async def test_refusesEverysec(redisServer):
    """A Redis that fsyncs once a second (and has no WAITAOF) is refused, saying what to change."""
    redisServer.command("CONFIG", "SET", "appendfsync", "everysec")
    try:
        lax = await _open(redisServer, unsafe=True)
        await lax.close()
        if lax.mode == "waitaof":
            pytest.skip("this Redis has WAITAOF: everysec is made durable by it")
        store = RedisStorage(parseRedisURL(redisServer.url))
        with pytest.raises(RedisNotDurable) as raised:
            await store.open()
        text = str(raised.value)
        assert "appendonly=yes appendfsync=everysec" in text
        assert "appendfsync always" in text and "storage.redis_unsafe" in text
        with pytest.raises(StorageError, match="not open"):
            await store.users.userExists("romeo", DOMAIN)
    finally:
        redisServer.command("CONFIG", "SET", "appendfsync", "always")


@pytest_twisted.ensureDeferred
async def test_unsafeOptOut(redisServer):
    """With storage.redis_unsafe, a Redis without the append-only file is used anyway."""
    redisServer.command("CONFIG", "SET", "appendonly", "no")
    try:
        store = await _open(redisServer, unsafe=True)
        try:
            assert store.mode == "unsafe"
            await store.users.addUser("romeo", DOMAIN, CREDENTIALS)
            assert await store.users.userExists("romeo", DOMAIN)
        finally:
            await store.close()
    finally:
        redisServer.command("CONFIG", "SET", "appendonly", "yes")


@pytest_twisted.ensureDeferred
async def test_waitAOFSentAfterWrites(redisServer):
    """In WAITAOF mode a write is confirmed with WAITAOF; a Redis that cannot confirm fails the write."""
    store = await _open(redisServer)
    try:
        store.mode = "waitaof"
        sent = []
        redis = store._connection()
        original = redis.execute_command

        def recording(*args, **kwargs):
            sent.append(args[0])
            if args[0] == "WAITAOF":
                return defer.succeed([0, 0])
            return original(*args, **kwargs)

        redis.execute_command = recording
        with pytest.raises(StorageError, match="append-only file"):
            await store.users.addUser("romeo", DOMAIN, CREDENTIALS)
        assert "WAITAOF" in sent
        sent.clear()
        await store.users.userExists("romeo", DOMAIN)
        assert "WAITAOF" not in sent
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_unreachable(monkeypatch):
    """A Redis that does not answer makes opening fail with its address, within a bound."""
    monkeypatch.setattr(engine, "OPEN_TIMEOUT", 0.3)
    store = RedisStorage(parseRedisURL(f"redis://127.0.0.1:{freePort()}/0"))
    with pytest.raises(CannotOpenRedis, match="did not answer within 0.3 s"):
        await store.open()


@pytest_twisted.ensureDeferred
async def test_redisAwayThenBack(redisServer):
    """While Redis is away writes fail at once with a readable error (never acknowledged); when it is back they work again."""
    store = await _open(redisServer)
    try:
        await store.users.addUser("juliet", DOMAIN, CREDENTIALS)
        redisServer.kill()
        with pytest.raises(StorageError, match="unreachable"):
            await store.offline.store("juliet", DOMAIN, "<message/>", 1.0)
        redisServer.start()
        for _ in range(100):  # reconnection is txredisapi's, with its own delay
            try:
                await store.offline.store("juliet", DOMAIN, "<message/>", 1.0)
                break
            except StorageError:
                await _later(0.05)
        assert await store.offline.count("juliet", DOMAIN) == 1
    finally:
        await store.close()


def _later(seconds):
    from twisted.internet import reactor
    from twisted.internet.task import deferLater
    return deferLater(reactor, seconds, lambda: None)


@pytest_twisted.ensureDeferred
async def test_keysUnderPrefix(redisServer):
    """Every key the store writes is under "xmppd:s:", and an account's go with it."""
    store = await _open(redisServer)
    try:
        await store.users.addUser("juliet", DOMAIN, CREDENTIALS)
        await store.offline.store("juliet", DOMAIN, "<message/>", 1.0)
        await store.archive.append("juliet", DOMAIN, ArchivedMessage(
            "a1", 2.0, "romeo@example.org", "<message/>"))
        await store.rooms.put("conference.example.org", "lobby", "{}")
        await store.pubsub.createNode("juliet@example.org", "urn:x", {}, "juliet@example.org")
        every = redisServer.command("KEYS", "*")
        assert b"xmppd:s:offline:juliet@example.org" in every
        assert b"xmppd:s:mam:peer:u:juliet@example.org romeo@example.org" in every
        await store.users.removeUser("juliet", DOMAIN)
        # What is left: the room (no account's), the counters and the empty index.
        left = redisServer.command("KEYS", "*")
        assert b"juliet" not in left
    finally:
        await store.close()
    assert keys.offline("juliet@example.org") == "xmppd:s:offline:juliet@example.org"


def test_makeStorageNeedsAddress(tmp_path):
    """Backend "redis" without storage.redis is refused with the key to set."""
    with pytest.raises(ValueError, match="storage.redis: must be set"):
        makeStorage("redis", str(tmp_path))
    store = makeStorage("redis", str(tmp_path), redis=parseRedisURL("redis://h:1/2"))
    assert isinstance(store, RedisStorage) and str(store.address) == "redis://h:1/2"


@pytest_twisted.ensureDeferred
async def test_wholeArchiveAtOnce(redisServer):
    """An archive larger than Lua's argument limit still comes back whole with no limit."""
    store = await _open(redisServer)
    try:
        await store.users.addUser("juliet", DOMAIN, CREDENTIALS)
        count = 8200
        await defer.gatherResults([store.archive.append("juliet", DOMAIN, _message(n))
                                   for n in range(count)])
        page = await store.archive.query("juliet", DOMAIN, limit=None)
        assert (len(page.messages), page.count, page.complete) == (count, count, True)
        assert page.messages[-1] == _message(count - 1)
        page = await store.archive.query("juliet", DOMAIN, start=0.0, limit=None)
        assert len(page.messages) == count
    finally:
        await store.close()
