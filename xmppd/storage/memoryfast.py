# -*- test-case-name: tests.test_storage_fast -*-
"""
The in-memory store of FAST tokens (L{IFastTokenStore}, XEP-0484), for
tests only: one dict per account, client and slot.
"""

from __future__ import annotations

from dataclasses import replace

from twisted.internet import defer
from zope.interface import implementer

from xmppd.storage.interfaces import FAST_SLOTS, FastToken, IFastTokenStore, NoSuchUser


@implementer(IFastTokenStore)
class MemoryFastTokenStore:
    """Tokens keyed by account, then C{(userAgent, slot)}; L{FastToken} is frozen."""

    def __init__(self, users) -> None:
        self._users = users
        self._tokens: dict[tuple[str, str], dict[tuple[str, str], FastToken]] = {}

    def issue(self, username: str, domain: str, token: FastToken) -> defer.Deferred:
        if not self._users.exists(username, domain):
            return defer.fail(NoSuchUser(f"{username}@{domain}"))
        token = replace(token, slot="new", hash=bytes(token.hash),
                        issued=float(token.issued), expiry=float(token.expiry))
        self._tokens.setdefault((username, domain), {})[(token.userAgent, "new")] = token
        return defer.succeed(None)

    def get(self, username: str, domain: str, userAgent: str) -> defer.Deferred:
        tokens = self._tokens.get((username, domain), {})
        return defer.succeed([tokens[(userAgent, slot)] for slot in ("new", "current")
                              if (userAgent, slot) in tokens])

    def promote(self, username: str, domain: str, userAgent: str,
                hash: bytes) -> defer.Deferred:
        tokens = self._tokens.get((username, domain), {})
        new = tokens.get((userAgent, "new"))
        if new is None or new.hash != hash:
            return defer.succeed(False)
        del tokens[(userAgent, "new")]
        tokens[(userAgent, "current")] = replace(new, slot="current")
        return defer.succeed(True)

    def revoke(self, username: str, domain: str, userAgent: str | None = None,
               hash: bytes | None = None) -> defer.Deferred:
        tokens = self._tokens.get((username, domain), {})
        gone = [key for key, token in tokens.items()
                if (userAgent is None or key[0] == userAgent)
                and (hash is None or token.hash == hash)]
        for key in gone:
            del tokens[key]
        return defer.succeed(len(gone))

    def list(self, username: str, domain: str) -> defer.Deferred:
        tokens = self._tokens.get((username, domain), {})
        return defer.succeed([tokens[key] for key in sorted(
            tokens, key=lambda key: (key[0], FAST_SLOTS.index(key[1])))])

    def forget(self, username: str, domain: str) -> None:
        self._tokens.pop((username, domain), None)

