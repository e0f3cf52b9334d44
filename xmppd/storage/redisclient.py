# -*- test-case-name: tests.test_redisclient -*-
"""
One way to open a connection to Redis, for the C{redis} storage backend and
the cluster: from a L{xmppd.config.redisurl.RedisAddress}, through
txredisapi (a dependency from the start: it speaks Redis's protocol on
Twisted, with reconnection and a pool).

Commands txredisapi has no method for (streams, C{WAITAOF}) go through the
connection's C{execute_command}.  C{rediss://} verifies Redis's certificate
against the system's trust roots and the host name, as any TLS client must.

Redis going away is an expected fault, not a bug, and is told as one
(issue 18): one line when the first connection to an address is lost, one
when every connection to it is back (L{watchLink}), and one line, never a
traceback, for each operation that failed because of it (L{logFailure},
L{isUnreachable}).  txredisapi's own line per reconnection attempt (each
connection of each pool, several a second) is not written: the two lines
say it all.
"""

from __future__ import annotations

import time

import txredisapi
from twisted.internet import defer, error, ssl
from twisted.logger import Logger, LogLevel, globalLogPublisher
from twisted.python.failure import Failure

from xmppd.config.redisurl import RedisAddress

#: Seconds to wait for a TCP connection to Redis.
CONNECT_TIMEOUT = 10
#: The longest wait, in seconds, between two attempts to reconnect to Redis
#: (txredisapi backs off to 10 s): a node's storage is back within this of
#: Redis's return.  The cluster's connections try once a heartbeat.
RECONNECT_MAX_DELAY = 2.0

log = Logger()

#: What an operation fails with when Redis cannot be reached: expected, told
#: in a line of its own.
UNREACHABLE = (txredisapi.ConnectionError, error.ConnectError, error.ConnectionLost,
               error.ConnectionDone, defer.TimeoutError, ConnectionError)


#: Error replies of a Redis that is there but cannot serve yet (loading its
#: files after a restart, a replica without its master): unreachable too.
NOT_READY = ("LOADING", "MASTERDOWN", "TRYAGAIN")


def isUnreachable(failure: Failure | BaseException) -> bool:
    """Whether C{failure} is Redis being unreachable (lost, refused, timed out, still loading), not a bug."""
    value = failure.value if isinstance(failure, Failure) else failure
    if isinstance(value, txredisapi.ResponseError):
        return str(value).startswith(NOT_READY)
    return isinstance(value, UNREACHABLE)


def logFailure(logger: Logger, failure: Failure, text: str, **fields) -> None:
    """
    Log that C{text} failed: one line with the reason when Redis is
    unreachable (the link's own lines say when it is lost and back), the
    traceback otherwise, since that is a bug.
    """
    if isUnreachable(failure):
        logger.warn(text + ": Redis is unreachable ({reason})", reason=failure.getErrorMessage()
                    or type(failure.value).__name__, event="redis", **fields)
    else:
        logger.failure(text, failure, **fields)


class _Link:
    """
    Every pool connected to one Redis address: says once that the first of
    them lost its connection, and once that every one of them has it back.
    """

    def __init__(self, address: str):
        self.address = address
        #: The factories whose pool is empty although they mean to be connected.
        self.down: set[int] = set()
        self.since: float | None = None

    def lost(self, factory) -> None:
        if getattr(factory, "disconnectCalled", False) or getattr(factory, "stopped", False) \
                or not factory.reconnect:
            return  # closed on purpose, or never reconnecting: not a fault
        if not self.down:
            self.since = time.monotonic()
            log.warn("Redis at {address}: connection lost; reconnecting (operations wait "
                     "or fail until it is back)", address=self.address, event="redis")
        self.down.add(id(factory))

    def back(self, factory) -> None:
        if id(factory) not in self.down:
            return
        self.down.discard(id(factory))
        if not self.down:
            log.info("Redis at {address}: connected again after {seconds:.1f} s",
                     address=self.address, seconds=time.monotonic() - (self.since or 0),
                     event="redis")

    def forget(self, factory) -> None:
        self.down.discard(id(factory))


