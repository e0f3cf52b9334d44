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

from xmppd.core.scram import checkPassword, makeCredentials
from xmppd.storage import (CannotOpenDatabase, IStorage, IUserStore, MemoryStorage,
                           NoSuchUser, SQLiteStorage, StorageError, UserExists,
                           makeStorage)
from xmppd.storage.interfaces import (AccountRecord, IAccountDataStore, IRosterStore,
                                      Roster, RosterItem)
from xmppd.storage.service import StorageService
from xmppd.config.redisurl import parseRedisURL
from xmppd.storage.redis import RedisStorage
from tests.redisserver import redisServer, _moduleRedis  # noqa: F401  (fixtures)

DOMAIN = "example.org"

# Few iterations: these tests are about storage, not key stretching.
CREDENTIALS = makeCredentials("secret", iterations=2)
OTHER_CREDENTIALS = makeCredentials("other", iterations=3)


#: Every backend the contract suite runs on.
BACKEND_NAMES = ["memory", "sqlite", "redis"]


def openableStorage(backend, tmp_path, request, clock=None):
    """
    An unopened store of C{backend}; for C{redis}, on the test module's own
    redis-server (emptied), skipping with the reason when there is none.
    """
    if backend == "redis":
        server = request.getfixturevalue("redisServer")
        return RedisStorage(parseRedisURL(server.url), clock=clock)
    if backend == "memory":
        return MemoryStorage(clock)
    return SQLiteStorage(str(tmp_path / "xmppd.sqlite"), clock=clock)


@pytest_twisted.async_yield_fixture(params=BACKEND_NAMES)
async def storage(request, tmp_path):
    """An opened store of each backend, closed after the test."""
    if request.param == "redis":
        store = openableStorage("redis", tmp_path, request)
    else:
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
    """Every backend provides IStorage, with a store of the right kind behind each attribute."""
    assert verifyObject(IStorage, storage)
    assert verifyObject(IUserStore, storage.users)
    assert verifyObject(IRosterStore, storage.rosters)
    assert verifyObject(IAccountDataStore, storage.accountData)


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


# Rosters, on every backend.

JULIET = "juliet@example.org"
MERCUTIO = "mercutio@example.net"


@pytest_twisted.ensureDeferred
async def test_rosterEmpty(storage):
    """A new account's roster, like an unknown account's, is empty at version 0."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    assert await storage.rosters.getRoster("romeo", DOMAIN) == Roster(0, {})
    assert await storage.rosters.getItem("romeo", DOMAIN, JULIET) is None
    assert await storage.rosters.getRoster("nobody", DOMAIN) == Roster(0, {})
    assert await storage.rosters.getItem("nobody", DOMAIN, JULIET) is None


@pytest_twisted.ensureDeferred
async def test_rosterSetItem(storage):
    """Each item set returns the next version, and the roster holds every item at the latest."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    juliet = RosterItem(JULIET, name="Juliet", subscription="both")
    mercutio = RosterItem(MERCUTIO)
    assert await storage.rosters.setItem("romeo", DOMAIN, juliet) == 1
    assert await storage.rosters.setItem("romeo", DOMAIN, mercutio) == 2
    assert await storage.rosters.getRoster("romeo", DOMAIN) == Roster(
        2, {JULIET: juliet, MERCUTIO: mercutio})
    assert await storage.rosters.getItem("romeo", DOMAIN, JULIET) == juliet
    assert await storage.rosters.getItem("romeo", DOMAIN, MERCUTIO) == mercutio


