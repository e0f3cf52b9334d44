# -*- test-case-name: tests.test_storage -*-
"""
The in-memory storage backend, for tests only.

It keeps the contract of L{xmppd.storage.interfaces} to the letter (every
method returns a Deferred, errors arrive as failed Deferreds) so that code
tested against it behaves the same on a durable backend.  Values are copied on
the way in and out: a caller that mutates what it passed or got back must not
change what is stored, just as with a database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from itertools import count
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from xmppd.core.scram import ScramCredential
from xmppd.storage.memorypubsub import MemoryPubSubStore
from xmppd.storage.interfaces import (ArchivedMessage, ArchivePage, IAccountDataStore,
                                      IArchiveStore, IOfflineStore, IRoomStore,
                                      IRosterStore, IStorage, IUserStore, ItemNotFound,
                                      NoSuchUser, OfflineMessage, RoomRecord, Roster,
                                      RosterItem, StorageError, UserExists,
                                      credentialsChanged)
from xmppd.storage.memoryfast import MemoryFastTokenStore


@implementer(IUserStore)
class MemoryUserStore:
    """Accounts in a dict keyed by C{(username, domain)}."""

    def __init__(self, onRemove=None, onNewPassword=None) -> None:
        self._accounts: dict[tuple[str, str], dict[str, ScramCredential]] = {}
        #: Called with (username, domain) when an account goes, so the other
        #: stores drop its data as SQLite's cascades do.
        self._onRemove = onRemove or (lambda username, domain: None)
        #: Called with (username, domain) when its password changes
        #: (L{credentialsChanged}): its FAST tokens go.
        self._onNewPassword = onNewPassword or (lambda username, domain: None)

    # ScramCredential is frozen, so a new dict is a complete copy.

    def addUser(self, username: str, domain: str,
                credentials: Mapping[str, ScramCredential]) -> defer.Deferred:
        key = (username, domain)
        if key in self._accounts:
            return defer.fail(UserExists(f"{username}@{domain}"))
        self._accounts[key] = dict(credentials)
        return defer.succeed(None)

    def getCredentials(self, username: str, domain: str) -> defer.Deferred:
        credentials = self._accounts.get((username, domain))
        return defer.succeed(None if credentials is None else dict(credentials))

    def setCredentials(self, username: str, domain: str,
                       credentials: Mapping[str, ScramCredential]) -> defer.Deferred:
        key = (username, domain)
        if key not in self._accounts:
            return defer.fail(NoSuchUser(f"{username}@{domain}"))
        changed = credentialsChanged(self._accounts[key], credentials)
        self._accounts[key] = dict(credentials)
        if changed:
            self._onNewPassword(username, domain)
        return defer.succeed(None)

    def removeUser(self, username: str, domain: str) -> defer.Deferred:
        if self._accounts.pop((username, domain), None) is None:
            return defer.fail(NoSuchUser(f"{username}@{domain}"))
        self._onRemove(username, domain)
        return defer.succeed(None)

    def userExists(self, username: str, domain: str) -> defer.Deferred:
        return defer.succeed(self.exists(username, domain))

    def exists(self, username: str, domain: str) -> bool:
        """L{userExists} without the Deferred, for the other memory stores."""
        return (username, domain) in self._accounts

    def listUsers(self, domain: str | None = None) -> defer.Deferred:
        return defer.succeed(sorted(key for key in self._accounts
                                    if domain is None or key[1] == domain))


@implementer(IRosterStore)
class MemoryRosterStore:
    """Rosters in dicts; L{RosterItem} is frozen, so sharing items is safe."""

    def __init__(self, users: MemoryUserStore) -> None:
        self._users = users
        self._rosters: dict[tuple[str, str], tuple[int, dict[str, RosterItem]]] = {}

    def getRoster(self, username: str, domain: str) -> defer.Deferred:
        version, items = self._rosters.get((username, domain), (0, {}))
        return defer.succeed(Roster(version, dict(items)))

    def getItem(self, username: str, domain: str, jid: str) -> defer.Deferred:
        return defer.succeed(self._rosters.get((username, domain), (0, {}))[1].get(jid))

    def _change(self, username: str, domain: str, change) -> defer.Deferred:
        # As in SQLite, where the foreign key to users would refuse the row.
        if not self._users.exists(username, domain):
            return defer.fail(NoSuchUser(f"{username}@{domain}"))
        version, items = self._rosters.get((username, domain), (0, {}))
        items = dict(items)
        change(items)
        self._rosters[(username, domain)] = (version + 1, items)
        return defer.succeed(version + 1)

    def setItem(self, username: str, domain: str, item: RosterItem) -> defer.Deferred:
        # A frozen item may still hold a caller's list of groups: copy it,
        # and hand back a tuple as SQLite does.
        item = replace(item, groups=tuple(item.groups))
        return self._change(username, domain, lambda items: items.__setitem__(item.jid, item))

    def removeItem(self, username: str, domain: str, jid: str) -> defer.Deferred:
        return self._change(username, domain, lambda items: items.pop(jid, None))

    def load(self, username: str, domain: str, items) -> None:
        """A new account's whole roster, as one change (version 1)."""
        self._rosters[(username, domain)] = (
            1, {item.jid: replace(item, groups=tuple(item.groups)) for item in items})

    def forget(self, username: str, domain: str) -> None:
        self._rosters.pop((username, domain), None)


