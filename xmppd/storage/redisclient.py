# -*- test-case-name: tests.test_redisclient -*-
"""
One way to open a connection to Redis, for the C{redis} storage backend and
the cluster: from a L{xmppd.config.redisurl.RedisAddress}, through
txredisapi (a dependency from the start: it speaks Redis's protocol on
Twisted, with reconnection and a pool).

Commands txredisapi has no method for (streams, C{WAITAOF}) go through the
connection's C{execute_command}.  C{rediss://} verifies Redis's certificate
against the system's trust roots and the host name, as any TLS client must.
"""

from __future__ import annotations

import txredisapi
from twisted.internet import defer, ssl

from xmppd.config.redisurl import RedisAddress

#: Seconds to wait for a TCP connection to Redis.
CONNECT_TIMEOUT = 10


def connectRedis(address: RedisAddress, poolsize: int = 1, reconnect: bool = True,
                 lazy: bool = False) -> defer.Deferred | txredisapi.ConnectionHandler:
    """
    A txredisapi connection (a pool of C{poolsize}) to C{address}: a
    Deferred that fires once connected, or, with C{lazy}, the handler at
    once (commands wait until the connection is up).  C{reconnect} keeps
    reconnecting after Redis went away, as a server must.
    """
    make = txredisapi.lazyConnectionPool if lazy else txredisapi.ConnectionPool
    return make(host=address.host, port=address.port, dbid=address.db,
                poolsize=poolsize, reconnect=reconnect, password=address.password,
                username=address.username,
                ssl_context_factory=ssl.optionsForClientTLS(address.host) if address.tls else False,
                connectTimeout=CONNECT_TIMEOUT, convertNumbers=False)