@pytest_twisted.ensureDeferred
async def test_rosterReplaceItem(storage):
    """Setting an item for a contact already in the roster replaces it, and bumps the version."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    await storage.rosters.setItem("romeo", DOMAIN, RosterItem(
        JULIET, name="Juliet", ask=True, groups=("Friends",)))
    replacement = RosterItem(JULIET, subscription="to")
    assert await storage.rosters.setItem("romeo", DOMAIN, replacement) == 2
    assert await storage.rosters.getRoster("romeo", DOMAIN) == Roster(
        2, {JULIET: replacement})


@pytest_twisted.ensureDeferred
async def test_rosterRemoveItem(storage):
    """Removing an item bumps the version, even when the contact was not in the roster."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    mercutio = RosterItem(MERCUTIO)
    await storage.rosters.setItem("romeo", DOMAIN, RosterItem(JULIET))
    await storage.rosters.setItem("romeo", DOMAIN, mercutio)
    assert await storage.rosters.removeItem("romeo", DOMAIN, JULIET) == 3
    assert await storage.rosters.getItem("romeo", DOMAIN, JULIET) is None
    assert await storage.rosters.removeItem("romeo", DOMAIN, JULIET) == 4
    assert await storage.rosters.removeItem("romeo", DOMAIN, "tybalt@example.org") == 5
    assert await storage.rosters.getRoster("romeo", DOMAIN) == Roster(
        5, {MERCUTIO: mercutio})


@pytest.mark.parametrize("item", [
    RosterItem(JULIET),
    RosterItem(JULIET, name=None, groups=("Zeta", "Alpha", "Friends \"&\" Family",
                                          "Fr\u00e9res \U0001f339", "")),
    RosterItem(JULIET, name="J\u00fcliet", subscription="from", ask=True, approved=True,
               pendingIn=True, pendingInStatus="Let me in, it's Juliet",
               pendingInExtensions="<nick xmlns='http://jabber.org/protocol/nick'>J</nick>"),
    RosterItem(JULIET, subscription="none", pendingIn=True, pendingInStatus=None),
    RosterItem(JULIET, name="", subscription="both", pendingInStatus=""),
], ids=["defaults", "groups", "flags", "hidden", "emptyStrings"])
@pytest_twisted.ensureDeferred
async def test_rosterItemRoundTrip(storage, item):
    """Every field of an item reads back as set: groups as a tuple in their order, flags, None."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    await storage.rosters.setItem("romeo", DOMAIN, item)
    readBack = await storage.rosters.getItem("romeo", DOMAIN, JULIET)
    assert readBack == item
    assert type(readBack.groups) is tuple
    assert (await storage.rosters.getRoster("romeo", DOMAIN)).items == {JULIET: item}


@pytest_twisted.ensureDeferred
async def test_rosterGroupsAreCopied(storage):
    """Groups given as a list read back as a tuple, untouched by later changes to the list."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    groups = ["Friends", "Capulets"]
    await storage.rosters.setItem("romeo", DOMAIN, RosterItem(JULIET, groups=groups))
    groups.append("Montagues")
    item = await storage.rosters.getItem("romeo", DOMAIN, JULIET)
    assert item.groups == ("Friends", "Capulets")


@pytest_twisted.ensureDeferred
async def test_rosterReturnedIsACopy(storage):
    """Changing the items dict of a roster read back changes nothing stored."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    await storage.rosters.setItem("romeo", DOMAIN, RosterItem(JULIET))
    (await storage.rosters.getRoster("romeo", DOMAIN)).items.clear()
    assert (await storage.rosters.getRoster("romeo", DOMAIN)).items == {
        JULIET: RosterItem(JULIET)}


@pytest_twisted.ensureDeferred
async def test_rostersPerAccount(storage):
    """Items and versions of one account never show in another, even of the same name elsewhere."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    await storage.users.addUser("romeo", "example.net", CREDENTIALS)
    await storage.users.addUser("benvolio", DOMAIN, CREDENTIALS)
    await storage.rosters.setItem("romeo", DOMAIN, RosterItem(JULIET))
    await storage.rosters.setItem("romeo", DOMAIN, RosterItem(MERCUTIO))
    assert await storage.rosters.getRoster("romeo", "example.net") == Roster(0, {})
    assert await storage.rosters.getRoster("benvolio", DOMAIN) == Roster(0, {})
    assert await storage.rosters.getItem("romeo", "example.net", JULIET) is None
    assert await storage.rosters.setItem("romeo", "example.net", RosterItem(MERCUTIO)) == 1
    assert await storage.rosters.removeItem("benvolio", DOMAIN, JULIET) == 1
    assert await storage.rosters.getRoster("romeo", DOMAIN) == Roster(
        2, {JULIET: RosterItem(JULIET), MERCUTIO: RosterItem(MERCUTIO)})


