# -*- test-case-name: tests.test_storage,tests.test_roster -*-
"""
The SQLite store of rosters (L{IRosterStore}, RFC 6121 §2): the
C{roster_items} and C{roster_versions} tables.  L{ITEM_COLUMNS} and
L{rowFromItem} are shared with the account import of
L{xmppd.storage.sqlite.backend}, which writes roster items in bulk.
"""

from __future__ import annotations

import json
import sqlite3

from twisted.internet import defer
from zope.interface import implementer

from xmppd.storage.interfaces import IRosterStore, Roster, RosterItem
from xmppd.storage.sqlite.accounts import requireUser
from xmppd.storage.sqlite.engine import SQLiteEngine


@implementer(IRosterStore)
class SQLiteRosterStore:
    """Rosters in the C{roster_items} and C{roster_versions} tables."""

    def __init__(self, storage: SQLiteEngine) -> None:
        self._storage = storage

    def getRoster(self, username: str, domain: str) -> defer.Deferred:
        # One statement is one snapshot, so the version always matches the
        # items even while another connection writes.  The outer joins give
        # one row even for a roster with no version and no items.
        d = self._storage.runQuery(
            "SELECT v.version, i.jid, i.name, i.subscription, i.ask, i.groups,"
            " i.approved, i.pending_in, i.pending_in_status, i.pending_in_extensions"
            " FROM (SELECT ? AS username, ? AS domain) AS a"
            " LEFT JOIN roster_versions AS v USING (username, domain)"
            " LEFT JOIN roster_items AS i USING (username, domain)",
            (username, domain))
        return d.addCallback(_rosterFromRows)

    def getItem(self, username: str, domain: str, jid: str) -> defer.Deferred:
        d = self._storage.runQuery(
            "SELECT " + ITEM_COLUMNS + " FROM roster_items"
            " WHERE username = ? AND domain = ? AND jid = ?", (username, domain, jid))
        return d.addCallback(lambda rows: _itemFromRow(rows[0]) if rows else None)

    def setItem(self, username: str, domain: str, item: RosterItem) -> defer.Deferred:
        # Turned into a row here, on the reactor thread: a bad item fails at
        # once, and nothing the caller holds is read by the worker.
        try:
            row = rowFromItem(item)
        except (TypeError, ValueError) as e:
            return defer.fail(e)
        return self._storage.runInteraction(_setRosterItem, username, domain, row)

    def removeItem(self, username: str, domain: str, jid: str) -> defer.Deferred:
        return self._storage.runInteraction(_removeRosterItem, username, domain, jid)


ITEM_COLUMNS = ("jid, name, subscription, ask, groups, approved, pending_in,"
                 " pending_in_status, pending_in_extensions")


def rowFromItem(item: RosterItem) -> tuple:
    return (item.jid, item.name, item.subscription, bool(item.ask),
            json.dumps(list(item.groups), ensure_ascii=False), bool(item.approved),
            bool(item.pendingIn), item.pendingInStatus, item.pendingInExtensions)


def _itemFromRow(row: tuple) -> RosterItem:
    (jid, name, subscription, ask, groups, approved, pendingIn, pendingInStatus,
     pendingInExtensions) = row
    return RosterItem(jid=jid, name=name, subscription=subscription, ask=bool(ask),
                      groups=tuple(json.loads(groups)), approved=bool(approved),
                      pendingIn=bool(pendingIn), pendingInStatus=pendingInStatus,
                      pendingInExtensions=pendingInExtensions)


def _rosterFromRows(rows: list[tuple]) -> Roster:
    version = rows[0][0] or 0
    return Roster(version, {row[1]: _itemFromRow(row[1:]) for row in rows
                            if row[1] is not None})


def _bumpRosterVersion(connection: sqlite3.Connection, username: str,
                       domain: str) -> int:
    # Not RETURNING, which needs SQLite 3.35; upserts need only 3.24.
    connection.execute(
        "INSERT INTO roster_versions (username, domain, version) VALUES (?, ?, 1)"
        " ON CONFLICT (username, domain) DO UPDATE SET version = version + 1",
        (username, domain))
    (version,) = connection.execute(
        "SELECT version FROM roster_versions WHERE username = ? AND domain = ?",
        (username, domain)).fetchone()
    return version


def _setRosterItem(connection: sqlite3.Connection, username: str, domain: str,
                   row: tuple) -> int:
    requireUser(connection, username, domain)
    connection.execute(
        "INSERT INTO roster_items (username, domain, " + ITEM_COLUMNS + ")"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (username, domain, jid) DO UPDATE SET"
        " name = excluded.name, subscription = excluded.subscription,"
        " ask = excluded.ask, groups = excluded.groups,"
        " approved = excluded.approved, pending_in = excluded.pending_in,"
        " pending_in_status = excluded.pending_in_status,"
        " pending_in_extensions = excluded.pending_in_extensions",
        (username, domain) + row)
    return _bumpRosterVersion(connection, username, domain)


def _removeRosterItem(connection: sqlite3.Connection, username: str, domain: str,
                      jid: str) -> int:
    requireUser(connection, username, domain)
    connection.execute(
        "DELETE FROM roster_items WHERE username = ? AND domain = ? AND jid = ?",
        (username, domain, jid))
    # Even when there was nothing to remove, as the memory backend does: a
    # client holding any earlier version is simply sent the whole roster.
    return _bumpRosterVersion(connection, username, domain)

