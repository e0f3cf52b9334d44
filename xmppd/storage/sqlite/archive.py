# -*- test-case-name: tests.test_storage_issue5,tests.test_mam -*-
"""
The SQLite store of account archives (L{IArchiveStore}, XEP-0313 §3.3.1):
the C{archive} table, and the archive queries and writes that room
archives (L{xmppd.storage.sqlite.rooms}) share: both kinds of archive are
queried by the same code (L{queryArchive}), over an L{ArchiveTable}.
Appends go through L{SQLiteEngine.runGrouped}, so concurrent appends share
one transaction and one fsync.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from zope.interface import implementer

from xmppd.storage.interfaces import (ArchivedMessage, ArchivePage, IArchiveStore,
                                      ItemNotFound, StorageError)
from xmppd.storage.sqlite.accounts import requireUser
from xmppd.storage.sqlite.engine import SQLiteEngine


@dataclass(frozen=True)
class ArchiveTable:
    """
    Where one kind of archive lives: a table with the columns C{seq, id,
    stamp, peer, xml}, plus the key columns naming whose archive a row is
    in.  Every archive query and write below is built from one of these,
    so an account's archive and a room's behave alike.
    """

    table: str
    keys: tuple[str, ...]

    @property
    def keyWhere(self) -> str:
        """The condition selecting one archive, one parameter per key column."""
        return " AND ".join(f"{column} = ?" for column in self.keys)


USER_ARCHIVE = ArchiveTable("archive", ("username", "domain"))


def queryArchive(storage: SQLiteEngine, table: ArchiveTable, key: tuple[str, ...],
                 peer: str | None, start: float | None, end: float | None,
                 afterId: str | None, beforeId: str | None, ids, limit: int | None,
                 reverse: bool) -> defer.Deferred:
    """
    L{IArchiveStore.query} on the archive C{key} (values of C{table.keys})
    of C{table}, in one read transaction.
    """
    where = [table.keyWhere]
    params: list[Any] = list(key)
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
    return storage.runReadInteraction(
        _queryArchive, table, tuple(key), " AND ".join(where), tuple(params),
        afterId, beforeId, limit, reverse)


def archiveRow(message: ArchivedMessage) -> tuple:
    """The row values of C{message} after the archive's key columns."""
    # Built on the reactor thread: nothing the caller holds is read by the worker.
    return (str(message.id), float(message.stamp), str(message.peer), str(message.xml))


@implementer(IArchiveStore)
class SQLiteArchiveStore:
    """
    Archives in the C{archive} table.  Appends are grouped: the caller never
    waits for them (archiving must not delay delivery), so they may as well
    share their fsyncs.
    """

    def __init__(self, storage: SQLiteEngine) -> None:
        self._storage = storage

    def append(self, username: str, domain: str,
               message: ArchivedMessage) -> defer.Deferred:
        return self._storage.runGrouped(_appendArchive, username, domain,
                                        archiveRow(message))

    def query(self, username: str, domain: str, peer: str | None = None,
              start: float | None = None, end: float | None = None,
              afterId: str | None = None, beforeId: str | None = None,
              ids=None, limit: int | None = 50, reverse: bool = False) -> defer.Deferred:
        return queryArchive(self._storage, USER_ARCHIVE, (username, domain), peer, start,
                            end, afterId, beforeId, ids, limit, reverse)

    def removeOlderThan(self, cutoff: float) -> defer.Deferred:
        return self._storage.runInteraction(removeArchivedBefore, USER_ARCHIVE,
                                            float(cutoff))


def _appendArchive(connection: sqlite3.Connection, username: str, domain: str,
                   row: tuple) -> None:
    requireUser(connection, username, domain)
    insertArchived(connection, USER_ARCHIVE, (username, domain), row,
                   f"{username}@{domain}")


def insertArchived(connection: sqlite3.Connection, table: ArchiveTable,
                   key: tuple[str, ...], row: tuple, owner: str) -> None:
    """
    Add C{row} (from L{archiveRow}) to the archive C{key} of C{table}.

    @raise StorageError: the archive has a message with that id already.
    """
    columns = ", ".join(table.keys)
    cursor = connection.execute(
        f"INSERT INTO {table.table} ({columns}, id, stamp, peer, xml)"
        f" VALUES ({', '.join('?' * (len(key) + 4))})"
        f" ON CONFLICT ({columns}, id) DO NOTHING", key + row)
    if cursor.rowcount == 0:
        raise StorageError(f"archive id {row[0]!r} exists already for {owner}")


def _queryArchive(connection: sqlite3.Connection, table: ArchiveTable,
                  key: tuple[str, ...], where: str, params: tuple, afterId: str | None,
                  beforeId: str | None, limit: int | None, reverse: bool) -> ArchivePage:
    # The same paging as the memory backend's pageOf: the range between the
    # paging ids, then its first (or, in reverse, last) limit messages, one
    # more row read to tell whether the page is complete (XEP-0059 §2.2, §2.5).
    (count,) = connection.execute(
        f"SELECT count(*) FROM {table.table} WHERE {where}", params).fetchone()
    ranged, rangeParams = where, params
    for anchor, comparison in ((afterId, ">"), (beforeId, "<")):
        if anchor is None:
            continue
        row = connection.execute(
            f"SELECT seq FROM {table.table} WHERE {table.keyWhere} AND id = ?",
            key + (anchor,)).fetchone()
        if row is None:
            raise ItemNotFound(anchor)
        ranged += f" AND seq {comparison} ?"
        rangeParams += (row[0],)
    sql = (f"SELECT id, stamp, peer, xml FROM {table.table} WHERE {ranged}"
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


def removeArchivedBefore(connection: sqlite3.Connection, table: ArchiveTable,
                         cutoff: float) -> int:
    """Remove every message of C{table} older than C{cutoff}; return how many."""
    return connection.execute(f"DELETE FROM {table.table} WHERE stamp < ?",
                              (cutoff,)).rowcount

