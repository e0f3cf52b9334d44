# -*- test-case-name: tests.test_storage_rooms -*-
"""
The SQLite store of multi-user chat rooms (L{IRoomStore}, XEP-0045 §10.1.3
persistent rooms) and their archives (XEP-0313 §3.3.2): the C{rooms} and
C{room_archive} tables.  A room's archive is queried and written by the
account archive's code (L{xmppd.storage.sqlite.archive}) over
L{ROOM_ARCHIVE}.
"""

from __future__ import annotations

import sqlite3

from twisted.internet import defer
from zope.interface import implementer

from xmppd.storage.interfaces import ArchivedMessage, IRoomStore, RoomRecord
from xmppd.storage.sqlite.archive import (ArchiveTable, archiveRow, insertArchived,
                                          queryArchive, removeArchivedBefore)
from xmppd.storage.sqlite.engine import SQLiteEngine

#: Room archives: shaped like the account archive, keyed by room.
ROOM_ARCHIVE = ArchiveTable("room_archive", ("service", "room"))


@implementer(IRoomStore)
class SQLiteRoomStore:
    """
    Rooms in the C{rooms} table, their archives in C{room_archive}.  Saves
    and appends are grouped, like the account archive's appends: a busy
    room saves and archives in bursts.
    """

    def __init__(self, storage: SQLiteEngine) -> None:
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
        return self._storage.runGrouped(insertArchived, ROOM_ARCHIVE, (service, name),
                                        archiveRow(message), f"room {name}@{service}")

    def queryMessages(self, service: str, name: str, peer: str | None = None,
                      start: float | None = None, end: float | None = None,
                      afterId: str | None = None, beforeId: str | None = None,
                      ids=None, limit: int | None = 50,
                      reverse: bool = False) -> defer.Deferred:
        return queryArchive(self._storage, ROOM_ARCHIVE, (service, name), peer, start,
                            end, afterId, beforeId, ids, limit, reverse)

    def replaceMessage(self, service: str, name: str, id: str, xml: str) -> defer.Deferred:
        # Grouped like the append it replaces: it runs after that append
        # even when the append has not committed yet (one worker, in order).
        return self._storage.runGrouped(_replaceMessage, service, name, str(id), str(xml))

    def removeMessagesOlderThan(self, cutoff: float) -> defer.Deferred:
        return self._storage.runInteraction(removeArchivedBefore, ROOM_ARCHIVE,
                                            float(cutoff))


def _putRoom(connection: sqlite3.Connection, service: str, name: str, state: str,
             updated: float) -> None:
    connection.execute(
        "INSERT INTO rooms (service, name, state, updated) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (service, name) DO UPDATE SET"
        " state = excluded.state, updated = excluded.updated",
        (service, name, state, updated))


def _replaceMessage(connection: sqlite3.Connection, service: str, name: str, id: str,
                    xml: str) -> bool:
    return connection.execute(
        "UPDATE room_archive SET xml = ? WHERE service = ? AND room = ? AND id = ?",
        (xml, service, name, id)).rowcount > 0


def _deleteRoom(connection: sqlite3.Connection, service: str, name: str) -> bool:
    connection.execute("DELETE FROM room_archive WHERE service = ? AND room = ?",
                       (service, name))
    return connection.execute("DELETE FROM rooms WHERE service = ? AND name = ?",
                              (service, name)).rowcount > 0
