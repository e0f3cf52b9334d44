# -*- test-case-name: tests.test_storage -*-
"""
Storage: the contracts in L{xmppd.storage.interfaces} and their backends.

C{sqlite} (a package: the engine and one module per store) is the
embedded, durable default; C{redis} (a package shaped the same way) is
the shared store of a cluster; C{memory} is for tests.  Code outside this
package names a backend only through L{makeStorage} and talks to the result
only through L{IStorage}.
"""

from __future__ import annotations

import os

from xmppd.storage.interfaces import (IStorage, IUserStore, NoSuchUser,
                                      StorageError, StorageFault, StorageFull, UserExists)
from xmppd.storage.memory import MemoryStorage
from xmppd.storage.redis import CannotOpenRedis, RedisNotDurable, RedisStorage
from xmppd.storage.sqlite import CannotOpenDatabase, SQLiteStorage

__all__ = ["BACKENDS", "CannotOpenDatabase", "CannotOpenRedis", "IStorage", "IUserStore",
           "MemoryStorage", "NoSuchUser", "RedisNotDurable", "RedisStorage",
           "SQLiteStorage", "StorageError", "StorageFault", "StorageFull", "UserExists", "makeStorage"]

BACKENDS = ("sqlite", "memory", "redis")

#: The name of the SQLite file inside the data directory.
SQLITE_FILE = "xmppd.sqlite"


def makeStorage(backend: str, dataDir: str, reactor=None, redis=None,
                redisUnsafe: bool = False) -> IStorage:
    """
    Build, without opening, the storage named by the configuration.

    @param redis: the L{xmppd.config.redisurl.RedisAddress} of
        C{storage.redis}, for the C{redis} backend.
    @param redisUnsafe: C{storage.redis_unsafe}.
    @raise ValueError: C{backend} is not one of L{BACKENDS}, or is
        C{redis} without an address.
    """
    if backend == "sqlite":
        return SQLiteStorage(os.path.join(dataDir, SQLITE_FILE), reactor)
    if backend == "memory":
        return MemoryStorage()
    if backend == "redis":
        if redis is None:
            raise ValueError('storage.redis: must be set when storage.backend is "redis", '
                             'e.g. "redis://127.0.0.1:6379/0"')
        return RedisStorage(redis, reactor, unsafe=redisUnsafe)
    raise ValueError(f"unknown storage backend {backend!r}; "
                     f"expected one of: {', '.join(BACKENDS)}")