@implementer(IAccountDataStore)
class MemoryAccountDataStore:
    """Account data in one dict per account; values are immutable strings."""

    def __init__(self, users: MemoryUserStore) -> None:
        self._users = users
        self._data: dict[tuple[str, str], dict[str, str]] = {}

    def get(self, username: str, domain: str, key: str) -> defer.Deferred:
        return defer.succeed(self._data.get((username, domain), {}).get(key))

    def set(self, username: str, domain: str, key: str, value: str) -> defer.Deferred:
        if not isinstance(value, str):
            return defer.fail(TypeError("account data values are str"))
        if not self._users.exists(username, domain):
            return defer.fail(NoSuchUser(f"{username}@{domain}"))
        self._data.setdefault((username, domain), {})[key] = value
        return defer.succeed(None)

    def delete(self, username: str, domain: str, key: str) -> defer.Deferred:
        if not self._users.exists(username, domain):
            return defer.fail(NoSuchUser(f"{username}@{domain}"))
        self._data.get((username, domain), {}).pop(key, None)
        return defer.succeed(None)

    def getAll(self, username: str, domain: str, prefix: str = "") -> defer.Deferred:
        return defer.succeed({k: v for k, v in self._data.get((username, domain), {}).items()
                              if k.startswith(prefix)})

    def usersWithKey(self, domain: str, key: str) -> defer.Deferred:
        """As L{xmppd.storage.sqlite.accountdata.SQLiteAccountDataStore.usersWithKey}."""
        return defer.succeed({username for (username, host), data in self._data.items()
                              if host == domain and key in data})

    def forget(self, username: str, domain: str) -> None:
        self._data.pop((username, domain), None)


@implementer(IOfflineStore)
class MemoryOfflineStore:
    """
    Offline messages in one list per account, oldest first.  Ids come from
    one counter for every account and are never reused, as with SQLite's
    AUTOINCREMENT.
    """

    def __init__(self, users: MemoryUserStore) -> None:
        self._users = users
        self._messages: dict[tuple[str, str], list[OfflineMessage]] = {}
        self._ids = count(1)

    def store(self, username: str, domain: str, xml: str, stamp: float) -> defer.Deferred:
        if not isinstance(xml, str):
            return defer.fail(TypeError("offline messages are serialized XML (str)"))
        if not self._users.exists(username, domain):
            return defer.fail(NoSuchUser(f"{username}@{domain}"))
        message = OfflineMessage(next(self._ids), xml, float(stamp))
        self._messages.setdefault((username, domain), []).append(message)
        return defer.succeed(message.id)

    def count(self, username: str, domain: str) -> defer.Deferred:
        return defer.succeed(len(self._messages.get((username, domain), ())))

    def fetch(self, username: str, domain: str, limit: int | None = None) -> defer.Deferred:
        messages = self._messages.get((username, domain), [])
        return defer.succeed(list(messages if limit is None else messages[:max(limit, 0)]))

    def delete(self, username: str, domain: str, ids: Collection[int]) -> defer.Deferred:
        ids = set(ids)
        messages = self._messages.get((username, domain))
        if messages is not None and ids:
            messages[:] = [m for m in messages if m.id not in ids]
        return defer.succeed(None)

    def forget(self, username: str, domain: str) -> None:
        self._messages.pop((username, domain), None)


