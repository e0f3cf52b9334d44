# -*- test-case-name: tests.test_offline -*-
"""
Which accounts C{xmppctl import} left offline messages for, so that a
login reads storage for them only when there may be some.

C{xmppctl import} keeps an account's imported offline messages under the
account-data key L{OFFLINE_IMPORT_KEY} until its next delivery moves them
into the offline store (L{offline.handler}).  Reading that key at every
login cost a storage round trip per login for what is almost always absent
(~5 % of a login in a reconnect storm).  Instead, the accounts that have
the key are read at once (one scan, L{usersWithKey}) the first time a
delivery asks, and again whenever the import marker changed: the file
L{MARKER} in C{server.data_dir}, which C{xmppctl import} appends to after
it stored imported offline messages, so an import made
while the server runs is seen at the next login, with one C{stat} per
delivery.  While the accounts are being read, and always where storage
cannot list them (Redis) or is shared with other nodes (a cluster, whose
imports may run on any machine), every delivery reads the key as before.

Nothing is lost if the marker is missed or removed: the key stays in
storage, and the next scan (the next start at the latest) finds it.
"""

from __future__ import annotations

import os

from twisted.logger import Logger

#: The account-data key C{xmppctl import} leaves offline messages under
#: (L{xmppd.cli.portability.OFFLINE_IMPORT_KEY}; not imported from there, which
#: would load the command-line tool into the server).
OFFLINE_IMPORT_KEY = "offline-import"

#: The marker file in C{server.data_dir} (L{xmppd.cli.portability.OFFLINE_IMPORT_MARKER}).
MARKER = "offline-import.marker"


class PendingImports:
    """
    The accounts of one domain with imported offline messages waiting;
    see the module docstring.  C{accountData} is the domain's
    L{xmppd.storage.interfaces.IAccountDataStore}.
    """

    log = Logger()

    def __init__(self, accountData, domain: str, dataDir: str, shared: bool):
        self.accountData = accountData
        self.domain = domain
        self.path = os.path.join(dataDir, MARKER)
        self.listing = None if shared else getattr(accountData, "usersWithKey", None)
        #: The accounts with the key, as last read; None while unknown.
        self.accounts: set[str] | None = None
        #: The marker's state when L{accounts} was read.
        self.seen: object = None
        self.loading = False

    def marker(self):
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def mayHave(self, username: str) -> bool:
        """Whether C{username} may have imported messages waiting (read the key if so)."""
        if self.listing is None:
            return True
        state = self.marker()
        if self.accounts is None or state != self.seen:
            self.load(state)
            return True
        return username in self.accounts

    def load(self, state) -> None:
        if self.loading:
            return
        self.loading = True
        self.accounts = None

        def loaded(accounts):
            self.loading = False
            self.accounts, self.seen = set(accounts), state

        def failed(failure):
            self.loading = False
            self.log.failure("Could not list the accounts with imported offline messages",
                             failure)

        self.listing(self.domain, OFFLINE_IMPORT_KEY).addCallbacks(loaded, failed)

    def moved(self, username: str) -> None:
        """C{username}'s imported messages are in the offline store now."""
        if self.accounts is not None:
            self.accounts.discard(username)
