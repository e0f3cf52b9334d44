# -*- test-case-name: tests.test_storage -*-
"""
The embedded, durable storage backend: one SQLite file.

SQLite calls block, so none runs on the reactor thread.  One dedicated worker
thread owns the only connection: it opens it, runs every statement and closes
it.  With a single worker, statements also run in the order they were asked
for, and nothing needs a lock.

The file is in WAL mode with C{synchronous=FULL}: a write is on disk when its
Deferred fires, and readers do not block the writer.  C{xmppctl} opens the same
file while the server runs, so both wait up to L{BUSY_TIMEOUT_MS} for the
other's lock instead of failing at once.  Every write is one transaction,
begun with C{BEGIN IMMEDIATE} so that the wait for the write lock happens up
front, never half way through.

Offline messages, archive appends (an account's or a room's) and room saves,
which come in bursts and each must be on disk before it is acknowledged, use
group commit (L{SQLiteStorage.runGrouped}):
the writes queued while the worker is busy share one transaction and one
fsync, and each Deferred still fires only after that transaction committed.

The schema version is C{PRAGMA user_version}; L{MIGRATIONS} lists the steps
that build it, and a feature that needs tables appends a step.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from xmppd.core.scram import ScramCredential
from xmppd.storage.interfaces import (IAccountDataStore, IRosterStore, IStorage,
                                      IUserStore, NoSuchUser, Roster, RosterItem,
                                      StorageError, UserExists)

BUSY_TIMEOUT_MS = 5000

#: Schema steps: applying step N (counting from 1) takes the schema from
#: version N - 1 to N.  Append new steps; never edit one that has shipped.
#: Every table holding data of an account must reference
#: C{users (username, domain) ON DELETE CASCADE}: removing the user row is how
#: an account and everything it owns are removed.
MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE users (
               username TEXT NOT NULL,
               domain TEXT NOT NULL,
               PRIMARY KEY (username, domain)
           ) WITHOUT ROWID""",
        "CREATE INDEX users_by_domain ON users (domain, username)",
        """CREATE TABLE scram_credentials (
               username TEXT NOT NULL,
               domain TEXT NOT NULL,
               mechanism TEXT NOT NULL,
               salt BLOB NOT NULL,
               iterations INTEGER NOT NULL,
               stored_key BLOB NOT NULL,
               server_key BLOB NOT NULL,
               PRIMARY KEY (username, domain, mechanism),
               FOREIGN KEY (username, domain) REFERENCES users (username, domain)
                   ON DELETE CASCADE
           ) WITHOUT ROWID""",
    ),
    (
        # Rosters (RFC 6121 §2).  groups is a JSON array of strings, in the
        # order the client gave them; the flags are 0 or 1.
        """CREATE TABLE roster_items (
               username TEXT NOT NULL,
               domain TEXT NOT NULL,
               jid TEXT NOT NULL,
               name TEXT,
               subscription TEXT NOT NULL,
               ask INTEGER NOT NULL,
               groups TEXT NOT NULL,
               approved INTEGER NOT NULL,
               pending_in INTEGER NOT NULL,
               pending_in_status TEXT,
               PRIMARY KEY (username, domain, jid),
               FOREIGN KEY (username, domain) REFERENCES users (username, domain)
                   ON DELETE CASCADE
           ) WITHOUT ROWID""",
        # A roster without a row here is at version 0.
        """CREATE TABLE roster_versions (
               username TEXT NOT NULL,
               domain TEXT NOT NULL,
               version INTEGER NOT NULL,
               PRIMARY KEY (username, domain),
               FOREIGN KEY (username, domain) REFERENCES users (username, domain)
                   ON DELETE CASCADE
           ) WITHOUT ROWID""",
        """CREATE TABLE account_data (
               username TEXT NOT NULL,
               domain TEXT NOT NULL,
               key TEXT NOT NULL,
               value TEXT NOT NULL,
               PRIMARY KEY (username, domain, key),
               FOREIGN KEY (username, domain) REFERENCES users (username, domain)
                   ON DELETE CASCADE
           ) WITHOUT ROWID""",
    ),
    (
        # Offline messages (XEP-0160).  AUTOINCREMENT: ids grow in the order
        # messages were stored and are never reused, even after the newest
        # is delivered and deleted.
        """CREATE TABLE offline_messages (
               id INTEGER PRIMARY KEY AUTOINCREMENT,
               username TEXT NOT NULL,
               domain TEXT NOT NULL,
               xml TEXT NOT NULL,
               stamp REAL NOT NULL,
               FOREIGN KEY (username, domain) REFERENCES users (username, domain)
                   ON DELETE CASCADE
           )""",
        "CREATE INDEX offline_messages_by_account ON offline_messages (username, domain, id)",
        # Message archives (XEP-0313).  seq is the archive order; id is the
        # stanza-id (XEP-0359) given out to clients, unique per account, and
        # never used for ordering.
        """CREATE TABLE archive (
               seq INTEGER PRIMARY KEY AUTOINCREMENT,
               username TEXT NOT NULL,
               domain TEXT NOT NULL,
               id TEXT NOT NULL,
               stamp REAL NOT NULL,
               peer TEXT NOT NULL,
               xml TEXT NOT NULL,
               FOREIGN KEY (username, domain) REFERENCES users (username, domain)
                   ON DELETE CASCADE
           )""",
        "CREATE UNIQUE INDEX archive_by_id ON archive (username, domain, id)",
        "CREATE INDEX archive_by_account ON archive (username, domain, seq)",
        "CREATE INDEX archive_by_peer ON archive (username, domain, peer, seq)",
        "CREATE INDEX archive_by_stamp ON archive (username, domain, stamp)",
        # The retention sweep crosses every account.
        "CREATE INDEX archive_by_age ON archive (stamp)",
    ),
    (
        # Multi-user chat (XEP-0045 §10.1.3): persistent rooms.  Rooms
        # belong to no account, so nothing here references users.  state is
        # JSON text owned by muc/; updated is the epoch seconds of the last
        # put.  Not WITHOUT ROWID: a room's state can outgrow the small rows
        # that layout suits.
        """CREATE TABLE rooms (
               service TEXT NOT NULL,
               name TEXT NOT NULL,
               state TEXT NOT NULL,
               updated REAL NOT NULL,
               PRIMARY KEY (service, name)
           )""",
        # Room archives (XEP-0313 §3.3.2), shaped like the account archive
        # so both share their queries (xmppd.storage.sqlitemessages).  No
        # foreign key to rooms: a room that is not persistent has no row
        # there but may still be archived.  peer is the sender's occupant JID.
        """CREATE TABLE room_archive (
               seq INTEGER PRIMARY KEY AUTOINCREMENT,
               service TEXT NOT NULL,
               room TEXT NOT NULL,
               id TEXT NOT NULL,
               stamp REAL NOT NULL,
               peer TEXT NOT NULL,
               xml TEXT NOT NULL
           )""",
        "CREATE UNIQUE INDEX room_archive_by_id ON room_archive (service, room, id)",
        "CREATE INDEX room_archive_by_room ON room_archive (service, room, seq)",
        "CREATE INDEX room_archive_by_peer ON room_archive (service, room, peer, seq)",
        "CREATE INDEX room_archive_by_stamp ON room_archive (service, room, stamp)",
        "CREATE INDEX room_archive_by_age ON room_archive (stamp)",
    ),
]