def pageOf(matching: list, afterIndex: int | None, beforeIndex: int | None,
           limit: int | None, reverse: bool) -> tuple[list, bool]:
    """
    Cut one page out of C{matching} (results in archive order), the rule
    every archive backend follows (XEP-0059 §2.2, §2.5).

    C{afterIndex}/C{beforeIndex} are the positions, in C{matching}, of the
    first result after the C{afterId} message and of the first result not
    before the C{beforeId} message.  Forwards, the page is the first
    C{limit} results of that range; in C{reverse}, the last C{limit}.  The
    page is complete when nothing in the range lies beyond it in the
    direction of paging.

    @return: C{(page, complete)}.
    """
    low = 0 if afterIndex is None else afterIndex
    high = len(matching) if beforeIndex is None else beforeIndex
    window = matching[low:high] if low < high else []
    if limit is None or len(window) <= limit:
        return window, True
    limit = max(limit, 0)
    if reverse:
        return window[len(window) - limit:], False
    return window[:limit], False


#: One archive: archive id to C{(seq, message)}, in archive order (dicts
#: keep insertion order).  C{seq} is what orders the archive, as in SQLite,
#: so a retention sweep that removes the oldest messages never changes the
#: order of the rest.
Archive = dict[str, tuple[int, ArchivedMessage]]


def normalizedMessage(message: ArchivedMessage) -> ArchivedMessage:
    """C{message} with the types SQLite gives back (an integer stamp becomes a float)."""
    return ArchivedMessage(str(message.id), float(message.stamp),
                           str(message.peer), str(message.xml))


def queryArchive(archive: Archive, peer: str | None, start: float | None,
                 end: float | None, afterId: str | None, beforeId: str | None,
                 ids: Collection[str] | None, limit: int | None,
                 reverse: bool) -> defer.Deferred:
    """
    L{IArchiveStore.query} on one archive, for every memory archive (an
    account's or a room's).
    """
    for anchor in (afterId, beforeId):
        if anchor is not None and anchor not in archive:
            return defer.fail(ItemNotFound(anchor))
    wanted = None if ids is None else set(ids)
    matching = [(seq, m) for seq, m in archive.values()
                if (peer is None or m.peer == peer)
                and (start is None or m.stamp >= start)
                and (end is None or m.stamp <= end)
                and (wanted is None or m.id in wanted)]
    afterIndex = beforeIndex = None
    if afterId is not None:
        afterSeq = archive[afterId][0]
        afterIndex = sum(1 for seq, _ in matching if seq <= afterSeq)
    if beforeId is not None:
        beforeSeq = archive[beforeId][0]
        beforeIndex = sum(1 for seq, _ in matching if seq < beforeSeq)
    page, complete = pageOf(matching, afterIndex, beforeIndex, limit, reverse)
    return defer.succeed(ArchivePage(tuple(m for _, m in page), complete, len(matching)))


def removeArchivedBefore(archives: dict[Any, Archive], cutoff: float) -> int:
    """Drop the messages older than C{cutoff} from every archive; how many went."""
    removed = 0
    for key, archive in list(archives.items()):
        kept = {i: entry for i, entry in archive.items() if entry[1].stamp >= cutoff}
        removed += len(archive) - len(kept)
        archives[key] = kept
    return removed


@implementer(IArchiveStore)
class MemoryArchiveStore:
    """Account archives: one L{Archive} per account."""

    def __init__(self, users: MemoryUserStore) -> None:
        self._users = users
        self._archives: dict[tuple[str, str], Archive] = {}
        self._seq = count(1)

    def append(self, username: str, domain: str,
               message: ArchivedMessage) -> defer.Deferred:
        if not self._users.exists(username, domain):
            return defer.fail(NoSuchUser(f"{username}@{domain}"))
        message = normalizedMessage(message)
        archive = self._archives.setdefault((username, domain), {})
        if message.id in archive:
            return defer.fail(StorageError(
                f"archive id {message.id!r} exists already for {username}@{domain}"))
        archive[message.id] = (next(self._seq), message)
        return defer.succeed(None)

    def query(self, username: str, domain: str, peer: str | None = None,
              start: float | None = None, end: float | None = None,
              afterId: str | None = None, beforeId: str | None = None,
              ids: Collection[str] | None = None, limit: int | None = 50,
              reverse: bool = False) -> defer.Deferred:
        return queryArchive(self._archives.get((username, domain), {}), peer, start, end,
                            afterId, beforeId, ids, limit, reverse)

    def removeOlderThan(self, cutoff: float) -> defer.Deferred:
        return defer.succeed(removeArchivedBefore(self._archives, cutoff))

    def forget(self, username: str, domain: str) -> None:
        self._archives.pop((username, domain), None)