@pytest_twisted.ensureDeferred
async def test_rosterWritesForUnknownAccount(storage):
    """Setting or removing an item of an account that does not exist fails and creates nothing."""
    with pytest.raises(NoSuchUser):
        await storage.rosters.setItem("nobody", DOMAIN, RosterItem(JULIET))
    with pytest.raises(NoSuchUser):
        await storage.rosters.removeItem("nobody", DOMAIN, JULIET)
    assert await storage.rosters.getRoster("nobody", DOMAIN) == Roster(0, {})
    assert not await storage.users.userExists("nobody", DOMAIN)
    await storage.users.addUser("nobody", DOMAIN, CREDENTIALS)
    assert await storage.rosters.setItem("nobody", DOMAIN, RosterItem(JULIET)) == 1


@pytest.mark.parametrize("item, visible", [
    (RosterItem(JULIET), True),
    (RosterItem(JULIET, pendingIn=True), False),
    (RosterItem(JULIET, pendingIn=True, pendingInStatus="hi", approved=True), False),
    (RosterItem(JULIET, pendingIn=True, ask=True), True),
    (RosterItem(JULIET, pendingIn=True, subscription="to"), True),
    (RosterItem(JULIET, pendingIn=True, subscription="both"), True),
    (RosterItem(JULIET, subscription="from"), True),
    (RosterItem(JULIET, ask=True), True),
])
def test_rosterItemVisible(item, visible):
    """Only an item that is nothing but an unanswered inbound request is hidden from the user."""
    assert item.visible is visible


# Account data, on every backend.

@pytest_twisted.ensureDeferred
async def test_accountDataSetGetDelete(storage):
    """A value set is read back, replaced by the next set, and gone once deleted."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    assert await storage.accountData.get("romeo", DOMAIN, "vcard") is None
    assert await storage.accountData.set("romeo", DOMAIN, "vcard", "<vCard/>") is None
    assert await storage.accountData.get("romeo", DOMAIN, "vcard") == "<vCard/>"
    await storage.accountData.set("romeo", DOMAIN, "vcard", "<vCard>\u00e9</vCard>")
    assert await storage.accountData.get("romeo", DOMAIN, "vcard") == "<vCard>\u00e9</vCard>"
    assert await storage.accountData.delete("romeo", DOMAIN, "vcard") is None
    assert await storage.accountData.get("romeo", DOMAIN, "vcard") is None
    assert await storage.accountData.delete("romeo", DOMAIN, "vcard") is None


@pytest_twisted.ensureDeferred
async def test_accountDataEmptyValue(storage):
    """An empty string is a value, not an absence."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    await storage.accountData.set("romeo", DOMAIN, "last", "")
    assert await storage.accountData.get("romeo", DOMAIN, "last") == ""
    assert await storage.accountData.getAll("romeo", DOMAIN) == {"last": ""}


