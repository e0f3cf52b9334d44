# -*- test-case-name: tests.test_storage,tests.test_storage_issue5,tests.test_storage_rooms,tests.test_storage_pubsub -*-
"""
The embedded, durable storage backend: the SQLite engine
(L{xmppd.storage.sqlite.engine}) with every store on it, in one file.

This module is the only one that knows all the stores; the engine knows
none, and each store knows only the engine (and the accounts store, whose
C{users} table every account's data references).  A store for a new
feature is one more module of this package, a step appended to
L{xmppd.storage.sqlite.schema.MIGRATIONS}, and one line here.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from twisted.internet import defer
from zope.interface import implementer

from xmppd.storage.interfaces import IStorage, UserExists
from xmppd.storage.sqlite.accountdata import SQLiteAccountDataStore
from xmppd.storage.sqlite.accounts import SQLiteUserStore
from xmppd.storage.sqlite.archive import SQLiteArchiveStore
from xmppd.storage.sqlite.engine import SQLiteEngine
from xmppd.storage.sqlite.fast import SQLiteFastTokenStore
from xmppd.storage.sqlite.offline import SQLiteOfflineStore
from xmppd.storage.sqlite.pubsub import SQLitePubSubStore, loadServiceRows, pepRows
from xmppd.storage.sqlite.rooms import SQLiteRoomStore
from xmppd.storage.sqlite.rosters import ITEM_COLUMNS, SQLiteRosterStore, rowFromItem


@implementer(IStorage)
class SQLiteStorage(SQLiteEngine):
    """
    All stores in one SQLite file at C{path}.

    Feature stores run their SQL through the engine's L{runInteraction}
    (writes) and L{runQuery} (single reads); neither may be called before
    L{open} or after L{close}.
    """

    def __init__(self, path: str, reactor: Any = None, clock: Any = None) -> None:
        """
        @param reactor: runs the worker thread and its callbacks; the global
            reactor when not given.
        @param clock: an L{IReactorTime} for the times storage stamps itself
            (L{RoomRecord.updated}); the reactor when not given.
        """
        super().__init__(path, reactor, clock)
        self.users = SQLiteUserStore(self)
        self.rosters = SQLiteRosterStore(self)
        self.accountData = SQLiteAccountDataStore(self)
        self.offline = SQLiteOfflineStore(self)
        self.archive = SQLiteArchiveStore(self)
        self.rooms = SQLiteRoomStore(self)
        self.pubsub = SQLitePubSubStore(self)
        self.fast = SQLiteFastTokenStore(self)

    def importAccounts(self, records) -> defer.Deferred:
        # Rows are built here, on the reactor thread, like setItem's.
        users, credentials, items, versions, data = [], [], [], [], []
        for r in records:
            users.append((r.username, r.domain))
            credentials.extend((r.username, r.domain, mechanism, c.salt, c.iterations,
                                c.storedKey, c.serverKey)
                               for mechanism, c in r.credentials.items())
            items.extend((r.username, r.domain) + rowFromItem(item) for item in r.roster)
            if r.roster:
                versions.append((r.username, r.domain))
            data.extend((r.username, r.domain, key, value) for key, value in r.data.items())
        try:
            # Every new account's PEP service, empty or not: a node left
            # behind under its bare JID must not become the new account's.
            pep = [(f"{r.username}@{r.domain}", pepRows(r.pep)) for r in records]
        except (TypeError, ValueError) as e:
            return defer.fail(e)
        return self.runInteraction(_importAccounts, users, credentials, items, versions,
                                   data, pep, self.seconds())


def _importAccounts(connection: sqlite3.Connection, users, credentials, items,
                    versions, data, pep, created) -> None:
    try:
        connection.executemany("INSERT INTO users (username, domain) VALUES (?, ?)", users)
    except sqlite3.IntegrityError:
        # The transaction is rolled back: nothing of this import stays.
        existing = [u for u in users if connection.execute(
            "SELECT 1 FROM users WHERE username = ? AND domain = ?", u).fetchone()]
        name = "%s@%s" % existing[0] if existing else "the same account twice"
        raise UserExists(name) from None
    connection.executemany(
        "INSERT INTO scram_credentials (username, domain, mechanism, salt,"
        " iterations, stored_key, server_key) VALUES (?, ?, ?, ?, ?, ?, ?)", credentials)
    connection.executemany(
        "INSERT INTO roster_items (username, domain, " + ITEM_COLUMNS + ")"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", items)
    connection.executemany(
        "INSERT INTO roster_versions (username, domain, version) VALUES (?, ?, 1)", versions)
    connection.executemany(
        "INSERT INTO account_data (username, domain, key, value) VALUES (?, ?, ?, ?)", data)
    for service, nodes in pep:
        loadServiceRows(connection, service, nodes, created)
