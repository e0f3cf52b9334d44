# -*- test-case-name: tests.test_storage -*-
"""
Storage contracts.

Every method returns a L{Deferred}, even on backends that could answer at
once, so callers never change when the backend does.  Usernames and domains
are passed as already-prepared strings (see L{xmppd.jid}): storage compares
them byte for byte and never normalizes.  Later features (rosters, offline
messages, archive, rooms, private XML, vCards) add their own interfaces here
and one attribute each on L{IStorage}.
"""

from zope.interface import Attribute, Interface


class StorageError(Exception):
    """Base of the errors a storage backend raises on purpose."""


class UserExists(StorageError):
    """The account to create exists already."""


class NoSuchUser(StorageError):
    """The account named does not exist."""


class IUserStore(Interface):
    """Accounts and their SCRAM credentials (never passwords)."""

    def addUser(username, domain, credentials):
        """
        Create an account.

        @param credentials: C{dict} of SASL mechanism name (C{"SCRAM-SHA-1"},
            C{"SCRAM-SHA-256"}) to L{xmppd.scram.ScramCredential}.
        @return: Deferred firing C{None}; fails with L{UserExists}.
        """

    def getCredentials(username, domain):
        """
        @return: Deferred firing the C{dict} given to L{addUser} or
            L{setCredentials}, or C{None} when the account does not exist.
        """

    def setCredentials(username, domain, credentials):
        """Replace all credentials; fails with L{NoSuchUser}."""

    def removeUser(username, domain):
        """
        Remove the account and all its data (every per-feature table or key
        hangs off the account, e.g. SQLite tables cascade from C{users});
        fails with L{NoSuchUser}.
        """

    def userExists(username, domain):
        """@return: Deferred firing C{bool}."""

    def listUsers(domain=None):
        """
        @return: Deferred firing a sorted C{list} of C{(username, domain)}
            tuples, for all domains or only C{domain}.
        """


class IStorage(Interface):
    """One opened store: the collection of every per-feature store."""

    users = Attribute("L{IUserStore}")

    def open():
        """Open (and create or migrate) the store; Deferred firing C{None}."""

    def close():
        """Flush and close; Deferred firing C{None}.  Idempotent."""