@pytest_twisted.ensureDeferred
async def test_accountDataGetAll(storage):
    """getAll gives every key, or exactly those starting with the prefix, compared exactly."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    data = {"vcard": "<vCard/>", "private:jabber:x:a": "<a/>",
            "private:jabber:x:b": "<b/>", "Private:jabber:x:c": "<c/>",
            "privateX": "x", "priv%te:d": "d", "priv_te:e": "e", "pr\u00efvate:f": "f"}
    for key, value in data.items():
        await storage.accountData.set("romeo", DOMAIN, key, value)
    assert await storage.accountData.getAll("romeo", DOMAIN) == data
    assert await storage.accountData.getAll("romeo", DOMAIN, "") == data
    assert await storage.accountData.getAll("romeo", DOMAIN, "private:") == {
        "private:jabber:x:a": "<a/>", "private:jabber:x:b": "<b/>"}
    assert await storage.accountData.getAll("romeo", DOMAIN, "priv%") == {"priv%te:d": "d"}
    assert await storage.accountData.getAll("romeo", DOMAIN, "pr\u00efv") == {
        "pr\u00efvate:f": "f"}
    assert await storage.accountData.getAll("romeo", DOMAIN, "vcard") == {"vcard": "<vCard/>"}
    assert await storage.accountData.getAll("romeo", DOMAIN, "vcard-temp") == {}


@pytest.mark.parametrize("value", [b"<vCard/>", 42, None])
@pytest_twisted.ensureDeferred
async def test_accountDataValuesAreStr(storage, value):
    """Setting a value that is not a str fails with TypeError and stores nothing."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    with pytest.raises(TypeError):
        await storage.accountData.set("romeo", DOMAIN, "vcard", value)
    assert await storage.accountData.getAll("romeo", DOMAIN) == {}


@pytest_twisted.ensureDeferred
async def test_accountDataPerAccount(storage):
    """Data of one account never shows in another, even of the same name on another domain."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    await storage.users.addUser("romeo", "example.net", CREDENTIALS)
    await storage.users.addUser("benvolio", DOMAIN, CREDENTIALS)
    await storage.accountData.set("romeo", DOMAIN, "vcard", "<vCard/>")
    await storage.accountData.set("romeo", "example.net", "last", "1")
    assert await storage.accountData.get("romeo", "example.net", "vcard") is None
    assert await storage.accountData.getAll("romeo", "example.net") == {"last": "1"}
    assert await storage.accountData.getAll("benvolio", DOMAIN) == {}
    await storage.accountData.delete("romeo", "example.net", "vcard")
    assert await storage.accountData.getAll("romeo", DOMAIN) == {"vcard": "<vCard/>"}


@pytest_twisted.ensureDeferred
async def test_accountDataWritesForUnknownAccount(storage):
    """Setting or deleting data of an account that does not exist fails and creates nothing."""
    with pytest.raises(NoSuchUser):
        await storage.accountData.set("nobody", DOMAIN, "vcard", "<vCard/>")
    with pytest.raises(NoSuchUser):
        await storage.accountData.delete("nobody", DOMAIN, "vcard")
    assert await storage.accountData.get("nobody", DOMAIN, "vcard") is None
    assert await storage.accountData.getAll("nobody", DOMAIN) == {}
    assert not await storage.users.userExists("nobody", DOMAIN)


# Removing an account, on every backend.

@pytest_twisted.ensureDeferred
async def test_removeUserRemovesItsData(storage):
    """A removed account takes its roster, roster version and data; a new one starts empty."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    await storage.users.addUser("juliet", DOMAIN, CREDENTIALS)
    for account in ["romeo", "juliet"]:
        await storage.rosters.setItem(account, DOMAIN, RosterItem(MERCUTIO))
        await storage.rosters.removeItem(account, DOMAIN, JULIET)
        await storage.accountData.set(account, DOMAIN, "vcard", "<vCard/>")
    await storage.users.removeUser("romeo", DOMAIN)
    assert await storage.rosters.getRoster("romeo", DOMAIN) == Roster(0, {})
    assert await storage.rosters.getItem("romeo", DOMAIN, MERCUTIO) is None
    assert await storage.accountData.getAll("romeo", DOMAIN) == {}
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    assert await storage.rosters.getRoster("romeo", DOMAIN) == Roster(0, {})
    assert await storage.accountData.get("romeo", DOMAIN, "vcard") is None
    assert await storage.rosters.setItem("romeo", DOMAIN, RosterItem(JULIET)) == 1
    assert await storage.rosters.getRoster("juliet", DOMAIN) == Roster(
        2, {MERCUTIO: RosterItem(MERCUTIO)})
    assert await storage.accountData.getAll("juliet", DOMAIN) == {"vcard": "<vCard/>"}


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
async def test_sqliteRosterAndDataSurviveReopen(tmp_path):
    """Roster items, the roster version and account data are there after reopening the file."""
    path = tmp_path / "xmppd.sqlite"
    item = RosterItem(JULIET, name="Juliet", subscription="to", ask=True,
                      groups=("Capulets", "Friends"), approved=True, pendingIn=True,
                      pendingInStatus="hi")
    first = await _openSQLite(path)
    await first.users.addUser("romeo", DOMAIN, CREDENTIALS)
    await first.rosters.setItem("romeo", DOMAIN, item)
    await first.rosters.removeItem("romeo", DOMAIN, MERCUTIO)
    await first.accountData.set("romeo", DOMAIN, "private:jabber:x:a", "<a/>")
    await first.close()
    second = await _openSQLite(path)
    try:
        assert await second.rosters.getRoster("romeo", DOMAIN) == Roster(2, {JULIET: item})
        assert await second.accountData.getAll("romeo", DOMAIN) == {
            "private:jabber:x:a": "<a/>"}
        assert await second.rosters.setItem("romeo", DOMAIN, RosterItem(MERCUTIO)) == 3
    finally:
        await second.close()


