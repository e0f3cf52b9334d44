# -*- test-case-name: tests.test_storage_redis -*-
"""
The shared storage backend for clusters: every store on one Redis.

L{RedisStorage} (in L{xmppd.storage.redis.backend}) assembles the engine
and the stores; code outside L{xmppd.storage} reaches it only through
L{xmppd.storage.makeStorage}.  The modules:

  - C{engine}: the connection, the Lua scripts' runner, and the durability
    rule (C{appendfsync always}, or C{WAITAOF} after every write);
  - C{keys}: every key, as a table;
  - one module per store, as in L{xmppd.storage.sqlite}: C{accounts},
    C{rosters}, C{accountdata}, C{offline}, C{archive}, C{rooms},
    C{pubsub};
  - C{backend}: L{RedisStorage}, the engine with every store on it.
"""

from xmppd.storage.redis import engine, keys
from xmppd.storage.redis.backend import RedisStorage
from xmppd.storage.redis.engine import CannotOpenRedis, RedisNotDurable

__all__ = ["CannotOpenRedis", "RedisNotDurable", "RedisStorage", "engine", "keys"]
