"""
Tests for L{xmppd.storage}: one contract suite run against every backend,
then what only the SQLite backend promises (durability, sharing the file with
C{xmppctl}, readable errors, blocking calls off the reactor thread).
"""

import os
import sqlite3
import threading

import pytest
import pytest_twisted
from zope.interface.verify import verifyObject

from xmppd.scram import makeCredentials
from xmppd.storage import (CannotOpenDatabase, IStorage, IUserStore, MemoryStorage,
                           NoSuchUser, SQLiteStorage, StorageError, UserExists,
                           makeStorage)
from xmppd.storage.service import StorageService

DOMAIN = "example.org"

# Few iterations: these tests are about storage, not key stretching.
CREDENTIALS = makeCredentials("secret", iterations=2)
OTHER_CREDENTIALS = makeCredentials("other", iterations=3)


@pytest_twisted.async_yield_fixture(params=["memory", "sqlite"])
async def storage(request, tmp_path):
    """An opened store of each backend, closed after the test."""
    store = makeStorage(request.param, str(tmp_path))
    await store.open()
    yield store
    await store.close()


@pytest_twisted.async_yield_fixture
async def sqliteStorage(tmp_path):
    store = SQLiteStorage(str(tmp_path / "data" / "xmppd.sqlite"))
    await store.open()
    yield store
    await store.close()


# The contract, on every backend.

def test_providesInterfaces(storage):
    """Every backend provides IStorage, with an IUserStore as its users."""
    assert verifyObject(IStorage, storage)
    assert verifyObject(IUserStore, storage.users)


@pytest_twisted.ensureDeferred
async def test_credentialsRoundTrip(storage):
    """The credentials an account is created with are the ones read back."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    assert await storage.users.getCredentials("romeo", DOMAIN) == CREDENTIALS


@pytest_twisted.ensureDeferred
async def test_credentialsOfUnknownUser(storage):
    """Reading the credentials of an unknown account gives None."""
    assert await storage.users.getCredentials("nobody", DOMAIN) is None


@pytest_twisted.ensureDeferred
async def test_userWithoutCredentials(storage):
    """An account created without credentials exists and has an empty dict."""
    await storage.users.addUser("romeo", DOMAIN, {})
    assert await storage.users.getCredentials("romeo", DOMAIN) == {}
    assert await storage.users.userExists("romeo", DOMAIN)


@pytest_twisted.ensureDeferred
async def test_addExistingUser(storage):
    """Creating an account that exists fails and keeps the first credentials."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    with pytest.raises(UserExists):
        await storage.users.addUser("romeo", DOMAIN, OTHER_CREDENTIALS)
    assert await storage.users.getCredentials("romeo", DOMAIN) == CREDENTIALS


@pytest_twisted.ensureDeferred
async def test_setCredentials(storage):
    """Setting credentials replaces all of them."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    newCredentials = {"SCRAM-SHA-256": OTHER_CREDENTIALS["SCRAM-SHA-256"]}
    await storage.users.setCredentials("romeo", DOMAIN, newCredentials)
    assert await storage.users.getCredentials("romeo", DOMAIN) == newCredentials


@pytest_twisted.ensureDeferred
async def test_setCredentialsOfUnknownUser(storage):
    """Setting the credentials of an unknown account fails and creates nothing."""
    with pytest.raises(NoSuchUser):
        await storage.users.setCredentials("nobody", DOMAIN, CREDENTIALS)
    assert not await storage.users.userExists("nobody", DOMAIN)


@pytest_twisted.ensureDeferred
async def test_removeUnknownUser(storage):
    """Removing an unknown account fails."""
    with pytest.raises(NoSuchUser):
        await storage.users.removeUser("nobody", DOMAIN)


@pytest_twisted.ensureDeferred
async def test_userExists(storage):
    """An account exists from its creation until its removal."""
    assert not await storage.users.userExists("romeo", DOMAIN)
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    assert await storage.users.userExists("romeo", DOMAIN)
    assert not await storage.users.userExists("romeo", "example.net")


@pytest_twisted.ensureDeferred
async def test_listUsers(storage):
    """Accounts are listed sorted, for every domain or for the one asked for."""
    for username, domain in [("romeo", DOMAIN), ("juliet", DOMAIN),
                             ("mercutio", "example.net"), ("benvolio", DOMAIN)]:
        await storage.users.addUser(username, domain, CREDENTIALS)
    assert await storage.users.listUsers() == [
        ("benvolio", DOMAIN), ("juliet", DOMAIN), ("mercutio", "example.net"),
        ("romeo", DOMAIN)]
    assert await storage.users.listUsers(DOMAIN) == [
        ("benvolio", DOMAIN), ("juliet", DOMAIN), ("romeo", DOMAIN)]
    assert await storage.users.listUsers("example.com") == []


@pytest_twisted.ensureDeferred
async def test_removeUser(storage):
    """A removed account is gone with its credentials, and can be created afresh."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    await storage.users.addUser("juliet", DOMAIN, CREDENTIALS)
    await storage.users.removeUser("romeo", DOMAIN)
    assert not await storage.users.userExists("romeo", DOMAIN)
    assert await storage.users.getCredentials("romeo", DOMAIN) is None
    assert await storage.users.listUsers() == [("juliet", DOMAIN)]
    await storage.users.addUser("romeo", DOMAIN, OTHER_CREDENTIALS)
    assert await storage.users.getCredentials("romeo", DOMAIN) == OTHER_CREDENTIALS