@pytest_twisted.ensureDeferred
async def test_sqliteMigratesFromVersion1(tmp_path):
    """A file of schema version 1 is upgraded on opening, keeping its accounts."""
    from xmppd.storage.sqlite.schema import MIGRATIONS, SCHEMA_VERSION
    path = tmp_path / "xmppd.sqlite"
    first = await _openSQLite(path)
    await first.users.addUser("romeo", DOMAIN, CREDENTIALS)
    await first.close()
    # Rebuild the file as the first release left it: only step 1 applied.
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA foreign_keys = ON")
    rows = {table: connection.execute(f"SELECT * FROM {table}").fetchall()
            for table in ["users", "scram_credentials"]}
    connection.close()
    path.unlink()
    connection = sqlite3.connect(path, isolation_level=None)
    for statement in MIGRATIONS[0]:
        connection.execute(statement)
    for table, tableRows in rows.items():
        placeholders = ", ".join("?" * len(tableRows[0]))
        connection.executemany(f"INSERT INTO {table} VALUES ({placeholders})", tableRows)
    connection.execute("PRAGMA user_version = 1")
    connection.close()

    store = await _openSQLite(path)
    try:
        assert await store.runQuery("PRAGMA user_version") == [(SCHEMA_VERSION,)]
        assert await store.users.getCredentials("romeo", DOMAIN) == CREDENTIALS
        assert await store.rosters.getRoster("romeo", DOMAIN) == Roster(0, {})
        assert await store.rosters.setItem("romeo", DOMAIN, RosterItem(JULIET)) == 1
        await store.accountData.set("romeo", DOMAIN, "vcard", "<vCard/>")
        await store.users.removeUser("romeo", DOMAIN)
        for table in ["roster_items", "roster_versions", "account_data"]:
            assert await store.runQuery(f"SELECT count(*) FROM {table}") == [(0,)]
    finally:
        await store.close()


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
    from xmppd.storage.sqlite.schema import SCHEMA_VERSION
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
        "unknown storage backend 'mysql'; expected one of: sqlite, memory, redis")


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



# -- bulk import -------------------------------------------------------------


def _record(username, roster=(), data=None):
    return AccountRecord(username, "example.org", makeCredentials("pw-" + username),
                         tuple(roster), dict(data or {}))


