# -*- test-case-name: tests.test_accountcache -*-
"""
One value per account, read from one account-data key (see
L{xmppd.storage.interfaces}) and kept in memory, for features whose hooks
are synchronous but whose per-account settings live in storage: the block
list (XEP-0191) and the archiving preferences (XEP-0441).

In a cluster, a value stored on one node is dropped by the others
(L{xmppd.core.invalidation}), which read it again at once for accounts
with a session there; a node that may have missed such news drops every
value, and reads again those of accounts with a session there.  A load
that was under way then gives its value to its callers but does not
keep it: it may have been read before the change it missed.

The values of accounts with a session are kept for as long as the account
has one (loaded on C{session/bound}, so its stanzas need not wait), and a
bounded number of others in a least-recently-used cache.  Concurrent loads
of one account share one storage read.  A load never fails: a value that
cannot be read or parsed is logged and the default is given instead, not
cached, so the next load tries storage again.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.protocols.jabber.jid import JID

from xmppd.core.hooks import DELIVER
from xmppd.core.jid import makeJID


class AccountDataCache:
    """
    The values under C{key} of one served domain's accounts.

    C{parse} turns what storage holds (a string, or C{None} when nothing is
    stored) into the value; if it raises, the load gives the default.
    C{default} is called for each caller given the default, so a caller may
    change what it got.  C{what} names the value in the log.
    """

    log = Logger()

    def __init__(self, domain, key: str, parse: Callable[[str | None], Any],
                 default: Callable[[], Any], size: int = 1024, what: str | None = None):
        self.domain = domain
        self.host = domain.domain
        self.key = key
        self.parse = parse
        self.default = default
        self.size = size
        self.what = what or key
        #: Bare JID -> value, for accounts with a session.
        self.pinned: dict[str, Any] = {}
        #: The same for other accounts, least recently used first.
        self.recent: OrderedDict[str, Any] = OrderedDict()
        #: Bare JID -> Deferreds waiting for the load in progress.
        self.loading: dict[str, list[defer.Deferred]] = {}
        #: Counts L{onMissed}: a load started before the last one is not kept.
        self.generation = 0

    def register(self) -> None:
        """Follow sessions and accounts of the domain; the owner calls it once."""
        hooks = self.domain.hooks
        hooks.add("session/bound", self.onSessionBound, DELIVER)
        hooks.add("session/closed", self.onSessionClosed, DELIVER)
        hooks.add("account/removed", self.onAccountRemoved, DELIVER)
        self.domain.invalidation.listen(self.key, self.onChangedElsewhere)
        self.domain.invalidation.listenMissed(self.onMissed)

    def cached(self, account: str) -> Any | None:
        """The value of C{account} (a bare JID string) if it is in memory."""
        value = self.pinned.get(account)
        if value is None:
            value = self.recent.get(account)
            if value is not None:
                self.recent.move_to_end(account)
        return value

    def load(self, account: JID) -> defer.Deferred:
        """The value of C{account} (a bare JID), from memory or storage; never fails."""
        bare = account.userhost()
        value = self.cached(bare)
        if value is not None:
            return defer.succeed(value)
        d = defer.Deferred()
        waiting = self.loading.get(bare)
        if waiting is not None:
            waiting.append(d)
            return d
        self.loading[bare] = [d]
        read = self.domain.storage.accountData.get(account.user, account.host, self.key)
        read.addCallback(self.parse)
        read.addCallbacks(self.loaded, self.loadFailed,
                          callbackArgs=(account, self.generation), errbackArgs=(account,))
        return d

    def loaded(self, value: Any, account: JID, generation: int) -> None:
        bare = account.userhost()
        # A write that finished meanwhile (see L{keep}) knows better than this read.
        current = self.cached(bare)
        if current is not None:
            value = current
        elif generation == self.generation:
            self.hold(account, value)
        for d in self.loading.pop(bare, ()):
            d.callback(value)

    def loadFailed(self, failure, account: JID) -> None:
        self.log.failure("Cannot read {what} of {account}; using the default", failure,
                         what=self.what, account=account.userhost())
        for d in self.loading.pop(account.userhost(), ()):
            d.callback(self.default())

    def keep(self, account: JID, value: Any) -> None:
        """
        Hold C{value} for C{account} (a bare JID), after the feature stored
        it: with the accounts that have a session, or in the LRU cache; and
        tell the other nodes of a cluster to drop theirs.
        """
        self.hold(account, value)
        self.domain.invalidation.changed(self.key, account.userhost())

    def hold(self, account: JID, value: Any) -> None:
        """Hold C{value}, read from storage, for C{account} (see L{keep})."""
        bare = account.userhost()
        if self.domain.sessions.sessionsOf(account):
            self.recent.pop(bare, None)
            self.pinned[bare] = value
        else:
            self.pinned.pop(bare, None)
            self.recent[bare] = value
            self.recent.move_to_end(bare)
            self.trim()

    def forget(self, account: str) -> None:
        """Drop the value of C{account} (a bare JID string)."""
        self.pinned.pop(account, None)
        self.recent.pop(account, None)

    def trim(self) -> None:
        while len(self.recent) > self.size:
            self.recent.popitem(last=False)

    # -- hooks -----------------------------------------------------------------

    def onSessionBound(self, session) -> None:
        """Pin the account's value, reading it now so its stanzas need not wait."""
        jid = session.jid
        if jid.host != self.host:
            return
        bare = jid.userhost()
        value = self.recent.pop(bare, None)
        if value is not None:
            self.pinned[bare] = value
        elif bare not in self.pinned:
            self.load(makeJID(jid.user, jid.host))

    def onSessionClosed(self, session) -> None:
        """The account's last session is going: its value joins the LRU cache."""
        jid = session.jid
        if jid.host != self.host:
            return
        if all(other is session for other in self.domain.sessions.sessionsOf(jid)):
            value = self.pinned.pop(jid.userhost(), None)
            if value is not None:
                self.recent[jid.userhost()] = value
                self.trim()

    def onChangedElsewhere(self, account: str) -> None:
        """Another node stored a new value for C{account}: read it again if it is needed here."""
        user, _, host = account.partition("@")
        if host != self.host:
            return
        pinned = account in self.pinned
        self.forget(account)
        if pinned:
            self.load(makeJID(user, host))

    def onMissed(self) -> None:
        """
        This node may have missed changes made elsewhere: drop every value,
        and read again those of the accounts with a session here (a load
        under way is not kept, see the module docstring).
        """
        self.generation += 1
        pinned = list(self.pinned)
        self.pinned.clear()
        self.recent.clear()
        for account in pinned:
            user, _, host = account.partition("@")
            self.load(makeJID(user, host))

    def onAccountRemoved(self, event) -> None:
        if event.domain == self.host:
            self.forget("%s@%s" % (event.username, event.domain))