@implementer(IRoomStore)
class MemoryRoomStore:
    """
    Room records in a dict keyed by C{(service, name)}, and room archives in
    another (an archive may exist without a record).  Records are frozen
    and hold only strings and a float, so sharing them is safe.
    """

    def __init__(self, seconds: Callable[[], float]) -> None:
        self._seconds = seconds
        self._rooms: dict[tuple[str, str], RoomRecord] = {}
        self._archives: dict[tuple[str, str], Archive] = {}
        self._seq = count(1)

    def get(self, service: str, name: str) -> defer.Deferred:
        return defer.succeed(self._rooms.get((service, name)))

    def put(self, service: str, name: str, state: str) -> defer.Deferred:
        if not isinstance(state, str):
            return defer.fail(TypeError("room state is JSON text (str)"))
        self._rooms[(service, name)] = RoomRecord(service, name, state,
                                                  float(self._seconds()))
        return defer.succeed(None)

    def delete(self, service: str, name: str) -> defer.Deferred:
        self._archives.pop((service, name), None)
        return defer.succeed(self._rooms.pop((service, name), None) is not None)

    def list(self, service: str) -> defer.Deferred:
        return defer.succeed(sorted((record for key, record in self._rooms.items()
                                     if key[0] == service), key=lambda r: r.name))

    def appendMessage(self, service: str, name: str,
                      message: ArchivedMessage) -> defer.Deferred:
        message = normalizedMessage(message)
        archive = self._archives.setdefault((service, name), {})
        if message.id in archive:
            return defer.fail(StorageError(
                f"archive id {message.id!r} exists already for room {name}@{service}"))
        archive[message.id] = (next(self._seq), message)
        return defer.succeed(None)

    def queryMessages(self, service: str, name: str, peer: str | None = None,
                      start: float | None = None, end: float | None = None,
                      afterId: str | None = None, beforeId: str | None = None,
                      ids: Collection[str] | None = None, limit: int | None = 50,
                      reverse: bool = False) -> defer.Deferred:
        return queryArchive(self._archives.get((service, name), {}), peer, start, end,
                            afterId, beforeId, ids, limit, reverse)

    def replaceMessage(self, service: str, name: str, id: str, xml: str) -> defer.Deferred:
        archive = self._archives.get((service, name), {})
        entry = archive.get(id)
        if entry is None:
            return defer.succeed(False)
        seq, message = entry
        archive[id] = (seq, replace(message, xml=str(xml)))
        return defer.succeed(True)

    def removeMessagesOlderThan(self, cutoff: float) -> defer.Deferred:
        return defer.succeed(removeArchivedBefore(self._archives, cutoff))


@implementer(IStorage)
class MemoryStorage:
    """Every store in memory; nothing survives the object."""

    def __init__(self, clock: IReactorTime | None = None) -> None:
        """
        @param clock: where L{RoomRecord.updated} comes from; the system
            time when not given.
        """
        self.users = MemoryUserStore(onRemove=self._forget,
                                     onNewPassword=lambda u, d: self.fast.forget(u, d))
        self.rosters = MemoryRosterStore(self.users)
        self.accountData = MemoryAccountDataStore(self.users)
        self.offline = MemoryOfflineStore(self.users)
        self.archive = MemoryArchiveStore(self.users)
        seconds = time.time if clock is None else clock.seconds
        self.rooms = MemoryRoomStore(seconds)
        self.pubsub = MemoryPubSubStore(seconds)
        self.fast = MemoryFastTokenStore(self.users)

    def importAccounts(self, records) -> defer.Deferred:
        for record in records:
            if self.users.exists(record.username, record.domain):
                return defer.fail(UserExists(f"{record.username}@{record.domain}"))
        if len({(r.username, r.domain) for r in records}) != len(records):
            return defer.fail(UserExists("the same account twice in one import"))
        try:
            for record in records:
                for node in record.pep:
                    node.check()
        except ValueError as e:
            return defer.fail(e)
        for record in records:
            self.users.addUser(record.username, record.domain, record.credentials)
            if record.roster:
                self.rosters.load(record.username, record.domain, record.roster)
            for key, value in record.data.items():
                self.accountData.set(record.username, record.domain, key, value)
            self.pubsub.load(f"{record.username}@{record.domain}", record.pep)
        return defer.succeed(None)

    def _forget(self, username: str, domain: str) -> None:
        self.rosters.forget(username, domain)
        self.accountData.forget(username, domain)
        self.offline.forget(username, domain)
        self.archive.forget(username, domain)
        self.fast.forget(username, domain)
        account = f"{username}@{domain}"
        self.pubsub.forgetService(account)
        self.pubsub.forgetEntity(account)

    def open(self) -> defer.Deferred:
        return defer.succeed(None)

    def close(self) -> defer.Deferred:
        return defer.succeed(None)
