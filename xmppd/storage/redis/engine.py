# -*- test-case-name: tests.test_storage_redis,tests.test_storage -*-
"""
The connection of the C{redis} storage backend, its Lua scripts, and its
durability rule.

Durability (DESIGN §3, issue 14): a write whose Deferred fired is in
Redis's append-only file.  L{RedisEngine.open} asks Redis how it is set up
(C{CONFIG GET appendonly appendfsync}, and whether it knows C{WAITAOF})
and picks one of three modes:

  - C{"always"}: C{appendonly yes} and C{appendfsync always}; Redis fsyncs
    the file before it answers any write, so every answer is durable;
  - C{"waitaof"}: C{appendonly yes} with a laxer C{appendfsync}, on a Redis
    that has C{WAITAOF} (7.2 and later): each write is followed by
    C{WAITAOF 1 0 timeout}, and its Deferred fires only when Redis says
    the local append-only file holds it;
  - C{"unsafe"}: neither is possible (Redis 7.0 with C{everysec}, or the
    append-only file off).  Opening fails with L{RedisNotDurable}, whose
    text says what to change, unless the operator set
    C{storage.redis_unsafe = true}: then writes are acknowledged as soon as
    Redis has them in memory, and up to a second of them (or everything
    since the last snapshot) can be lost on a crash.

Every write a store makes goes through L{RedisEngine.write}; reads through
L{RedisEngine.read}.  Both run one Lua script (C{EVALSHA}, sent whole
only when Redis does not know it yet): a script runs atomically, so each contract operation is one atomic
step, and it costs one round trip.

txredisapi is imported when a store opens, not with this module: it
installs Twisted's default reactor when imported, and a node on SQLite
should not load it at all.
"""

from __future__ import annotations

import hashlib
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from xmppd.config.redisurl import RedisAddress
from xmppd.storage.interfaces import (ItemNotFound, NodeExists, NoSuchNode, NoSuchUser,
                                      StorageError, StorageFault, UserExists)

#: Seconds L{RedisEngine.open} waits for Redis to answer.
OPEN_TIMEOUT = 10
#: Milliseconds a write waits for C{WAITAOF} before it fails.
WAITAOF_TIMEOUT_MS = 5000

#: Prefixes of the errors scripts raise on purpose (C{redis.error_reply}),
#: and the exception each becomes.
ERRORS = {"NOSUCHUSER": NoSuchUser, "USEREXISTS": UserExists, "NOSUCHNODE": NoSuchNode,
          "NODEEXISTS": NodeExists, "ITEMNOTFOUND": ItemNotFound,
          "STORAGEERROR": StorageError}


class RedisNotDurable(StorageError):
    """Redis is set up so that acknowledged writes could be lost."""


class CannotOpenRedis(StorageError):
    """Redis could not be reached or refused us."""


class RedisUnreachable(StorageFault):
    """
    The connection to Redis was lost while an operation was under way:
    nothing of it was kept (a write unanswered is not acknowledged).  An
    expected fault: the connection's loss and return are logged once each
    (L{xmppd.storage.redisclient.watchLink}), so whoever asked answers its
    sender and logs no traceback.
    """


class Script:
    """One Lua script, with the name its errors are logged under."""

    __slots__ = ("name", "source", "sha")

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


def durabilityMode(appendonly: str | None, appendfsync: str | None,
                   hasWaitAOF: bool) -> str:
    """The mode (see the module docstring) a Redis set up like this allows."""
    if appendonly == "yes" and appendfsync == "always":
        return "always"
    if appendonly == "yes" and hasWaitAOF:
        return "waitaof"
    return "unsafe"


def describeSetup(appendonly: str | None, appendfsync: str | None) -> str:
    """C{appendonly=no appendfsync=everysec}, or what could not be read."""
    if appendonly is None:
        return "CONFIG GET refused (its settings cannot be checked)"
    return f"appendonly={appendonly} appendfsync={appendfsync}"


async def probe(redis: Any) -> tuple[str | None, str | None, bool]:
    """
    C{(appendonly, appendfsync, hasWaitAOF)} of the Redis behind C{redis};
    the settings are C{None} when C{CONFIG} is disabled (managed Redis).
    """
    import txredisapi
    appendonly = appendfsync = None
    try:
        reply = await redis.execute_command("CONFIG", "GET", "append*")
    except txredisapi.ResponseError:
        pass
    else:
        settings = dict(zip(reply[::2], reply[1::2]))
        appendonly, appendfsync = settings.get("appendonly"), settings.get("appendfsync")
    info = await redis.execute_command("COMMAND", "INFO", "WAITAOF")
    return appendonly, appendfsync, bool(info and info[0])