#: Address -> its L{_Link}; one per Redis a node talks to (a handful).
_links: dict[str, _Link] = {}


def watchLink(factory, address: RedisAddress | str) -> None:
    """
    Tell (see the module docstring) when the pool of the txredisapi
    C{factory} loses all its connections to C{address} and when it has one
    again.  Costs nothing per command: only connections made and lost are seen.
    """
    name = str(address)
    link = _links.get(name)
    if link is None:
        link = _links[name] = _Link(name)
    added, removed = factory.addConnection, factory.delConnection

    def addConnection(conn):
        result = added(conn)
        if factory.size:
            link.back(factory)
        return result

    def delConnection(conn):
        result = removed(conn)
        if not factory.size:
            link.lost(factory)
        return result

    factory.addConnection = addConnection
    factory.delConnection = delConnection
    disconnect = factory.disconnect

    def disconnected(*args, **kwargs):
        link.forget(factory)
        return disconnect(*args, **kwargs)

    factory.disconnect = disconnected


def connectRedis(address: RedisAddress, poolsize: int = 1, reconnect: bool = True,
                 lazy: bool = False) -> defer.Deferred | txredisapi.ConnectionHandler:
    """
    A txredisapi connection (a pool of C{poolsize}) to C{address}: a
    Deferred that fires once connected, or, with C{lazy}, the handler at
    once (commands wait until the connection is up).  C{reconnect} keeps
    reconnecting after Redis went away, as a server must; its losses and
    returns are logged once each (L{watchLink}).
    """
    make = txredisapi.lazyConnectionPool if lazy else txredisapi.ConnectionPool
    result = make(host=address.host, port=address.port, dbid=address.db,
                  poolsize=poolsize, reconnect=reconnect, password=address.password,
                  username=address.username,
                  ssl_context_factory=ssl.optionsForClientTLS(address.host) if address.tls else False,
                  connectTimeout=CONNECT_TIMEOUT, convertNumbers=False)
    if reconnect and lazy:
        result._factory.maxDelay = RECONNECT_MAX_DELAY
        watchLink(result._factory, address)
    elif reconnect:
        # The factory is known once connected; its losses after that are watched.
        result.addCallback(_watched, address)
    return result


def _watched(handler, address: RedisAddress):
    factory = getattr(handler, "_factory", None)
    if factory is not None:
        factory.maxDelay = RECONNECT_MAX_DELAY
        watchLink(factory, address)
    return handler


def _withoutRetryLines(event: dict) -> None:
    """Pass on what txredisapi's reconnection says, but its line per attempt (info)."""
    if event.get("log_level", LogLevel.info) > LogLevel.info:
        globalLogPublisher(event)


class _QuietLegacyLog:
    """txredisapi's C{twisted.python.log}, without its line per dead connection discarded."""

    def __init__(self, legacy):
        self._legacy = legacy

    def msg(self, *message, **kwargs):
        if message != ("Discarding dead connection.",):
            self._legacy.msg(*message, **kwargs)

    def __getattr__(self, name):
        return getattr(self._legacy, name)


def _quietReconnection() -> None:
    """
    txredisapi reconnects each connection of each pool with a Twisted
    C{ClientService}, which writes a line per attempt: about ten a second
    while Redis is away.  Its pools get one whose attempts are not logged
    (its warnings and errors still are), and txredisapi's "Discarding dead
    connection." goes too.  A txredisapi without these names is left as it is.
    """
    service = getattr(txredisapi, "ClientService", None)
    if service is not None and not getattr(service, "_xmppdQuiet", False):
        quiet = type("ClientService", (service,), {
            "_xmppdQuiet": True,
            "_log": Logger(namespace="txredisapi.reconnection", observer=_withoutRetryLines)})
        txredisapi.ClientService = quiet
    legacy = getattr(txredisapi, "log", None)
    if legacy is not None and not isinstance(legacy, _QuietLegacyLog):
        txredisapi.log = _QuietLegacyLog(legacy)


_quietReconnection()
