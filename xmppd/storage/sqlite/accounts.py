# -*- test-case-name: tests.test_storage,tests.test_storage_pubsub -*-
"""
The SQLite store of accounts (L{IUserStore}): the C{users} and
C{scram_credentials} tables.  Removing an account also removes its
publish-subscribe data (L{xmppd.storage.sqlite.pubsub.forgetAccount}).

Every other table holding data of an account references C{users}, so
L{requireUser} lives here too: the stores that write such data call it to
refuse a write for an account that does not exist in the contract's terms.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

from twisted.internet import defer
from zope.interface import implementer

from xmppd.core.scram import ScramCredential
from xmppd.storage.interfaces import IUserStore, NoSuchUser, UserExists, credentialsChanged
from xmppd.storage.sqlite.engine import SQLiteEngine
from xmppd.storage.sqlite.pubsub import forgetAccount


@implementer(IUserStore)
class SQLiteUserStore:
    """Accounts in the C{users} and C{scram_credentials} tables."""

    def __init__(self, storage: SQLiteEngine) -> None:
        self._storage = storage

    # Credentials are copied on the reactor thread, before the call returns,
    # so a caller mutating its dict afterwards cannot race the worker.

    def addUser(self, username: str, domain: str,
                credentials: Mapping[str, ScramCredential]) -> defer.Deferred:
        return self._storage.runInteraction(
            _addUser, username, domain, dict(credentials))

    def getCredentials(self, username: str, domain: str) -> defer.Deferred:
        # The left join tells "no such user" (no row) from "a user without
        # credentials" (one row of NULLs) in one consistent read.
        d = self._storage.runQuery(
            "SELECT c.mechanism, c.salt, c.iterations, c.stored_key, c.server_key"
            " FROM users AS u LEFT JOIN scram_credentials AS c USING (username, domain)"
            " WHERE u.username = ? AND u.domain = ?", (username, domain))
        return d.addCallback(_credentialsFromRows)

    def setCredentials(self, username: str, domain: str,
                       credentials: Mapping[str, ScramCredential]) -> defer.Deferred:
        return self._storage.runInteraction(
            _setCredentials, username, domain, dict(credentials))

    def removeUser(self, username: str, domain: str) -> defer.Deferred:
        return self._storage.runInteraction(_removeUser, username, domain)

    def userExists(self, username: str, domain: str) -> defer.Deferred:
        d = self._storage.runQuery(
            "SELECT 1 FROM users WHERE username = ? AND domain = ?", (username, domain))
        return d.addCallback(bool)

    def listUsers(self, domain: str | None = None) -> defer.Deferred:
        # SQLite's BINARY collation orders UTF-8 bytes, which is the order of
        # code points: the same order as Python's sorted().
        if domain is None:
            d = self._storage.runQuery(
                "SELECT username, domain FROM users ORDER BY username, domain")
        else:
            d = self._storage.runQuery(
                "SELECT username, domain FROM users WHERE domain = ? ORDER BY username",
                (domain,))
        return d.addCallback(lambda rows: [tuple(row) for row in rows])


def _credentialsFromRows(rows: list[tuple]) -> dict[str, ScramCredential] | None:
    if not rows:
        return None
    return {mechanism: ScramCredential(salt, iterations, storedKey, serverKey)
            for mechanism, salt, iterations, storedKey, serverKey in rows
            if mechanism is not None}


def _addUser(connection: sqlite3.Connection, username: str, domain: str,
             credentials: dict[str, ScramCredential]) -> None:
    cursor = connection.execute(
        "INSERT INTO users (username, domain) VALUES (?, ?)"
        " ON CONFLICT (username, domain) DO NOTHING", (username, domain))
    if cursor.rowcount == 0:
        raise UserExists(f"{username}@{domain}")
    _insertCredentials(connection, username, domain, credentials)


def _setCredentials(connection: sqlite3.Connection, username: str, domain: str,
                    credentials: dict[str, ScramCredential]) -> None:
    if connection.execute("SELECT 1 FROM users WHERE username = ? AND domain = ?",
                          (username, domain)).fetchone() is None:
        raise NoSuchUser(f"{username}@{domain}")
    old = _credentialsFromRows(connection.execute(
        "SELECT mechanism, salt, iterations, stored_key, server_key FROM scram_credentials"
        " WHERE username = ? AND domain = ?", (username, domain)).fetchall())
    if credentialsChanged(old, credentials):
        # A new password: the FAST tokens issued under the old one go too.
        connection.execute("DELETE FROM fast_tokens WHERE username = ? AND domain = ?",
                           (username, domain))
    connection.execute("DELETE FROM scram_credentials WHERE username = ? AND domain = ?",
                       (username, domain))
    _insertCredentials(connection, username, domain, credentials)


def _insertCredentials(connection: sqlite3.Connection, username: str, domain: str,
                       credentials: dict[str, ScramCredential]) -> None:
    connection.executemany(
        "INSERT INTO scram_credentials (username, domain, mechanism, salt,"
        " iterations, stored_key, server_key) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(username, domain, mechanism, c.salt, c.iterations, c.storedKey, c.serverKey)
         for mechanism, c in credentials.items()])


def _removeUser(connection: sqlite3.Connection, username: str, domain: str) -> None:
    # Credentials, and every later per-account table, go by ON DELETE CASCADE;
    # publish-subscribe rows are keyed by JID text, not by the users row,
    # so they are removed here, in the same transaction.
    cursor = connection.execute("DELETE FROM users WHERE username = ? AND domain = ?",
                                (username, domain))
    if cursor.rowcount == 0:
        raise NoSuchUser(f"{username}@{domain}")
    forgetAccount(connection, username, domain)


def requireUser(connection: sqlite3.Connection, username: str, domain: str) -> None:
    # Inside a write transaction, so the account cannot go before the write
    # that follows.  The foreign keys would refuse the row anyway; this says
    # why in the contract's terms.
    if connection.execute("SELECT 1 FROM users WHERE username = ? AND domain = ?",
                          (username, domain)).fetchone() is None:
        raise NoSuchUser(f"{username}@{domain}")