@pytest_twisted.ensureDeferred
async def test_namesComparedExactly(storage):
    """Storage never folds case: names differing only in case are distinct accounts."""
    await storage.users.addUser("Romeo", DOMAIN, CREDENTIALS)
    assert not await storage.users.userExists("romeo", DOMAIN)
    assert not await storage.users.userExists("Romeo", DOMAIN.upper())
    await storage.users.addUser("romeo", DOMAIN, OTHER_CREDENTIALS)
    assert await storage.users.getCredentials("Romeo", DOMAIN) == CREDENTIALS
    assert await storage.users.getCredentials("romeo", DOMAIN) == OTHER_CREDENTIALS


@pytest_twisted.ensureDeferred
async def test_storedValuesAreCopies(storage):
    """Mutating a dict given to or received from storage changes nothing stored."""
    given = dict(CREDENTIALS)
    await storage.users.addUser("romeo", DOMAIN, given)
    given.clear()
    received = await storage.users.getCredentials("romeo", DOMAIN)
    received.clear()
    assert await storage.users.getCredentials("romeo", DOMAIN) == CREDENTIALS


@pytest_twisted.ensureDeferred
async def test_closeIsIdempotent(storage):
    """Closing a closed store succeeds."""
    await storage.close()
    await storage.close()


# What only SQLite promises.

async def _openSQLite(path):
    store = SQLiteStorage(str(path))
    await store.open()
    return store


def _workerThreads():
    return [thread for thread in threading.enumerate()
            if thread.name.startswith("PoolThread-xmppd-sqlite")]


@pytest_twisted.ensureDeferred
async def test_sqliteSurvivesReopen(tmp_path):
    """Accounts written before closing the file are there after reopening it."""
    path = tmp_path / "xmppd.sqlite"
    first = await _openSQLite(path)
    await first.users.addUser("romeo", DOMAIN, CREDENTIALS)
    await first.close()
    second = await _openSQLite(path)
    try:
        assert await second.users.getCredentials("romeo", DOMAIN) == CREDENTIALS
    finally:
        await second.close()


@pytest_twisted.ensureDeferred
async def test_sqliteSettings(sqliteStorage):
    """The connection uses WAL, full sync, foreign keys and a busy timeout."""
    for pragma, expected in [("journal_mode", "wal"), ("synchronous", 2),
                             ("foreign_keys", 1), ("busy_timeout", 5000)]:
        assert await sqliteStorage.runQuery(f"PRAGMA {pragma}") == [(expected,)]


@pytest_twisted.ensureDeferred
async def test_sqliteCreatesDirectoryAndPrivateFile(tmp_path):
    """A missing data directory is created, and the file is readable only by its owner."""
    path = tmp_path / "new" / "dir" / "xmppd.sqlite"
    store = await _openSQLite(path)
    await store.close()
    assert os.stat(path).st_mode & 0o077 == 0


@pytest_twisted.ensureDeferred
async def test_sqliteSharedWithSecondConnection(sqliteStorage):
    """A second store on the same file, as xmppctl opens it, sees writes from both sides."""
    other = await _openSQLite(sqliteStorage.path)
    try:
        await sqliteStorage.users.addUser("romeo", DOMAIN, CREDENTIALS)
        assert await other.users.getCredentials("romeo", DOMAIN) == CREDENTIALS
        await other.users.addUser("juliet", DOMAIN, CREDENTIALS)
        assert await sqliteStorage.users.userExists("juliet", DOMAIN)
    finally:
        await other.close()


@pytest_twisted.ensureDeferred
async def test_sqliteSchemaVersion(sqliteStorage):
    """A new file is at the current schema version."""
    from xmppd.storage.sqlite import SCHEMA_VERSION
    assert await sqliteStorage.runQuery("PRAGMA user_version") == [(SCHEMA_VERSION,)]


@pytest_twisted.ensureDeferred
async def test_sqliteNewerSchemaRefused(tmp_path):
    """A file from a newer xmppd is refused with a readable error, not modified."""
    path = tmp_path / "xmppd.sqlite"
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA user_version = 999")
    connection.close()
    with pytest.raises(CannotOpenDatabase, match=r"schema version 999 is newer"):
        await _openSQLite(path)


