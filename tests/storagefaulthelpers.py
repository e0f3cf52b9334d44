"""
Real SQLite write faults for the storage fault tests (issue 18 item 4), made
on the engine's own connection or file, never by replacing code:

  - C{full}: C{PRAGMA max_page_count} set to the file's size after a
    C{VACUUM}: a write that needs one more page (one bigger than a page, so
    that it cannot fit in what is left of a page) gets a genuine
    C{SQLITE_FULL}, "database or disk is full", as on a full disk;
  - C{locked}: a second connection to the file holds the write lock
    (C{BEGIN EXCLUSIVE}), as C{xmppctl} or a backup tool would, and the
    engine's busy timeout is cut to a few milliseconds so that the test does
    not wait the production five seconds: C{SQLITE_BUSY};
  - C{readonly}: C{PRAGMA query_only} on the engine's connection.  Tests
    may run as root, where C{chmod} does not stop writes, and remounting a
    file system read-only needs every file on it closed for writing; the
    pragma makes SQLite refuse writes with the same C{SQLITE_READONLY}
    ("attempt to write a readonly database").

Each fault is undone by C{recover}, on the same connection, with no restart.
"""

from __future__ import annotations

import sqlite3

from twisted.internet import defer

#: A payload that needs a page of its own (SQLite's default page is 4096 bytes).
BIG = 6000

#: The faults, and the stanza error the sender gets for each.
FAULTS = {"full": "resource-constraint", "locked": "internal-server-error",
          "readonly": "internal-server-error"}


def onConnection(store, f) -> defer.Deferred:
    """Call C{f(connection)} in the engine's worker thread, outside any transaction."""
    return store._inThread(lambda: f(store._connection))


class Fault:
    """One fault (a key of L{FAULTS}) made and undone on C{store}."""

    def __init__(self, store, kind: str) -> None:
        self.store = store
        self.kind = kind
        self.other: sqlite3.Connection | None = None

    @property
    def condition(self) -> str:
        return FAULTS[self.kind]

    async def start(self) -> None:
        if self.kind == "full":
            def fill(connection):
                connection.execute("VACUUM")
                (pages,) = connection.execute("PRAGMA page_count").fetchone()
                connection.execute(f"PRAGMA max_page_count = {pages}")
            await onConnection(self.store, fill)
        elif self.kind == "locked":
            await onConnection(self.store, lambda c: c.execute("PRAGMA busy_timeout = 5"))
            self.other = sqlite3.connect(self.store.path, isolation_level=None)
            self.other.execute("BEGIN EXCLUSIVE")
        else:
            await onConnection(self.store, lambda c: c.execute("PRAGMA query_only = 1"))

    async def recover(self) -> None:
        if self.kind == "full":
            await onConnection(self.store,
                               lambda c: c.execute("PRAGMA max_page_count = 1073741823"))
        elif self.kind == "locked":
            self.other.rollback()
            self.other.close()
            self.other = None
        else:
            await onConnection(self.store, lambda c: c.execute("PRAGMA query_only = 0"))
