# -*- test-case-name: tests.test_storage,tests.test_privatexml,tests.test_vcard -*-
"""
The SQLite store of account data (L{IAccountDataStore}): the
C{account_data} table of string values under string keys, where private XML
(XEP-0049), vCards (XEP-0054) and other small per-account documents live.
"""

from __future__ import annotations

import sqlite3

from twisted.internet import defer
from zope.interface import implementer

from xmppd.storage.interfaces import IAccountDataStore
from xmppd.storage.sqlite.accounts import requireUser
from xmppd.storage.sqlite.engine import SQLiteEngine


@implementer(IAccountDataStore)
class SQLiteAccountDataStore:
    """Account data in the C{account_data} table."""

    def __init__(self, storage: SQLiteEngine) -> None:
        self._storage = storage

    def get(self, username: str, domain: str, key: str) -> defer.Deferred:
        d = self._storage.runQuery(
            "SELECT value FROM account_data WHERE username = ? AND domain = ? AND key = ?",
            (username, domain, key))
        return d.addCallback(lambda rows: rows[0][0] if rows else None)

    def set(self, username: str, domain: str, key: str, value: str) -> defer.Deferred:
        # SQLite would store bytes or numbers too, and give them back as such.
        if not isinstance(value, str):
            return defer.fail(TypeError("account data values are str"))
        return self._storage.runInteraction(_setAccountData, username, domain, key, value)

    def delete(self, username: str, domain: str, key: str) -> defer.Deferred:
        return self._storage.runInteraction(_deleteAccountData, username, domain, key)

    def getAll(self, username: str, domain: str, prefix: str = "") -> defer.Deferred:
        # Not LIKE: it folds ASCII case and gives "%" and "_" a meaning.
        # substr() and length() both count characters, not bytes.
        d = self._storage.runQuery(
            "SELECT key, value FROM account_data WHERE username = ? AND domain = ?"
            " AND substr(key, 1, length(?)) = ?", (username, domain, prefix, prefix))
        return d.addCallback(dict)


    def usersWithKey(self, domain: str, key: str) -> defer.Deferred:
        """
        The accounts of C{domain} that have C{key}: a scan of the table,
        for what is rare and looked for once (L{offline.imports}).  Not in
        L{IAccountDataStore}: a backend without it (Redis) is read per
        account instead.
        """
        d = self._storage.runQuery(
            "SELECT username FROM account_data WHERE domain = ? AND key = ?", (domain, key))
        return d.addCallback(lambda rows: {username for (username,) in rows})


def _setAccountData(connection: sqlite3.Connection, username: str, domain: str,
                    key: str, value: str) -> None:
    requireUser(connection, username, domain)
    connection.execute(
        "INSERT INTO account_data (username, domain, key, value) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (username, domain, key) DO UPDATE SET value = excluded.value",
        (username, domain, key, value))


def _deleteAccountData(connection: sqlite3.Connection, username: str, domain: str,
                       key: str) -> None:
    requireUser(connection, username, domain)
    connection.execute(
        "DELETE FROM account_data WHERE username = ? AND domain = ? AND key = ?",
        (username, domain, key))
