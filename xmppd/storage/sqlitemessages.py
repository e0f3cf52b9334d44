# -*- test-case-name: tests.test_storage_issue5 -*-
"""
The SQLite stores for messages: offline messages (XEP-0160), account
archives (XEP-0313 §3.3.1), and multi-user chat rooms (XEP-0045 §10.1.3
persistent rooms) with their archives (XEP-0313 §3.3.2).  Their tables are
created by L{xmppd.storage.sqlite}'s migrations; the frequent writes go
through L{SQLiteStorage.runGrouped}, so concurrent stores share one
transaction and one fsync, and each caller's Deferred fires only after that
transaction has committed.  Both kinds of archive are queried by the same
code (L{queryArchive}), over an L{ArchiveTable}.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from zope.interface import implementer

from xmppd.storage.interfaces import (ArchivedMessage, ArchivePage, IArchiveStore,
                                      IOfflineStore, IRoomStore, ItemNotFound,
                                      OfflineMessage, RoomRecord, StorageError)
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
ROOM_ARCHIVE = ArchiveTable("room_archive", ("service", "room"))


def queryArchive(storage: SQLiteStorage, table: ArchiveTable, key: tuple[str, ...],
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


def _archiveRow(message: ArchivedMessage) -> tuple:
    # Built on the reactor thread: nothing the caller holds is read by the worker.
    return (str(message.id), float(message.stamp), str(message.peer), str(message.xml))


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
        return self._storage.runGrouped(_appendArchive, username, domain,
                                        _archiveRow(message))

    def query(self, username: str, domain: str, peer: str | None = None,
              start: float | None = None, end: float | None = None,
              afterId: str | None = None, beforeId: str | None = None,
              ids=None, limit: int | None = 50, reverse: bool = False) -> defer.Deferred:
        return queryArchive(self._storage, USER_ARCHIVE, (username, domain), peer, start,
                            end, afterId, beforeId, ids, limit, reverse)

    def removeOlderThan(self, cutoff: float) -> defer.Deferred:
        return self._storage.runInteraction(_removeArchivedBefore, USER_ARCHIVE,
                                            float(cutoff))


def _appendArchive(connection: sqlite3.Connection, username: str, domain: str,
                   row: tuple) -> None:
    _requireUser(connection, username, domain)
    _insertArchived(connection, USER_ARCHIVE, (username, domain), row,
                    f"{username}@{domain}")


def _insertArchived(connection: sqlite3.Connection, table: ArchiveTable,
                    key: tuple[str, ...], row: tuple, owner: str) -> None:
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


def _removeArchivedBefore(connection: sqlite3.Connection, table: ArchiveTable,
                          cutoff: float) -> int:
    return connection.execute(f"DELETE FROM {table.table} WHERE stamp < ?",
                              (cutoff,)).rowcount


@implementer(IRoomStore)
class SQLiteRoomStore:
    """
    Rooms in the C{rooms} table, their archives in C{room_archive}.  Saves
    and appends are grouped, like the account archive's appends: a busy
    room saves and archives in bursts.
    """

    def __init__(self, storage: SQLiteStorage) -> None:
        self._storage = storage

    def get(self, service: str, name: str) -> defer.Deferred:
        d = self._storage.runQuery(
            "SELECT service, name, state, updated FROM rooms WHERE service = ? AND name = ?",
            (service, name))
        return d.addCallback(lambda rows: RoomRecord(*rows[0]) if rows else None)

    def put(self, service: str, name: str, state: str) -> defer.Deferred:
        # SQLite would store bytes too, and give them back as such.
        if not isinstance(state, str):
            return defer.fail(TypeError("room state is JSON text (str)"))
        # Stamped here, when asked, not when the worker gets to it.
        return self._storage.runGrouped(_putRoom, service, name, state,
                                        self._storage.seconds())

    def delete(self, service: str, name: str) -> defer.Deferred:
        return self._storage.runInteraction(_deleteRoom, service, name)

    def list(self, service: str) -> defer.Deferred:
        # BINARY collation: code point order, as Python's sorted().
        d = self._storage.runQuery(
            "SELECT service, name, state, updated FROM rooms WHERE service = ?"
            " ORDER BY name", (service,))
        return d.addCallback(lambda rows: [RoomRecord(*row) for row in rows])

    def appendMessage(self, service: str, name: str,
                      message: ArchivedMessage) -> defer.Deferred:
        return self._storage.runGrouped(_insertArchived, ROOM_ARCHIVE, (service, name),
                                        _archiveRow(message), f"room {name}@{service}")

    def queryMessages(self, service: str, name: str, peer: str | None = None,
                      start: float | None = None, end: float | None = None,
                      afterId: str | None = None, beforeId: str | None = None,
                      ids=None, limit: int | None = 50,
                      reverse: bool = False) -> defer.Deferred:
        return queryArchive(self._storage, ROOM_ARCHIVE, (service, name), peer, start,
                            end, afterId, beforeId, ids, limit, reverse)

    def removeMessagesOlderThan(self, cutoff: float) -> defer.Deferred:
        return self._storage.runInteraction(_removeArchivedBefore, ROOM_ARCHIVE,
                                            float(cutoff))


def _putRoom(connection: sqlite3.Connection, service: str, name: str, state: str,
             updated: float) -> None:
    connection.execute(
        "INSERT INTO rooms (service, name, state, updated) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (service, name) DO UPDATE SET"
        " state = excluded.state, updated = excluded.updated",
        (service, name, state, updated))


def _deleteRoom(connection: sqlite3.Connection, service: str, name: str) -> bool:
    connection.execute("DELETE FROM room_archive WHERE service = ? AND room = ?",
                       (service, name))
    return connection.execute("DELETE FROM rooms WHERE service = ? AND name = ?",
                              (service, name)).rowcount > 0
