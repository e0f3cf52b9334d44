# -*- test-case-name: tests.test_storage_fast -*-
"""
The SQLite store of FAST tokens (L{IFastTokenStore}, XEP-0484): the
C{fast_tokens} table, one row per client and slot, holding the token's
SHA-256 and never the token.  Rows cascade from C{users}; a password
change clears them (L{xmppd.storage.sqlite.accounts}).
"""

from __future__ import annotations

import sqlite3

from twisted.internet import defer
from zope.interface import implementer

from xmppd.storage.interfaces import FastToken, IFastTokenStore
from xmppd.storage.sqlite.accounts import requireUser
from xmppd.storage.sqlite.engine import SQLiteEngine

COLUMNS = "user_agent, mechanism, hash, issued, expiry, slot"


@implementer(IFastTokenStore)
class SQLiteFastTokenStore:
    """FAST tokens in the C{fast_tokens} table."""

    def __init__(self, storage: SQLiteEngine) -> None:
        self._storage = storage

    def issue(self, username: str, domain: str, token: FastToken) -> defer.Deferred:
        row = (username, domain, token.userAgent, token.mechanism, bytes(token.hash),
               float(token.issued), float(token.expiry))
        # Grouped (L{SQLiteEngine.runGrouped}): durable when it fires, but
        # the tokens of a storm of logins share one commit and one fsync.
        return self._storage.runGrouped(_issue, row)

    def get(self, username: str, domain: str, userAgent: str) -> defer.Deferred:
        # "new" sorts after "current": descending puts it first.
        d = self._storage.runQuery(
            f"SELECT {COLUMNS} FROM fast_tokens WHERE username = ? AND domain = ?"
            " AND user_agent = ? ORDER BY slot DESC", (username, domain, userAgent))
        return d.addCallback(_tokens)

    def promote(self, username: str, domain: str, userAgent: str,
                hash: bytes) -> defer.Deferred:
        # XEP-0484's rotation on a token's first use, before the login's
        # <success/>: grouped with the other logins' (one fsync for all of
        # them), and durable before the success goes out, so a crash can
        # never bring back the token it rotated out (see
        # L{xmppd.c2s.fast.FastTokens.afterTokenLogin}).
        return self._storage.runGrouped(_promote, username, domain, userAgent, bytes(hash))

    def revoke(self, username: str, domain: str, userAgent: str | None = None,
               hash: bytes | None = None) -> defer.Deferred:
        sql = "DELETE FROM fast_tokens WHERE username = ? AND domain = ?"
        params: tuple = (username, domain)
        if userAgent is not None:
            sql += " AND user_agent = ?"
            params += (userAgent,)
        if hash is not None:
            sql += " AND hash = ?"
            params += (bytes(hash),)
        return self._storage.runInteraction(
            lambda connection: connection.execute(sql, params).rowcount)

    def list(self, username: str, domain: str) -> defer.Deferred:
        d = self._storage.runQuery(
            f"SELECT {COLUMNS} FROM fast_tokens WHERE username = ? AND domain = ?"
            " ORDER BY user_agent, slot", (username, domain))
        return d.addCallback(_tokens)


def _tokens(rows: list[tuple]) -> list[FastToken]:
    return [FastToken(userAgent, mechanism, bytes(hash), issued, expiry, slot)
            for userAgent, mechanism, hash, issued, expiry, slot in rows]


def _issue(connection: sqlite3.Connection, row: tuple) -> None:
    requireUser(connection, row[0], row[1])
    connection.execute(
        "INSERT INTO fast_tokens (username, domain, user_agent, slot, mechanism, hash,"
        " issued, expiry) VALUES (?, ?, ?, 'new', ?, ?, ?, ?)"
        " ON CONFLICT (username, domain, user_agent, slot) DO UPDATE SET"
        " mechanism = excluded.mechanism, hash = excluded.hash,"
        " issued = excluded.issued, expiry = excluded.expiry", row)


def _promote(connection: sqlite3.Connection, username: str, domain: str,
             userAgent: str, hash: bytes) -> bool:
    key = (username, domain, userAgent)
    if connection.execute(
            "SELECT 1 FROM fast_tokens WHERE username = ? AND domain = ? AND user_agent = ?"
            " AND slot = 'new' AND hash = ?", key + (hash,)).fetchone() is None:
        return False
    connection.execute("DELETE FROM fast_tokens WHERE username = ? AND domain = ?"
                       " AND user_agent = ? AND slot = 'current'", key)
    connection.execute("UPDATE fast_tokens SET slot = 'current' WHERE username = ?"
                       " AND domain = ? AND user_agent = ? AND slot = 'new'", key)
    return True
