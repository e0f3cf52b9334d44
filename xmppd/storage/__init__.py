# -*- test-case-name: tests.test_storage -*-
"""
Storage: the contracts in L{xmppd.storage.interfaces} and their backends.

C{sqlite} (a package: the engine and one module per store) is the
embedded, durable default; C{memory} is for tests.  Code outside this
package names a backend only through L{makeStorage} and talks to the result
only through L{IStorage}.
"""

from __future__ import annotations

import os

from xmppd.storage.interfaces import (IStorage, IUserStore, NoSuchUser,
                                      StorageError, UserExists)
from xmppd.storage.memory import MemoryStorage
from xmppd.storage.sqlite import CannotOpenDatabase, SQLiteStorage

__all__ = ["BACKENDS", "CannotOpenDatabase", "IStorage", "IUserStore", "MemoryStorage",
           "NoSuchUser", "SQLiteStorage", "StorageError", "UserExists", "makeStorage"]

BACKENDS = ("sqlite", "memory")

#: The name of the SQLite file inside the data directory.
SQLITE_FILE = "xmppd.sqlite"


def makeStorage(backend: str, dataDir: str, reactor=None) -> IStorage:
    """
    Build, without opening, the storage named by the configuration.

    @raise ValueError: C{backend} is not one of L{BACKENDS}.
    """
    if backend == "sqlite":
        return SQLiteStorage(os.path.join(dataDir, SQLITE_FILE), reactor)
    if backend == "memory":
        return MemoryStorage()
    raise ValueError(f"unknown storage backend {backend!r}; "
                     f"expected one of: {', '.join(BACKENDS)}")