SCHEMA_VERSION = len(MIGRATIONS)


class CannotOpenDatabase(StorageError):
    """
    The database file cannot be opened, created or upgraded.  The message
    names the file and the reason, and is meant to be shown as it is.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot open database {path}: {reason}")
        self.path = path
        self.reason = reason


@implementer(IStorage)
class SQLiteStorage:
    """
    All stores in one SQLite file at C{path}.

    Feature stores run their SQL through L{runInteraction} (writes) and
    L{runQuery} (single reads); neither may be called before L{open} or after
    L{close}.
    """

    log = Logger()

    def __init__(self, path: str, reactor: Any = None, clock: Any = None) -> None:
        """
        @param reactor: runs the worker thread and its callbacks; the global
            reactor when not given.
        @param clock: an L{IReactorTime} for the times storage stamps itself
            (L{RoomRecord.updated}); the reactor when not given.
        """
        self.path = path
        self.users = SQLiteUserStore(self)
        self.rosters = SQLiteRosterStore(self)
        self.accountData = SQLiteAccountDataStore(self)
        # Imported here: the message stores build on this module's helpers.
        from xmppd.storage.sqlitemessages import (SQLiteArchiveStore, SQLiteOfflineStore,
                                                  SQLiteRoomStore)
        self.offline = SQLiteOfflineStore(self)
        self.archive = SQLiteArchiveStore(self)
        self.rooms = SQLiteRoomStore(self)
        self._reactor = reactor
        self._clock = clock
        # Grouped writes waiting for the worker: (interaction, args, Deferred).
        self._group: list[tuple[Callable[..., Any], tuple, defer.Deferred]] = []
        self._groupLock = threading.Lock()
        self._pool: ThreadPool | None = None
        self._shutdownTrigger: Any = None
        # Touched only in the worker thread.
        self._connection: sqlite3.Connection | None = None

    def open(self) -> defer.Deferred:
        """
        Open the file (creating it and its directory when missing) and bring
        the schema up to L{SCHEMA_VERSION}.  Fails with L{CannotOpenDatabase}.
        """
        if self._pool is not None:
            return defer.fail(StorageError(f"database {self.path} is open already"))
        if self._reactor is None:
            from twisted.internet import reactor
            self._reactor = reactor
        self._pool = ThreadPool(1, 1, name="xmppd-sqlite")
        self._pool.start()
        # The worker is not a daemon thread: if the reactor stops without
        # close(), this still closes the file and lets the process exit.
        self._shutdownTrigger = self._reactor.addSystemEventTrigger(
            "before", "shutdown", self._closeAtShutdown)
        d = self._inThread(self._openInThread)
        d.addErrback(self._openFailed)
        return d

    def close(self) -> defer.Deferred:
        """
        Close the connection in the worker thread, after every call asked for
        before, then stop the thread.  Idempotent.
        """
        pool = self._releasePool()
        if pool is None:
            return defer.succeed(None)
        d = deferToThreadPool(self._reactor, pool, self._closeInThread)

        def stopPool(result: object) -> object:
            pool.stop()
            return result

        return d.addBoth(stopPool)

    def importAccounts(self, records) -> defer.Deferred:
        # Rows are built here, on the reactor thread, like setItem's.
        users, credentials, items, versions, data = [], [], [], [], []
        for r in records:
            users.append((r.username, r.domain))
            credentials.extend((r.username, r.domain, mechanism, c.salt, c.iterations,
                                c.storedKey, c.serverKey)
                               for mechanism, c in r.credentials.items())
            items.extend((r.username, r.domain) + _rowFromItem(item) for item in r.roster)
            if r.roster:
                versions.append((r.username, r.domain))
            data.extend((r.username, r.domain, key, value) for key, value in r.data.items())
        return self.runInteraction(_importAccounts, users, credentials, items, versions, data)

    def seconds(self) -> float:
        """The time now, in epoch seconds, from the clock given or the reactor."""
        clock = self._clock if self._clock is not None else self._reactor
        if clock is None:
            from twisted.internet import reactor as clock
        return float(clock.seconds())

    def runInteraction(self, interaction: Callable[..., Any], *args: Any) -> defer.Deferred:
        """
        Call C{interaction(connection, *args)} in the worker thread inside one
        write transaction: committed if it returns, rolled back if it raises.

        @return: Deferred firing what C{interaction} returns.
        """
        return self._inThread(self._transact, interaction, *args)

    def runGrouped(self, interaction: Callable[..., Any], *args: Any) -> defer.Deferred:
        """
        L{runInteraction} with group commit: the interaction may share its
        transaction, and so its fsync, with the other grouped writes queued
        while the worker was busy.  Each runs in its own savepoint, so one
        that raises is undone alone and fails only its own Deferred.  Every
        Deferred fires only once the shared transaction has committed: a
        write is durable when its Deferred fires, exactly as with
        L{runInteraction}.  Calls made after this one, of any kind, see its
        write.

        @return: Deferred firing what C{interaction} returns.
        """
        if self._pool is None:
            return defer.fail(StorageError(f"database {self.path} is not open"))
        d: defer.Deferred = defer.Deferred()
        with self._groupLock:
            self._group.append((interaction, args, d))
        # One job per write, queued now so that everything asked for later
        # runs after it; the first of them to run takes the whole group and
        # the others find nothing left to do.
        self._inThread(self._commitGroup).addErrback(
            lambda failure: self.log.failure("group commit failed", failure))
        return d

    def runReadInteraction(self, interaction: Callable[..., Any],
                           *args: Any) -> defer.Deferred:
        """
        Call C{interaction(connection, *args)} in the worker thread inside
        one read transaction: all its statements see the same snapshot.

        @return: Deferred firing what C{interaction} returns.
        """
        return self._inThread(self._read, interaction, *args)

    def runQuery(self, sql: str, params: tuple = ()) -> defer.Deferred:
        """
        Run one read statement in the worker thread.

        @return: Deferred firing the C{list} of row tuples.
        """
        return self._inThread(self._query, sql, params)

    def _inThread(self, f: Callable[..., Any], *args: Any) -> defer.Deferred:
        if self._pool is None:
            return defer.fail(StorageError(f"database {self.path} is not open"))
        return deferToThreadPool(self._reactor, self._pool, f, *args)

    def _releasePool(self) -> ThreadPool | None:
        pool, self._pool = self._pool, None
        if self._shutdownTrigger is not None:
            self._reactor.removeSystemEventTrigger(self._shutdownTrigger)
            self._shutdownTrigger = None
        return pool

    def _openFailed(self, failure: Any) -> Any:
        pool = self._releasePool()
        if pool is not None:
            pool.stop()
        return failure

    def _closeAtShutdown(self) -> defer.Deferred:
        # The trigger is firing: forget it so that close() does not remove it.
        self._shutdownTrigger = None
        return self.close()

    # Everything below runs in the worker thread.

    def _openInThread(self) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except FileExistsError:
            raise CannotOpenDatabase(self.path, f"{directory} is not a directory") from None
        except OSError as e:
            raise CannotOpenDatabase(self.path, _reason(e)) from None
        # Creating the file ourselves gives a precise reason (permission
        # denied, is a directory) where SQLite only says "unable to open
        # database file", and lets us make it private: it holds the keys of
        # every account.  SQLite gives the -wal and -shm files the same mode.
        #
        # Never open and close an existing database file here: closing any
        # descriptor of a file drops every POSIX lock this process holds on
        # it, including those of another SQLite connection to it in this
        # process (SQLite's "How To Corrupt" §2.2), and a later connection
        # could then delete the WAL under it.  Only a file we create
        # exclusively, which nobody can hold locks on yet, is opened here.
        try:
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            if os.path.isdir(self.path):
                raise CannotOpenDatabase(self.path, "is a directory") from None
            if not os.access(self.path, os.R_OK | os.W_OK):
                raise CannotOpenDatabase(self.path, "permission denied") from None
        except OSError as e:
            raise CannotOpenDatabase(self.path, _reason(e)) from None
        try:
            # isolation_level=None: transactions are begun and ended here,
            # explicitly, never implicitly by the sqlite3 module.
            connection = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as e:
            raise CannotOpenDatabase(self.path, str(e)) from None
        try:
            self._configure(connection)
            self._migrate(connection)
        except sqlite3.Error as e:
            connection.close()
            raise CannotOpenDatabase(self.path, str(e)) from None
        except BaseException:
            connection.close()
            raise
        self._connection = connection

    def _configure(self, connection: sqlite3.Connection) -> None:
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        (mode,) = connection.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode != "wal":
            self.log.warn("database {path} stays in journal mode {mode}: "
                          "WAL is not supported here", path=self.path, mode=mode)
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute("PRAGMA foreign_keys = ON")

    def _migrate(self, connection: sqlite3.Connection) -> None:
        # One transaction, with the version read inside it, so that two
        # processes opening a new file at once do not both build the schema.
        def migrate(connection: sqlite3.Connection) -> None:
            (version,) = connection.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise CannotOpenDatabase(
                    self.path, f"schema version {version} is newer than this "
                    f"xmppd understands ({SCHEMA_VERSION})")
            for step in MIGRATIONS[version:]:
                for statement in step:
                    connection.execute(statement)
            if version < SCHEMA_VERSION:
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

        _transaction(connection, migrate)

    def _transact(self, interaction: Callable[..., Any], *args: Any) -> Any:
        return _transaction(self._connection, interaction, *args)

    def _read(self, interaction: Callable[..., Any], *args: Any) -> Any:
        connection = self._connection
        connection.execute("BEGIN")
        try:
            return interaction(connection, *args)
        finally:
            connection.rollback()

    def _commitGroup(self) -> None:
        with self._groupLock:
            group, self._group = self._group, []
        if not group:
            return
        try:
            outcomes = _transaction(self._connection, _runGroup, group)
        except BaseException:
            failure = Failure()
            outcomes = [(False, failure)] * len(group)
        for (_, _, d), (succeeded, result) in zip(group, outcomes):
            self._reactor.callFromThread(d.callback if succeeded else d.errback, result)

    def _query(self, sql: str, params: tuple) -> list[tuple]:
        return self._connection.execute(sql, params).fetchall()

    def _closeInThread(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


def _transaction(connection: sqlite3.Connection,
                 interaction: Callable[..., Any], *args: Any) -> Any:
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = interaction(connection, *args)
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    return result


def _runGroup(connection: sqlite3.Connection,
              group: list[tuple[Callable[..., Any], tuple, defer.Deferred]]
              ) -> list[tuple[bool, Any]]:
    outcomes = []
    for interaction, args, _ in group:
        connection.execute("SAVEPOINT grouped")
        try:
            result = interaction(connection, *args)
        except Exception:
            outcomes.append((False, Failure()))
            connection.execute("ROLLBACK TO grouped")
        else:
            outcomes.append((True, result))
        connection.execute("RELEASE grouped")
    return outcomes


def _importAccounts(connection: sqlite3.Connection, users, credentials, items,
                    versions, data) -> None:
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
        "INSERT INTO roster_items (username, domain, " + _ITEM_COLUMNS + ")"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", items)
    connection.executemany(
        "INSERT INTO roster_versions (username, domain, version) VALUES (?, ?, 1)", versions)
    connection.executemany(
        "INSERT INTO account_data (username, domain, key, value) VALUES (?, ?, ?, ?)", data)


def _reason(error: OSError) -> str:
    return (error.strerror or str(error)).lower()


@implementer(IUserStore)
class SQLiteUserStore:
    """Accounts in the C{users} and C{scram_credentials} tables."""

    def __init__(self, storage: SQLiteStorage) -> None:
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
    # Credentials, and every later per-account table, go by ON DELETE CASCADE.
    cursor = connection.execute("DELETE FROM users WHERE username = ? AND domain = ?",
                                (username, domain))
    if cursor.rowcount == 0:
        raise NoSuchUser(f"{username}@{domain}")


def _requireUser(connection: sqlite3.Connection, username: str, domain: str) -> None:
    # Inside a write transaction, so the account cannot go before the write
    # that follows.  The foreign keys would refuse the row anyway; this says
    # why in the contract's terms.
    if connection.execute("SELECT 1 FROM users WHERE username = ? AND domain = ?",
                          (username, domain)).fetchone() is None:
        raise NoSuchUser(f"{username}@{domain}")


@implementer(IRosterStore)
class SQLiteRosterStore:
    """Rosters in the C{roster_items} and C{roster_versions} tables."""

    def __init__(self, storage: SQLiteStorage) -> None:
        self._storage = storage

    def getRoster(self, username: str, domain: str) -> defer.Deferred:
        # One statement is one snapshot, so the version always matches the
        # items even while another connection writes.  The outer joins give
        # one row even for a roster with no version and no items.
        d = self._storage.runQuery(
            "SELECT v.version, i.jid, i.name, i.subscription, i.ask, i.groups,"
            " i.approved, i.pending_in, i.pending_in_status"
            " FROM (SELECT ? AS username, ? AS domain) AS a"
            " LEFT JOIN roster_versions AS v USING (username, domain)"
            " LEFT JOIN roster_items AS i USING (username, domain)",
            (username, domain))
        return d.addCallback(_rosterFromRows)

    def getItem(self, username: str, domain: str, jid: str) -> defer.Deferred:
        d = self._storage.runQuery(
            "SELECT " + _ITEM_COLUMNS + " FROM roster_items"
            " WHERE username = ? AND domain = ? AND jid = ?", (username, domain, jid))
        return d.addCallback(lambda rows: _itemFromRow(rows[0]) if rows else None)

    def setItem(self, username: str, domain: str, item: RosterItem) -> defer.Deferred:
        # Turned into a row here, on the reactor thread: a bad item fails at
        # once, and nothing the caller holds is read by the worker.
        try:
            row = _rowFromItem(item)
        except (TypeError, ValueError) as e:
            return defer.fail(e)
        return self._storage.runInteraction(_setRosterItem, username, domain, row)

    def removeItem(self, username: str, domain: str, jid: str) -> defer.Deferred:
        return self._storage.runInteraction(_removeRosterItem, username, domain, jid)


_ITEM_COLUMNS = ("jid, name, subscription, ask, groups, approved, pending_in,"
                 " pending_in_status")


def _rowFromItem(item: RosterItem) -> tuple:
    return (item.jid, item.name, item.subscription, bool(item.ask),
            json.dumps(list(item.groups), ensure_ascii=False), bool(item.approved),
            bool(item.pendingIn), item.pendingInStatus)


def _itemFromRow(row: tuple) -> RosterItem:
    jid, name, subscription, ask, groups, approved, pendingIn, pendingInStatus = row
    return RosterItem(jid=jid, name=name, subscription=subscription, ask=bool(ask),
                      groups=tuple(json.loads(groups)), approved=bool(approved),
                      pendingIn=bool(pendingIn), pendingInStatus=pendingInStatus)


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
    _requireUser(connection, username, domain)
    connection.execute(
        "INSERT INTO roster_items (username, domain, " + _ITEM_COLUMNS + ")"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (username, domain, jid) DO UPDATE SET"
        " name = excluded.name, subscription = excluded.subscription,"
        " ask = excluded.ask, groups = excluded.groups,"
        " approved = excluded.approved, pending_in = excluded.pending_in,"
        " pending_in_status = excluded.pending_in_status",
        (username, domain) + row)
    return _bumpRosterVersion(connection, username, domain)


def _removeRosterItem(connection: sqlite3.Connection, username: str, domain: str,
                      jid: str) -> int:
    _requireUser(connection, username, domain)
    connection.execute(
        "DELETE FROM roster_items WHERE username = ? AND domain = ? AND jid = ?",
        (username, domain, jid))
    # Even when there was nothing to remove, as the memory backend does: a
    # client holding any earlier version is simply sent the whole roster.
    return _bumpRosterVersion(connection, username, domain)


@implementer(IAccountDataStore)
class SQLiteAccountDataStore:
    """Account data in the C{account_data} table."""

    def __init__(self, storage: SQLiteStorage) -> None:
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


def _setAccountData(connection: sqlite3.Connection, username: str, domain: str,
                    key: str, value: str) -> None:
    _requireUser(connection, username, domain)
    connection.execute(
        "INSERT INTO account_data (username, domain, key, value) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (username, domain, key) DO UPDATE SET value = excluded.value",
        (username, domain, key, value))


def _deleteAccountData(connection: sqlite3.Connection, username: str, domain: str,
                       key: str) -> None:
    _requireUser(connection, username, domain)
    connection.execute(
        "DELETE FROM account_data WHERE username = ? AND domain = ? AND key = ?",
        (username, domain, key))
