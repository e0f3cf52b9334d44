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

from twisted.internet import defer
from zope.interface import implementer

from xmppd.scram import ScramCredential
from xmppd.storage.interfaces import IStorage, IUserStore, NoSuchUser, UserExists


@implementer(IUserStore)
class MemoryUserStore:
    """Accounts in a dict keyed by C{(username, domain)}."""

    def __init__(self) -> None:
        self._accounts: dict[tuple[str, str], dict[str, ScramCredential]] = {}

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
        return defer.succeed(None)

    def userExists(self, username: str, domain: str) -> defer.Deferred:
        return defer.succeed((username, domain) in self._accounts)

    def listUsers(self, domain: str | None = None) -> defer.Deferred:
        return defer.succeed(sorted(key for key in self._accounts
                                    if domain is None or key[1] == domain))


@implementer(IStorage)
class MemoryStorage:
    """Every store in memory; nothing survives the object."""

    def __init__(self) -> None:
        self.users = MemoryUserStore()

    def open(self) -> defer.Deferred:
        return defer.succeed(None)

    def close(self) -> defer.Deferred:
        return defer.succeed(None)
