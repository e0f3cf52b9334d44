# -*- test-case-name: tests.test_storage,tests.test_storage_issue5 -*-
"""
The SQLite engine: one file, one worker thread, transactions, group commit
and migrations.  It knows no store; the stores (the other modules of this
package) run their SQL through it, and L{xmppd.storage.sqlite.backend}
assembles engine and stores into the L{IStorage} the server uses.

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
group commit (L{SQLiteEngine.runGrouped}):
the writes queued while the worker is busy share one transaction and one
fsync, and each Deferred still fires only after that transaction committed.

Reads are batched the same way (L{SQLiteEngine._readLater}): the reads
asked for while no other job was queued after them share one job of the
worker and one wake-up of the reactor, still in the order they were asked
for relative to everything else.  A login reads several times, and in a
reconnect storm the thread hand-offs cost several times the reads.

Opening a file brings its schema up to date with the steps of
L{xmppd.storage.sqlite.schema.MIGRATIONS}.

Storage faults (issue 18): a write that fails because the disk or the
database is full (C{SQLITE_FULL}), the file is locked by another process
past the busy timeout (C{SQLITE_BUSY}, C{SQLITE_LOCKED}), read-only
(C{SQLITE_READONLY}) or failing (C{SQLITE_IOERR}, ...) is rolled back whole
and fails with L{StorageFull} or L{StorageFault}, which tell the caller what
to answer its sender.  The engine tells the operator: one error line when
writes start failing (or fail for another reason), at most one reminder
per L{FAULT_LOG_INTERVAL} with the number refused meanwhile, and one line
when a write succeeds again.  Nothing is retried and nothing needs a
restart: the next write after space returns or the lock is released
simply succeeds.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from xmppd.storage.interfaces import StorageError, StorageFault, StorageFull
from xmppd.storage.sqlite.schema import MIGRATIONS, SCHEMA_VERSION

BUSY_TIMEOUT_MS = 5000

#: Seconds between two reminders that writes are still failing.
FAULT_LOG_INTERVAL = 60.0

#: Primary SQLite result codes of a write that failed for a reason outside
#: the request, with what the operator is told.
_FAULTS = {
    sqlite3.SQLITE_FULL: "the disk or the database is full",
    sqlite3.SQLITE_BUSY: "the database is locked by another process",
    sqlite3.SQLITE_LOCKED: "the database is locked",
    sqlite3.SQLITE_READONLY: "the database is read-only",
    sqlite3.SQLITE_IOERR: "a disk I/O error",
    sqlite3.SQLITE_CANTOPEN: "the database file cannot be opened",
    sqlite3.SQLITE_CORRUPT: "the database file is malformed",
    sqlite3.SQLITE_PERM: "access to the database is denied",
}


class CannotOpenDatabase(StorageError):
    """
    The database file cannot be opened, created or upgraded.  The message
    names the file and the reason, and is meant to be shown as it is.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot open database {path}: {reason}")
        self.path = path
        self.reason = reason