@pytest_twisted.ensureDeferred
async def test_importAccounts(storage):
    """Bulk-imported accounts have their credentials, roster (version 1) and data."""
    item = RosterItem("romeo@example.org", "Romeo", "both", groups=("Friends",))
    await storage.importAccounts([_record("juliet", [item], {"vcard": "<vCard/>"}),
                                  _record("nurse")])
    assert await storage.users.listUsers("example.org") == [
        ("juliet", "example.org"), ("nurse", "example.org")]
    credentials = await storage.users.getCredentials("juliet", "example.org")
    assert checkPassword("SCRAM-SHA-256", credentials["SCRAM-SHA-256"], "pw-juliet")
    roster = await storage.rosters.getRoster("juliet", "example.org")
    assert roster.version == 1 and roster.items == {"romeo@example.org": item}
    assert (await storage.rosters.getRoster("nurse", "example.org")).version == 0
    assert await storage.accountData.get("juliet", "example.org", "vcard") == "<vCard/>"


@pytest_twisted.ensureDeferred
async def test_importAccountsAllOrNothing(storage):
    """An import that meets an existing account fails and writes none of its accounts."""
    await storage.users.addUser("nurse", "example.org", makeCredentials("x"))
    with pytest.raises(UserExists):
        await storage.importAccounts([_record("juliet"), _record("nurse")])
    assert await storage.users.listUsers() == [("nurse", "example.org")]
    assert (await storage.rosters.getRoster("juliet", "example.org")).version == 0


@pytest_twisted.ensureDeferred
async def test_reopenNeverTouchesFileOutsideSQLite(tmp_path, monkeypatch):
    """Opening an existing database never opens and closes the file itself,
    which would drop the POSIX locks of the process's other connections."""
    path = str(tmp_path / "data" / "xmppd.sqlite")
    first = SQLiteStorage(path)
    await first.open()
    opened = []
    realOpen = os.open

    def recordingOpen(name, *args, **kwargs):
        descriptor = realOpen(name, *args, **kwargs)  # an O_EXCL refusal opens nothing
        opened.append(str(name))
        return descriptor

    monkeypatch.setattr("xmppd.storage.sqlite.engine.os.open", recordingOpen)
    second = SQLiteStorage(path)
    await second.open()
    try:
        assert path not in opened
        await first.users.addUser("juliet", "example.org", makeCredentials("x"))
        assert await second.users.userExists("juliet", "example.org")
    finally:
        await second.close()
        await first.close()


class _TriggerRecorder:
    """The real reactor, but its system event triggers are recorded, not added."""

    def __init__(self, reactor):
        self._reactor = reactor
        self.triggers = []

    def addSystemEventTrigger(self, phase, event, callable, *args):
        self.triggers.append((phase, event, callable))
        return len(self.triggers)

    def removeSystemEventTrigger(self, trigger):
        self.triggers[trigger - 1] = None

    def __getattr__(self, name):
        return getattr(self._reactor, name)


@pytest_twisted.ensureDeferred
async def test_sqliteClosesAtShutdownOnlyAfterTheServiceTree(tmp_path):
    """
    The engine's own safety close runs "during" shutdown: twistd stops the
    service tree "before" it and waits, and the tree still writes while it
    stops (logouts, unacknowledged stanzas to offline storage); a close in
    the same phase ran alongside those writes and lost them.  A store
    closed normally removes its trigger.
    """
    from twisted.internet import reactor
    from xmppd.storage.sqlite.engine import SQLiteEngine
    recorder = _TriggerRecorder(reactor)
    engine = SQLiteEngine(str(tmp_path / "xmppd.sqlite"), reactor=recorder)
    await engine.open()
    [(phase, event, _)] = recorder.triggers
    assert (phase, event) == ("during", "shutdown")
    await engine.close()
    assert recorder.triggers == [None]