@pytest_twisted.ensureDeferred
async def test_sqliteUnderAFile(tmp_path):
    """A database path below a regular file fails with a message naming path and reason."""
    (tmp_path / "afile").write_bytes(b"")
    path = tmp_path / "afile" / "xmppd.sqlite"
    with pytest.raises(CannotOpenDatabase) as info:
        await _openSQLite(path)
    assert str(info.value) == (
        f"cannot open database {path}: {tmp_path / 'afile'} is not a directory")


@pytest_twisted.ensureDeferred
async def test_sqlitePathIsADirectory(tmp_path):
    """A database path naming a directory fails with a readable message."""
    with pytest.raises(CannotOpenDatabase) as info:
        await _openSQLite(tmp_path)
    assert str(info.value) == f"cannot open database {tmp_path}: is a directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
@pytest_twisted.ensureDeferred
async def test_sqlitePermissionDenied(tmp_path):
    """A database in a directory the server may not write fails with "permission denied"."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    path = locked / "xmppd.sqlite"
    with pytest.raises(CannotOpenDatabase) as info:
        await _openSQLite(path)
    assert str(info.value) == f"cannot open database {path}: permission denied"


@pytest_twisted.ensureDeferred
async def test_sqliteNotADatabase(tmp_path):
    """A file that is not SQLite fails with a readable message."""
    path = tmp_path / "xmppd.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CannotOpenDatabase, match=r"file is not a database"):
        await _openSQLite(path)
    assert _workerThreads() == []


@pytest_twisted.ensureDeferred
async def test_sqliteOffReactorThread(sqliteStorage):
    """Database calls run in one worker thread that is not the reactor's."""
    first = await sqliteStorage.runInteraction(lambda connection: threading.get_ident())
    await sqliteStorage.runQuery("SELECT 1")
    third = await sqliteStorage.runInteraction(lambda connection: threading.get_ident())
    assert first != threading.get_ident()
    assert first == third


@pytest_twisted.ensureDeferred
async def test_sqliteInteractionRolledBack(sqliteStorage):
    """A write that fails half way leaves nothing behind."""
    def addThenFail(connection):
        connection.execute("INSERT INTO users (username, domain) VALUES ('romeo', ?)",
                           (DOMAIN,))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await sqliteStorage.runInteraction(addThenFail)
    assert not await sqliteStorage.users.userExists("romeo", DOMAIN)


@pytest_twisted.ensureDeferred
async def test_sqliteClosed(tmp_path):
    """A closed store has no thread left, refuses calls, and can be opened again."""
    store = await _openSQLite(tmp_path / "xmppd.sqlite")
    await store.close()
    assert _workerThreads() == []
    with pytest.raises(StorageError, match="is not open"):
        await store.users.userExists("romeo", DOMAIN)
    await store.open()
    try:
        assert not await store.users.userExists("romeo", DOMAIN)
    finally:
        await store.close()


# The factory and the service.

def test_makeStorage(tmp_path):
    """The factory builds the named backend, without opening it."""
    sqlite = makeStorage("sqlite", str(tmp_path / "data"))
    assert isinstance(sqlite, SQLiteStorage)
    assert sqlite.path == str(tmp_path / "data" / "xmppd.sqlite")
    assert not (tmp_path / "data").exists()
    assert isinstance(makeStorage("memory", str(tmp_path)), MemoryStorage)


def test_makeStorageUnknownBackend(tmp_path):
    """An unknown backend name is refused with a message listing the known ones."""
    with pytest.raises(ValueError) as info:
        makeStorage("mysql", str(tmp_path))
    assert str(info.value) == (
        "unknown storage backend 'mysql'; expected one of: sqlite, memory")


@pytest_twisted.ensureDeferred
async def test_serviceOpensAndCloses(tmp_path):
    """The service's whenReady() fires once the store is open; stopping waits for close."""
    store = SQLiteStorage(str(tmp_path / "xmppd.sqlite"))
    service = StorageService(store)
    service.startService()
    await service.whenReady()
    await store.users.addUser("romeo", DOMAIN, CREDENTIALS)
    await service.stopService()
    with pytest.raises(StorageError, match="is not open"):
        await store.users.userExists("romeo", DOMAIN)


@pytest_twisted.ensureDeferred
async def test_serviceReadyFailsWhenOpenFails(tmp_path):
    """When the store cannot be opened, whenReady() fails with the readable error."""
    service = StorageService(SQLiteStorage(str(tmp_path)))
    service.startService()
    with pytest.raises(CannotOpenDatabase):
        await service.whenReady()
    await service.stopService()

