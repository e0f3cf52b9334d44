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

from collections.abc import Mapping
from dataclasses import replace

from twisted.internet import defer
from zope.interface import implementer

from xmppd.scram import ScramCredential
from xmppd.storage.interfaces import (IAccountDataStore, IRosterStore, IStorage,
                                      IUserStore, NoSuchUser, Roster, RosterItem,
                                      UserExists)


@implementer(IUserStore)
class MemoryUserStore:
    """Accounts in a dict keyed by C{(username, domain)}."""

    def __init__(self, onRemove=None) -> None:
        self._accounts: dict[tuple[str, str], dict[str, ScramCredential]] = {}
        #: Called with (username, domain) when an account goes, so the other
        #: stores drop its data as SQLite's cascades do.
        self._onRemove = onRemove or (lambda username, domain: None)

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
        self._accounts[key] = dict(credentials)
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

    def forget(self, username: str, domain: str) -> None:
        self._data.pop((username, domain), None)


@implementer(IStorage)
class MemoryStorage:
    """Every store in memory; nothing survives the object."""

    def __init__(self) -> None:
        self.users = MemoryUserStore(onRemove=self._forget)
        self.rosters = MemoryRosterStore(self.users)
        self.accountData = MemoryAccountDataStore(self.users)

    def importAccounts(self, records) -> defer.Deferred:
        for record in records:
            if self.users.exists(record.username, record.domain):
                return defer.fail(UserExists(f"{record.username}@{record.domain}"))
        if len({(r.username, r.domain) for r in records}) != len(records):
            return defer.fail(UserExists("the same account twice in one import"))
        for record in records:
            self.users.addUser(record.username, record.domain, record.credentials)
            if record.roster:
                self.rosters.load(record.username, record.domain, record.roster)
            for key, value in record.data.items():
                self.accountData.set(record.username, record.domain, key, value)
        return defer.succeed(None)

    def _forget(self, username: str, domain: str) -> None:
        self.rosters.forget(username, domain)
        self.accountData.forget(username, domain)

    def open(self) -> defer.Deferred:
        return defer.succeed(None)

    def close(self) -> defer.Deferred:
        return defer.succeed(None)
