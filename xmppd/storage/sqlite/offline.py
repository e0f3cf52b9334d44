# -*- test-case-name: tests.test_storage_issue5,tests.test_offline -*-
"""
The SQLite store of offline messages (L{IOfflineStore}, XEP-0160): the
C{offline_messages} table.  Stores and deletes go through
L{SQLiteEngine.runGrouped}, so concurrent stores share one transaction and
one fsync, and each caller's Deferred fires only after that transaction has
committed.
"""

from __future__ import annotations

import json
import sqlite3

from twisted.internet import defer
from zope.interface import implementer

from xmppd.storage.interfaces import IOfflineStore, OfflineMessage
from xmppd.storage.sqlite.accounts import requireUser
from xmppd.storage.sqlite.engine import SQLiteEngine


@implementer(IOfflineStore)
class SQLiteOfflineStore:
    """Offline messages in the C{offline_messages} table, grouped on write."""

    def __init__(self, storage: SQLiteEngine) -> None:
        self._storage = storage

    def store(self, username: str, domain: str, xml: str, stamp: float) -> defer.Deferred:
        if not isinstance(xml, str):
            return defer.fail(TypeError("offline messages are serialized XML (str)"))
        return self._storage.runGrouped(_storeOffline, username, domain, xml, float(stamp))

    def count(self, username: str, domain: str) -> defer.Deferred:
        d = self._storage.runQuery(
            "SELECT count(*) FROM offline_messages WHERE username = ? AND domain = ?",
            (username, domain))
        return d.addCallback(lambda rows: rows[0][0])

    def fetch(self, username: str, domain: str, limit: int | None = None) -> defer.Deferred:
        # LIMIT -1 is SQLite's "no limit".
        d = self._storage.runQuery(
            "SELECT id, xml, stamp FROM offline_messages WHERE username = ? AND domain = ?"
            " ORDER BY id LIMIT ?",
            (username, domain, -1 if limit is None else max(limit, 0)))
        return d.addCallback(lambda rows: [OfflineMessage(*row) for row in rows])

    def delete(self, username: str, domain: str, ids) -> defer.Deferred:
        ids = [int(i) for i in ids]
        if not ids:
            return defer.succeed(None)
        return self._storage.runGrouped(_deleteOffline, username, domain, json.dumps(ids))


def _storeOffline(connection: sqlite3.Connection, username: str, domain: str,
                  xml: str, stamp: float) -> int:
    requireUser(connection, username, domain)
    return connection.execute(
        "INSERT INTO offline_messages (username, domain, xml, stamp) VALUES (?, ?, ?, ?)",
        (username, domain, xml, stamp)).lastrowid


def _deleteOffline(connection: sqlite3.Connection, username: str, domain: str,
                   ids: str) -> None:
    # One parameter however many ids: no limit on the number of variables.
    connection.execute(
        "DELETE FROM offline_messages WHERE username = ? AND domain = ?"
        " AND id IN (SELECT value FROM json_each(?))", (username, domain, ids))