class RedisEngine:
    """
    The connection to Redis and the durability mode; the stores call
    L{read} and L{write}.
    """

    log = Logger()

    def __init__(self, address: RedisAddress, clock: Any = None, unsafe: bool = False,
                 reactor: Any = None) -> None:
        """
        @param unsafe: C{storage.redis_unsafe}: open even when Redis
            cannot make writes durable.
        @param clock: an L{IReactorTime} for the times storage stamps
            itself; the reactor when not given.
        """
        self.address = address
        self._clock = clock
        self._reactor = reactor
        self._unsafe = unsafe
        self._redis = None
        #: The durability mode chosen at L{open}.
        self.mode: str | None = None
        #: What L{open} found, as L{describeSetup} says it.
        self.setup: str | None = None

    def seconds(self) -> float:
        """The time now, in epoch seconds, from the clock given or the reactor."""
        clock = self._clock if self._clock is not None else self._reactor
        if clock is None:
            from twisted.internet import reactor as clock
        return float(clock.seconds())

    def open(self) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(self._open())

    async def _open(self) -> None:
        if self._redis is not None:
            return
        import txredisapi
        from xmppd.storage.redisclient import connectRedis
        redis = connectRedis(self.address, poolsize=1, reconnect=True, lazy=True)
        from twisted.internet import reactor as globalReactor
        reactor = self._reactor or globalReactor
        try:
            pong = redis.execute_command("PING")
            pong.addTimeout(OPEN_TIMEOUT, reactor)
            await pong
            appendonly, appendfsync, hasWaitAOF = await probe(redis)
        except defer.TimeoutError:
            await redis.disconnect()
            raise CannotOpenRedis(f"Redis at {self.address} did not answer within "
                                  f"{OPEN_TIMEOUT} s (is it running? storage.redis)") from None
        except txredisapi.RedisError as e:
            await redis.disconnect()
            raise CannotOpenRedis(f"Redis at {self.address}: {e}") from None
        mode = durabilityMode(appendonly, appendfsync, hasWaitAOF)
        setup = describeSetup(appendonly, appendfsync)
        if mode == "unsafe":
            if not self._unsafe:
                await redis.disconnect()
                raise RedisNotDurable(
                    f"Redis at {self.address} has {setup}: acknowledged messages could be "
                    f"lost on a crash or power failure. Set \"appendonly yes\" and "
                    f"\"appendfsync always\" in redis.conf (or use Redis 7.2+ with "
                    f"appendonly yes, for WAITAOF), or set storage.redis_unsafe = true "
                    f"to accept losing writes")
            self.log.warn("Redis at {address} has {setup}; storage.redis_unsafe is set: "
                          "acknowledged writes may be lost on a crash",
                          address=str(self.address), setup=setup)
        self._redis, self.mode, self.setup = redis, mode, setup

    def close(self) -> defer.Deferred:
        redis, self._redis = self._redis, None
        if redis is None:
            return defer.succeed(None)
        return redis.disconnect().addCallback(lambda _: None)

    def _connection(self) -> Any:
        if self._redis is None:
            raise StorageError("the Redis store is not open")
        return self._redis

    def read(self, script: Script, keys=(), args=()) -> defer.Deferred:
        """Run C{script}; Deferred firing its reply."""
        return self._eval(script, keys, args).addErrback(self._failed)

    def write(self, script: Script, keys=(), args=()) -> defer.Deferred:
        """Run C{script}; Deferred firing its reply once it is durable."""
        d = self._eval(script, keys, args)
        if self.mode == "waitaof":
            d.addCallback(self._waitAOF)
        return d.addErrback(self._failed)

    # Plain callbacks rather than coroutines, and EVALSHA with the hash
    # computed once: every storage call of a node comes through here.

    def _eval(self, script: Script, keys, args) -> defer.Deferred:
        redis = self._redis
        if redis is None:
            return defer.fail(StorageError("the Redis store is not open"))
        try:
            d = redis.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        except Exception:
            return defer.fail()
        return d.addErrback(self._loadScript, redis, script, keys, args)

    def _loadScript(self, failure, redis, script: Script, keys, args):
        """On C{NOSCRIPT} (a new or restarted Redis), send the script itself."""
        import txredisapi
        if failure.check(txredisapi.ResponseError) and str(failure.value).startswith("NOSCRIPT"):
            return redis.execute_command("EVAL", script.source, len(keys), *keys, *args)
        return failure

    def _waitAOF(self, reply):
        redis = self._redis
        if redis is None:
            raise StorageError("the Redis store was closed before the write was durable")

        def confirmed(counts):
            if int(counts[0]) < 1:
                raise StorageError("Redis did not confirm the write in its append-only "
                                   f"file within {WAITAOF_TIMEOUT_MS} ms")
            return reply

        return redis.execute_command("WAITAOF", 1, 0, WAITAOF_TIMEOUT_MS).addCallback(confirmed)

    def _failed(self, failure):
        import txredisapi
        from xmppd.storage.redisclient import isUnreachable
        if isUnreachable(failure):
            raise RedisUnreachable(f"Redis at {self.address} is unreachable: {failure.value}")
        if failure.check(txredisapi.ResponseError):
            raise _error(str(failure.value))
        return failure


def _error(text: str) -> Exception:
    """The exception a script's error reply stands for."""
    # Redis prefixes script errors with the script's location on some
    # versions; the code we raise is the first word of our message.
    for code, exception in ERRORS.items():
        index = text.find(code + " ")
        if index >= 0:
            return exception(text[index + len(code) + 1:])
    return StorageError(text)