class SQLiteEngine:
    """
    The connection to the SQLite file at C{path}, owned by one worker thread.

    Stores run their SQL through L{runInteraction} (writes), L{runGrouped}
    (writes that may share a commit), L{runReadInteraction} (consistent
    reads) and L{runQuery} (single reads); none may be called before L{open}
    or after L{close}.
    """

    log = Logger()

    #: The node's L{xmppd.core.metrics.Metrics} when it is counted: the
    #: time of each job of the worker (as the reactor sees it, queueing
    #: included) and the size of each group commit.  Set by the wiring.
    metrics = None

    def __init__(self, path: str, reactor: Any = None, clock: Any = None) -> None:
        """
        @param reactor: runs the worker thread and its callbacks; the global
            reactor when not given.
        @param clock: an L{IReactorTime} for the times storage stamps itself
            (L{RoomRecord.updated}); the reactor when not given.
        """
        self.path = path
        self._reactor = reactor
        self._clock = clock
        # Grouped writes waiting for the worker: (interaction, args, Deferred).
        self._group: list[tuple[Callable[..., Any], tuple, defer.Deferred]] = []
        self._groupLock = threading.Lock()
        # Whether a job that will take the group is queued and has not yet
        # taken it (under the lock, with the group).
        self._groupQueued = False
        # The reads waiting for a job of their own that was the last job
        # queued (see L{_readLater}); None once another job was queued after
        # it or the worker took it.  Under C{_readLock}.
        self._readBatch: list | None = None
        self._readLock = threading.Lock()
        self._pool: ThreadPool | None = None
        self._shutdownTrigger: Any = None
        # Touched only in the worker thread.
        self._connection: sqlite3.Connection | None = None
        # The write fault under way (its reason), when it was last logged,
        # and the writes refused since (reactor thread only).
        self._fault: str | None = None
        self._faultLogged = 0.0
        self._refused = 0

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
        # "during", not "before": twistd stops the service tree "before"
        # shutdown and waits for it, and the tree still writes while it
        # stops (logouts, what sessions never acknowledged, to offline
        # storage); a close at "before" ran alongside and lost those writes.
        self._shutdownTrigger = self._reactor.addSystemEventTrigger(
            "during", "shutdown", self._closeAtShutdown)
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
        d = self._inThread(self._transact, interaction, *args)
        return d.addBoth(self._noteWrite)

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
            queued, self._groupQueued = self._groupQueued, True
        # A job queued now, unless one is queued that has not taken the group
        # yet (it will take this write too): everything asked for later runs
        # after it, as the worker runs its jobs in order.  One job and one
        # wake-up of the reactor for a burst of writes, not one per write.
        if not queued:
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
        return self._readLater(self._read, interaction, *args)

    def runQuery(self, sql: str, params: tuple = ()) -> defer.Deferred:
        """
        Run one read statement in the worker thread.

        @return: Deferred firing the C{list} of row tuples.
        """
        return self._readLater(self._query, sql, params)

    def _readLater(self, f: Callable[..., Any], *args: Any) -> defer.Deferred:
        """
        Run the read C{f(*args)} in the worker thread, batched: the reads
        asked for while no other job was queued after theirs share one job
        of the worker and one wake-up of the reactor (a login makes several
        reads and a reconnect storm makes thousands of logins at once; the
        thread hand-offs cost several times the reads themselves).  Order
        is kept: a read joins a batch only if that batch's job is the last
        one queued, so it still runs after everything asked for before it
        and before everything asked for after it.  Each read fails alone.
        """
        if self._pool is None:
            return defer.fail(StorageError(f"database {self.path} is not open"))
        d: defer.Deferred = defer.Deferred()
        if self.metrics is not None:
            d.addBoth(self._timed, time.perf_counter())
        with self._readLock:
            batch = self._readBatch
            if batch is None:
                batch = self._readBatch = []
                new = True
            else:
                new = False
            batch.append((f, args, d))
        if new:
            self._pool.callInThread(self._runReads, batch)
        return d

    def _inThread(self, f: Callable[..., Any], *args: Any) -> defer.Deferred:
        if self._pool is None:
            return defer.fail(StorageError(f"database {self.path} is not open"))
        with self._readLock:
            # Reads asked for from now on run after this job (L{_readLater}).
            self._readBatch = None
        d = deferToThreadPool(self._reactor, self._pool, f, *args)
        if self.metrics is not None:
            # Wall time on purpose: latency is what an operator graphs.
            d.addBoth(self._timed, time.perf_counter())
        return d

    def _timed(self, result: Any, started: float) -> Any:
        self.metrics.storageLatency.observe(time.perf_counter() - started)
        return result

    def _noteWrite(self, result: Any) -> Any:
        """
        In the reactor thread, for every write's outcome: tell the operator
        when writes start failing, remind now and then while they do, and
        say when they succeed again (see the module docstring).
        """
        if isinstance(result, Failure) and result.check(StorageFault):
            reason = str(result.value)
            now = self.seconds()
            self._refused += 1
            if reason != self._fault:
                self._fault, self._faultLogged, self._refused = reason, now, 0
                self.log.error("{reason}: writes are refused (senders get an error) until "
                               "they succeed again", reason=reason)
            elif now - self._faultLogged >= FAULT_LOG_INTERVAL:
                self.log.error("{reason}: {count} writes refused in the last {seconds:.0f} s",
                               reason=reason, count=self._refused,
                               seconds=now - self._faultLogged)
                self._faultLogged, self._refused = now, 0
        elif self._fault is not None and not isinstance(result, Failure):
            self.log.info("database {path}: writes succeed again", path=self.path)
            self._fault, self._refused = None, 0
        return result

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
        try:
            return _transaction(self._connection, interaction, *args)
        except sqlite3.Error as e:
            fault = _fault(self.path, e)
            if fault is None:
                raise
            raise fault from e

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
            self._groupQueued = False
        if not group:
            return
        try:
            outcomes = _transaction(self._connection, _runGroup, group)
        except sqlite3.Error as e:
            # The commit failed, or a write took the whole transaction
            # with it: none of the group is on disk.
            fault = _fault(self.path, e)
            failure = Failure(fault) if fault is not None else Failure()
            outcomes = [(False, failure)] * len(group)
        except BaseException:
            failure = Failure()
            outcomes = [(False, failure)] * len(group)
        else:
            outcomes = [(succeeded, _faultFailure(self.path, result) if not succeeded else result)
                        for succeeded, result in outcomes]
        self._reactor.callFromThread(self._fireGroup, group, outcomes)

    def _fireGroup(self, group, outcomes) -> None:
        """In the reactor thread: fire a committed group's Deferreds, in order."""
        if self.metrics is not None:
            self.metrics.groupCommitSize.observe(len(group))
        for (_, _, d), (succeeded, result) in zip(group, outcomes):
            self._noteWrite(result if not succeeded else None)
            self._fire(d, succeeded, result, "a grouped write's")

    def _runReads(self, batch: list) -> None:
        with self._readLock:
            if self._readBatch is batch:
                self._readBatch = None
        outcomes = []
        for f, args, _ in batch:
            try:
                outcomes.append((True, f(*args)))
            except BaseException:
                outcomes.append((False, Failure()))
        self._reactor.callFromThread(self._fireReads, batch, outcomes)

    def _fireReads(self, batch: list, outcomes: list) -> None:
        """In the reactor thread: fire a batch of reads' Deferreds, in order."""
        for (_, _, d), (succeeded, result) in zip(batch, outcomes):
            self._fire(d, succeeded, result, "a read's")

    def _fire(self, d: defer.Deferred, succeeded: bool, result, what: str) -> None:
        """Fire one job's Deferred with its outcome; what its callbacks raise is logged."""
        try:
            if succeeded:
                d.callback(result)
            else:
                d.errback(result)
        except Exception:
            self.log.failure("firing {what} Deferred", what=what)

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
        # SQLite may have rolled back already (SQLITE_FULL, SQLITE_IOERR can
        # end the transaction); a rollback that fails too must not hide
        # the error that says why.
        if connection.in_transaction:
            try:
                connection.rollback()
            except sqlite3.Error:
                pass
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
            if not connection.in_transaction:
                # SQLite rolled back the whole transaction (it may on
                # SQLITE_FULL or SQLITE_IOERR): the writes before this one
                # are gone too, so the whole group fails with this error.
                raise
            outcomes.append((False, Failure()))
            connection.execute("ROLLBACK TO grouped")
        else:
            outcomes.append((True, result))
        connection.execute("RELEASE grouped")
    return outcomes


def _fault(path: str, error: sqlite3.Error) -> StorageFault | None:
    """The L{StorageFault} an SQLite error is, or C{None} when it is none."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is None:
        return None
    reason = _FAULTS.get(code & 0xFF)
    if reason is None:
        return None
    kind = StorageFull if code & 0xFF == sqlite3.SQLITE_FULL else StorageFault
    return kind(f"database {path}: {reason} ({error})")


def _faultFailure(path: str, failure: Failure) -> Failure:
    if isinstance(failure.value, sqlite3.Error):
        fault = _fault(path, failure.value)
        if fault is not None:
            return Failure(fault)
    return failure


def _reason(error: OSError) -> str:
    return (error.strerror or str(error)).lower()

