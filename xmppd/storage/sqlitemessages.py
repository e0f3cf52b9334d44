# -*- test-case-name: tests.test_storage_issue5 -*-
"""
The SQLite stores for messages: offline messages (XEP-0160) and archives
(XEP-0313).  Their tables are created by L{xmppd.storage.sqlite}'s
migrations; writes go through L{SQLiteStorage.runGrouped}, so concurrent
stores share one transaction and one fsync, and each caller's Deferred fires
only after that transaction has committed.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from twisted.internet import defer
from zope.interface import implementer

from xmppd.storage.interfaces import (ArchivedMessage, ArchivePage, IArchiveStore,
                                      IOfflineStore, ItemNotFound, OfflineMessage,
                                      StorageError)
from xmppd.storage.sqlite import SQLiteStorage, _requireUser


@implementer(IOfflineStore)
class SQLiteOfflineStore:
    """Offline messages in the C{offline_messages} table, grouped on write."""

    def __init__(self, storage: SQLiteStorage) -> None:
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
    _requireUser(connection, username, domain)
    return connection.execute(
        "INSERT INTO offline_messages (username, domain, xml, stamp) VALUES (?, ?, ?, ?)",
        (username, domain, xml, stamp)).lastrowid


def _deleteOffline(connection: sqlite3.Connection, username: str, domain: str,
                   ids: str) -> None:
    # One parameter however many ids: no limit on the number of variables.
    connection.execute(
        "DELETE FROM offline_messages WHERE username = ? AND domain = ?"
        " AND id IN (SELECT value FROM json_each(?))", (username, domain, ids))


@implementer(IArchiveStore)
class SQLiteArchiveStore:
    """
    Archives in the C{archive} table.  Appends are grouped: the caller never
    waits for them (archiving must not delay delivery), so they may as well
    share their fsyncs.
    """

    def __init__(self, storage: SQLiteStorage) -> None:
        self._storage = storage

    def append(self, username: str, domain: str,
               message: ArchivedMessage) -> defer.Deferred:
        row = (str(message.id), float(message.stamp), str(message.peer), str(message.xml))
        return self._storage.runGrouped(_appendArchive, username, domain, row)

    def query(self, username: str, domain: str, peer: str | None = None,
              start: float | None = None, end: float | None = None,
              afterId: str | None = None, beforeId: str | None = None,
              ids=None, limit: int | None = 50, reverse: bool = False) -> defer.Deferred:
        where = ["username = ?", "domain = ?"]
        params: list[Any] = [username, domain]
        if peer is not None:
            where.append("peer = ?")
            params.append(peer)
        if start is not None:
            where.append("stamp >= ?")
            params.append(float(start))
        if end is not None:
            where.append("stamp <= ?")
            params.append(float(end))
        if ids is not None:
            where.append("id IN (SELECT value FROM json_each(?))")
            params.append(json.dumps([str(i) for i in ids]))
        return self._storage.runReadInteraction(
            _queryArchive, username, domain, " AND ".join(where), tuple(params),
            afterId, beforeId, limit, reverse)

    def removeOlderThan(self, cutoff: float) -> defer.Deferred:
        return self._storage.runInteraction(_removeArchivedBefore, float(cutoff))


def _appendArchive(connection: sqlite3.Connection, username: str, domain: str,
                   row: tuple) -> None:
    _requireUser(connection, username, domain)
    cursor = connection.execute(
        "INSERT INTO archive (username, domain, id, stamp, peer, xml)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (username, domain, id) DO NOTHING",
        (username, domain) + row)
    if cursor.rowcount == 0:
        raise StorageError(f"archive id {row[0]!r} exists already for {username}@{domain}")


def _queryArchive(connection: sqlite3.Connection, username: str, domain: str,
                  where: str, params: tuple, afterId: str | None, beforeId: str | None,
                  limit: int | None, reverse: bool) -> ArchivePage:
    # The same paging as the memory backend's pageOf: the range between the
    # paging ids, then its first (or, in reverse, last) limit messages, one
    # more row read to tell whether the page is complete (XEP-0059 §2.2, §2.5).
    (count,) = connection.execute(
        f"SELECT count(*) FROM archive WHERE {where}", params).fetchone()
    ranged, rangeParams = where, params
    for anchor, comparison in ((afterId, ">"), (beforeId, "<")):
        if anchor is None:
            continue
        row = connection.execute(
            "SELECT seq FROM archive WHERE username = ? AND domain = ? AND id = ?",
            (username, domain, anchor)).fetchone()
        if row is None:
            raise ItemNotFound(anchor)
        ranged += f" AND seq {comparison} ?"
        rangeParams += (row[0],)
    sql = (f"SELECT id, stamp, peer, xml FROM archive WHERE {ranged}"
           f" ORDER BY seq {'DESC' if reverse else 'ASC'} LIMIT ?")
    if limit is None:
        rows = connection.execute(sql, rangeParams + (-1,)).fetchall()
        complete = True
    else:
        limit = max(limit, 0)
        rows = connection.execute(sql, rangeParams + (limit + 1,)).fetchall()
        complete = len(rows) <= limit
        rows = rows[:limit]
    if reverse:
        rows.reverse()
    return ArchivePage(tuple(ArchivedMessage(*row) for row in rows), complete, count)


def _removeArchivedBefore(connection: sqlite3.Connection, cutoff: float) -> int:
    return connection.execute("DELETE FROM archive WHERE stamp < ?", (cutoff,)).rowcount
