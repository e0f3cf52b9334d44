# -*- test-case-name: tests.test_storage_issue5 -*-
"""
Tests for the offline message store (XEP-0160) and the message archive
(XEP-0313 with XEP-0059 paging) of L{xmppd.storage}: the contract on every
backend, then what only SQLite promises (durability across restarts, group
commit, migration from schema version 2).
"""

import sqlite3
import threading

import pytest
import pytest_twisted
from twisted.internet import defer
from zope.interface.verify import verifyObject

from tests import test_storage
from tests.redisserver import redisServer, _moduleRedis  # noqa: F401  (fixtures)
from tests.test_storage import CREDENTIALS, DOMAIN
from xmppd.storage import NoSuchUser, SQLiteStorage, StorageError
from xmppd.storage.interfaces import (ArchivedMessage, ArchivePage, IArchiveStore,
                                      IOfflineStore, ItemNotFound, OfflineMessage,
                                      RosterItem)
from xmppd.storage.sqlite import engine as sqliteEngine
from xmppd.storage.sqlite import schema as sqliteSchema

# The backend fixtures of the storage contract suite, shared with it.
storage = test_storage.storage
sqliteStorage = test_storage.sqliteStorage

JULIET = "juliet@example.org"
MERCUTIO = "mercutio@example.org"


def _message(number, peer=JULIET, stamp=None):
    """The archived message number C{number}, archived at second 1000 + number."""
    return ArchivedMessage(f"id-{number}", 1000.0 + number if stamp is None else stamp,
                           peer, f"<message id='{number}'><body>{number}</body></message>")


async def _archive(archive, count, username="romeo", peer=lambda n: JULIET):
    messages = [_message(n, peer(n)) for n in range(count)]
    for message in messages:
        await archive.append(username, DOMAIN, message)
    return messages


class RoomArchive:
    """
    A room's archive in the shape of L{IArchiveStore}, so that the archive
    contract tests run on room archives too: the room's name and service
    stand where an account's username and domain do.
    """

    def __init__(self, rooms):
        self.rooms = rooms

    def append(self, name, service, message):
        return self.rooms.appendMessage(service, name, message)

    def query(self, name, service, **query):
        return self.rooms.queryMessages(service, name, **query)

    def removeOlderThan(self, cutoff):
        return self.rooms.removeMessagesOlderThan(cutoff)


@pytest.fixture(params=["user", "room"])
def archive(request, storage):
    """An account's archive, then a room's, of each backend."""
    return storage.archive if request.param == "user" else RoomArchive(storage.rooms)


def _ids(page):
    return [message.id for message in page.messages]


# The offline store, on every backend.

def test_providesInterfaces(storage):
    """Every backend has an offline store and an archive behind IStorage."""
    assert verifyObject(IOfflineStore, storage.offline)
    assert verifyObject(IArchiveStore, storage.archive)


@pytest_twisted.ensureDeferred
async def test_offlineStoreAndFetch(storage):
    """Stored messages come back oldest first, with their XML and stamp, under increasing ids."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    ids = [await storage.offline.store("romeo", DOMAIN, f"<message id='{n}'/>", 100.5 + n)
           for n in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert await storage.offline.count("romeo", DOMAIN) == 3
    assert await storage.offline.fetch("romeo", DOMAIN) == [
        OfflineMessage(ids[n], f"<message id='{n}'/>", 100.5 + n) for n in range(3)]


@pytest_twisted.ensureDeferred
async def test_offlineFetchLimit(storage):
    """Fetching with a limit gives the oldest messages only, and removes nothing."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    for n in range(5):
        await storage.offline.store("romeo", DOMAIN, f"<m{n}/>", n)
    assert [m.xml for m in await storage.offline.fetch("romeo", DOMAIN, 2)] == ["<m0/>", "<m1/>"]
    assert await storage.offline.fetch("romeo", DOMAIN, 0) == []
    assert await storage.offline.count("romeo", DOMAIN) == 5


@pytest_twisted.ensureDeferred
async def test_offlineStampIsFloat(storage):
    """A stamp given as an integer comes back as the same number of seconds, a float."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    await storage.offline.store("romeo", DOMAIN, "<message/>", 7)
    [message] = await storage.offline.fetch("romeo", DOMAIN)
    assert message.stamp == 7.0 and isinstance(message.stamp, float)


@pytest_twisted.ensureDeferred
async def test_offlineDelete(storage):
    """Deleting removes exactly the messages named; absent ids are ignored."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    ids = [await storage.offline.store("romeo", DOMAIN, f"<m{n}/>", n) for n in range(4)]
    await storage.offline.delete("romeo", DOMAIN, [ids[0], ids[2], max(ids) + 100])
    assert [m.id for m in await storage.offline.fetch("romeo", DOMAIN)] == [ids[1], ids[3]]
    await storage.offline.delete("romeo", DOMAIN, [])
    assert await storage.offline.count("romeo", DOMAIN) == 2


@pytest_twisted.ensureDeferred
async def test_offlineDeleteOfUnknownAccount(storage):
    """Deleting messages of an account that is gone is not an error."""
    await storage.offline.delete("nobody", DOMAIN, [1, 2])


@pytest_twisted.ensureDeferred
async def test_offlineIdsNeverReused(storage):
    """A message stored after the newest was delivered and deleted gets a new, greater id."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    first = await storage.offline.store("romeo", DOMAIN, "<a/>", 1)
    await storage.offline.delete("romeo", DOMAIN, [first])
    assert await storage.offline.store("romeo", DOMAIN, "<b/>", 2) > first


@pytest_twisted.ensureDeferred
async def test_offlinePerAccount(storage):
    """Each account sees only its own messages, and cannot delete another's."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    await storage.users.addUser("juliet", DOMAIN, CREDENTIALS)
    await storage.users.addUser("romeo", "example.net", CREDENTIALS)
    romeos = await storage.offline.store("romeo", DOMAIN, "<for-romeo/>", 1)
    await storage.offline.store("juliet", DOMAIN, "<for-juliet/>", 2)
    await storage.offline.delete("juliet", DOMAIN, [romeos])
    assert [m.xml for m in await storage.offline.fetch("romeo", DOMAIN)] == ["<for-romeo/>"]
    assert [m.xml for m in await storage.offline.fetch("juliet", DOMAIN)] == ["<for-juliet/>"]
    assert await storage.offline.fetch("romeo", "example.net") == []
    assert await storage.offline.count("nobody", DOMAIN) == 0
    assert await storage.offline.fetch("nobody", DOMAIN) == []


@pytest_twisted.ensureDeferred
async def test_offlineStoreForUnknownAccount(storage):
    """Storing a message for an account that does not exist fails and keeps nothing."""
    with pytest.raises(NoSuchUser):
        await storage.offline.store("nobody", DOMAIN, "<message/>", 1)
    await storage.users.addUser("nobody", DOMAIN, CREDENTIALS)
    assert await storage.offline.count("nobody", DOMAIN) == 0


@pytest_twisted.ensureDeferred
async def test_offlineXMLIsStr(storage):
    """Only serialized XML (a str) is accepted."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    with pytest.raises(TypeError):
        await storage.offline.store("romeo", DOMAIN, b"<message/>", 1)
    assert await storage.offline.count("romeo", DOMAIN) == 0


@pytest_twisted.ensureDeferred
async def test_offlineFetchedListIsACopy(storage):
    """Changing the list fetched does not change what is stored."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    await storage.offline.store("romeo", DOMAIN, "<message/>", 1)
    (await storage.offline.fetch("romeo", DOMAIN)).clear()
    assert await storage.offline.count("romeo", DOMAIN) == 1


@pytest_twisted.ensureDeferred
async def test_offlineRemovedWithAccount(storage):
    """Removing an account removes its offline messages; a new account of that name starts empty."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    await storage.offline.store("romeo", DOMAIN, "<message/>", 1)
    await storage.users.removeUser("romeo", DOMAIN)
    assert await storage.offline.count("romeo", DOMAIN) == 0
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    assert await storage.offline.fetch("romeo", DOMAIN) == []


# The archive, on every backend: each test runs on an account's archive and
# on a room's (see RoomArchive), which promise the same queries.

@pytest_twisted.ensureDeferred
async def test_archiveRoundTrip(storage, archive):
    """Archived messages come back whole, oldest first, in one complete page."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    messages = await _archive(archive, 3)
    assert await archive.query("romeo", DOMAIN) == ArchivePage(
        tuple(messages), True, 3)


@pytest_twisted.ensureDeferred
async def test_archiveDefaultLimit(storage, archive):
    """Without a limit given, a page holds at most 50 messages."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    await _archive(archive, 51)
    page = await archive.query("romeo", DOMAIN)
    assert (len(page.messages), page.complete, page.count) == (50, False, 51)


@pytest_twisted.ensureDeferred
async def test_archiveOrderIsAppendOrder(storage, archive):
    """The archive keeps the order messages were archived in, whatever their ids and stamps."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    appended = [ArchivedMessage("zz", 30.0, JULIET, "<a/>"),
                ArchivedMessage("aa", 10.0, JULIET, "<b/>"),
                ArchivedMessage("mm", 20.0, JULIET, "<c/>")]
    for message in appended:
        await archive.append("romeo", DOMAIN, message)
    assert _ids(await archive.query("romeo", DOMAIN)) == ["zz", "aa", "mm"]
    assert _ids(await archive.query("romeo", DOMAIN, limit=2, reverse=True)) == [
        "aa", "mm"]
    assert _ids(await archive.query("romeo", DOMAIN, afterId="zz", limit=1)) == ["aa"]


@pytest_twisted.ensureDeferred
async def test_archivePagingForwards(storage, archive):
    """Paging forwards through 25 messages by 10 gives 10, 10, 5, and only the last is complete."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    messages = await _archive(archive, 25)
    pages, afterId = [], None
    while True:
        page = await archive.query("romeo", DOMAIN, afterId=afterId, limit=10)
        pages.append(page)
        if page.complete:
            break
        afterId = page.messages[-1].id
    assert [(len(p.messages), p.complete, p.count) for p in pages] == [
        (10, False, 25), (10, False, 25), (5, True, 25)]
    assert [m for p in pages for m in p.messages] == messages


@pytest_twisted.ensureDeferred
async def test_archivePagingBackwards(storage, archive):
    """Paging backwards from the newest gives the last 10, the 10 before, then the first 5, each oldest first."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    messages = await _archive(archive, 25)
    pages, beforeId = [], None
    while True:
        page = await archive.query("romeo", DOMAIN, beforeId=beforeId, limit=10,
                                   reverse=True)
        pages.append(page)
        if page.complete:
            break
        beforeId = page.messages[0].id
    assert [p.messages for p in pages] == [
        tuple(messages[15:]), tuple(messages[5:15]), tuple(messages[:5])]
    assert [(p.complete, p.count) for p in pages] == [(False, 25), (False, 25), (True, 25)]


@pytest_twisted.ensureDeferred
async def test_archivePagingExactFit(storage, archive):
    """When the results end exactly at a page's end, that page is complete, in both directions."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    messages = await _archive(archive, 20)
    first = await archive.query("romeo", DOMAIN, limit=10)
    second = await archive.query("romeo", DOMAIN, afterId=messages[9].id, limit=10)
    assert (first.complete, second.complete) == (False, True)
    last = await archive.query("romeo", DOMAIN, limit=10, reverse=True)
    earlier = await archive.query("romeo", DOMAIN, beforeId=messages[10].id,
                                  limit=10, reverse=True)
    assert (last.complete, earlier.complete) == (False, True)
    assert earlier.messages == tuple(messages[:10])
    everything = await archive.query("romeo", DOMAIN, limit=20, reverse=True)
    assert everything.complete and everything.messages == tuple(messages)


@pytest_twisted.ensureDeferred
async def test_archivePagingFromTheEnds(storage, archive):
    """Paging after the newest or before the oldest message gives an empty, complete page."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    messages = await _archive(archive, 3)
    after = await archive.query("romeo", DOMAIN, afterId=messages[-1].id)
    before = await archive.query("romeo", DOMAIN, beforeId=messages[0].id,
                                 reverse=True)
    assert after == before == ArchivePage((), True, 3)


@pytest_twisted.ensureDeferred
async def test_archiveBetweenIds(storage, archive):
    """With both afterId and beforeId, only the messages between them are paged, in either direction."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    messages = await _archive(archive, 10)
    forwards = await archive.query("romeo", DOMAIN, afterId=messages[2].id,
                                   beforeId=messages[8].id, limit=3)
    assert forwards.messages == tuple(messages[3:6]) and not forwards.complete
    backwards = await archive.query("romeo", DOMAIN, afterId=messages[2].id,
                                    beforeId=messages[8].id, limit=3, reverse=True)
    assert backwards.messages == tuple(messages[5:8]) and not backwards.complete
    whole = await archive.query("romeo", DOMAIN, afterId=messages[2].id,
                                beforeId=messages[8].id, limit=5)
    assert whole.messages == tuple(messages[3:8]) and whole.complete


@pytest_twisted.ensureDeferred
async def test_archiveLimitZeroAndNone(storage, archive):
    """A limit of 0 gives only the count; no limit gives every message."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    messages = await _archive(archive, 60)
    assert await archive.query("romeo", DOMAIN, limit=0) == ArchivePage((), False, 60)
    assert await archive.query("romeo", DOMAIN, limit=0, reverse=True) == ArchivePage(
        (), False, 60)
    assert await archive.query("romeo", DOMAIN, limit=None) == ArchivePage(
        tuple(messages), True, 60)


@pytest_twisted.ensureDeferred
async def test_archiveFilterByPeer(storage, archive):
    """Filtering by peer gives only the conversation with that JID, counted alone."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    messages = await _archive(archive, 9, peer=lambda n: MERCUTIO if n % 3 == 0 else JULIET)
    page = await archive.query("romeo", DOMAIN, peer=MERCUTIO)
    assert page == ArchivePage((messages[0], messages[3], messages[6]), True, 3)
    assert (await archive.query("romeo", DOMAIN, peer="nobody@example.org")
            ) == ArchivePage((), True, 0)


@pytest_twisted.ensureDeferred
async def test_archiveFilterByTime(storage, archive):
    """start and end are inclusive, and may be given alone."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    messages = await _archive(archive, 10)  # stamps 1000 to 1009
    assert (await archive.query("romeo", DOMAIN, start=1003, end=1005)).messages == tuple(
        messages[3:6])
    assert (await archive.query("romeo", DOMAIN, start=1008.0)).messages == tuple(
        messages[8:])
    assert (await archive.query("romeo", DOMAIN, end=1001.5)).messages == tuple(
        messages[:2])


@pytest_twisted.ensureDeferred
async def test_archiveFilterByIds(storage, archive):
    """Filtering by ids gives those messages in archive order; unknown ids just match nothing."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    messages = await _archive(archive, 5)
    page = await archive.query("romeo", DOMAIN, ids=["id-4", "id-1", "unknown"])
    assert page == ArchivePage((messages[1], messages[4]), True, 2)
    assert await archive.query("romeo", DOMAIN, ids=[]) == ArchivePage((), True, 0)


@pytest_twisted.ensureDeferred
async def test_archiveFiltersCombine(storage, archive):
    """All filters given apply together, and paging works within their results."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    messages = await _archive(archive, 20, peer=lambda n: JULIET if n % 2 else MERCUTIO)
    query = dict(peer=JULIET, start=1004, end=1015,
                 ids=[m.id for m in messages if m.id != "id-9"])
    # Juliet's in 1004..1015 without id-9: 5, 7, 11, 13, 15.
    first = await archive.query("romeo", DOMAIN, limit=2, **query)
    assert (_ids(first), first.complete, first.count) == (["id-5", "id-7"], False, 5)
    # Paging from an id outside the filters' results is allowed.
    rest = await archive.query("romeo", DOMAIN, afterId="id-8", limit=5, **query)
    assert (_ids(rest), rest.complete) == (["id-11", "id-13", "id-15"], True)
    last = await archive.query("romeo", DOMAIN, limit=2, reverse=True, **query)
    assert (_ids(last), last.complete) == (["id-13", "id-15"], False)
    before = await archive.query("romeo", DOMAIN, beforeId="id-12", limit=2,
                                 reverse=True, **query)
    assert (_ids(before), before.complete) == (["id-7", "id-11"], False)


@pytest_twisted.ensureDeferred
async def test_archiveUnknownPagingId(storage, archive):
    """Paging from an id the archive does not hold fails with item-not-found, in either direction."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    await storage.users.addUser("juliet", DOMAIN, CREDENTIALS)
    await _archive(archive, 3)
    await archive.append("juliet", DOMAIN, ArchivedMessage("juliets", 1, JULIET, "<m/>"))
    for paging in [dict(afterId="nope"), dict(beforeId="nope", reverse=True),
                   dict(afterId="juliets"), dict(afterId="id-0", beforeId="nope")]:
        with pytest.raises(ItemNotFound):
            await archive.query("romeo", DOMAIN, **paging)
    with pytest.raises(ItemNotFound):
        await archive.query("nobody", DOMAIN, afterId="id-0")


@pytest_twisted.ensureDeferred
async def test_archiveOfUnknownAccount(storage, archive):
    """Querying the archive of an account with none gives an empty, complete page."""
    assert await archive.query("nobody", DOMAIN) == ArchivePage((), True, 0)
    assert await archive.query("nobody", DOMAIN, reverse=True) == ArchivePage(
        (), True, 0)


@pytest_twisted.ensureDeferred
async def test_archiveAppendForUnknownAccount(storage):
    """Archiving for an account that does not exist fails and keeps nothing."""
    with pytest.raises(NoSuchUser):
        await storage.archive.append("nobody", DOMAIN, _message(1))
    await storage.users.addUser("nobody", DOMAIN, CREDENTIALS)
    assert (await storage.archive.query("nobody", DOMAIN)).count == 0


@pytest_twisted.ensureDeferred
async def test_archiveDuplicateId(storage, archive):
    """An archive id is unique within an account, but two accounts may use the same one."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    await storage.users.addUser("juliet", DOMAIN, CREDENTIALS)
    await archive.append("romeo", DOMAIN, _message(1))
    with pytest.raises(StorageError):
        await archive.append("romeo", DOMAIN, _message(1, peer=MERCUTIO))
    await archive.append("juliet", DOMAIN, _message(1))
    assert await archive.query("romeo", DOMAIN) == ArchivePage((_message(1),), True, 1)


@pytest_twisted.ensureDeferred
async def test_archivePerAccount(storage, archive):
    """Each account queries only its own archive."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    await storage.users.addUser("romeo", "example.net", CREDENTIALS)
    await _archive(archive, 3)
    await archive.append("romeo", "example.net", _message(7))
    assert _ids(await archive.query("romeo", "example.net")) == ["id-7"]
    assert (await archive.query("romeo", DOMAIN)).count == 3


@pytest_twisted.ensureDeferred
async def test_archiveRetention(storage, archive):
    """Retention removes every account's messages older than the cutoff, and keeps the rest in order."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    await storage.users.addUser("juliet", DOMAIN, CREDENTIALS)
    messages = await _archive(archive, 10)
    for n in (2, 8):
        await archive.append("juliet", DOMAIN, _message(n))
    assert await archive.removeOlderThan(1005.0) == 6
    assert await archive.query("romeo", DOMAIN) == ArchivePage(
        tuple(messages[5:]), True, 5)
    assert _ids(await archive.query("juliet", DOMAIN)) == ["id-8"]
    with pytest.raises(ItemNotFound):
        await archive.query("romeo", DOMAIN, afterId="id-4")
    await archive.append("romeo", DOMAIN, _message(1))
    assert _ids(await archive.query("romeo", DOMAIN, afterId="id-9")) == ["id-1"]
    assert await archive.removeOlderThan(0) == 0


@pytest_twisted.ensureDeferred
async def test_archiveRemovedWithAccount(storage):
    """Removing an account removes its archive, and its ids are free again."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    await _archive(storage.archive, 3)
    await storage.users.removeUser("romeo", DOMAIN)
    assert await storage.archive.query("romeo", DOMAIN) == ArchivePage((), True, 0)
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    await storage.archive.append("romeo", DOMAIN, _message(0))
    assert _ids(await storage.archive.query("romeo", DOMAIN)) == ["id-0"]


@pytest_twisted.ensureDeferred
async def test_archiveValuesNormalized(storage, archive):
    """An integer stamp comes back as a float, as from every backend."""
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    await archive.append("romeo", DOMAIN, ArchivedMessage("a", 5, JULIET, "<m/>"))
    [message] = (await archive.query("romeo", DOMAIN)).messages
    assert message == ArchivedMessage("a", 5.0, JULIET, "<m/>")
    assert isinstance(message.stamp, float)


# What only SQLite promises.

async def _openSQLite(path):
    store = SQLiteStorage(str(path))
    await store.open()
    return store


@pytest_twisted.ensureDeferred
async def test_sqliteOfflineAndArchiveSurviveReopen(tmp_path):
    """Offline messages and the archive are there after reopening the file, and new ids keep growing."""
    path = tmp_path / "xmppd.sqlite"
    first = await _openSQLite(path)
    await first.users.addUser("romeo", DOMAIN, CREDENTIALS)
    ids = [await first.offline.store("romeo", DOMAIN, f"<m{n}/>", n) for n in range(3)]
    await first.offline.delete("romeo", DOMAIN, [ids[-1]])
    messages = await _archive(first.archive, 5)
    await first.close()
    second = await _openSQLite(path)
    try:
        assert await second.offline.fetch("romeo", DOMAIN) == [
            OfflineMessage(ids[0], "<m0/>", 0.0), OfflineMessage(ids[1], "<m1/>", 1.0)]
        assert await second.offline.store("romeo", DOMAIN, "<m3/>", 3) > ids[-1]
        assert await second.archive.query("romeo", DOMAIN) == ArchivePage(
            tuple(messages), True, 5)
        await second.archive.append("romeo", DOMAIN, _message(5))
        page = await second.archive.query("romeo", DOMAIN, afterId="id-3")
        assert _ids(page) == ["id-4", "id-5"]
    finally:
        await second.close()


def oldDatabase(path, version: int) -> sqlite3.Connection:
    """
    A database file of an earlier schema C{version}, as that release left
    it, holding romeo with Juliet in his roster (version 4); the caller adds
    rows of its own and closes the connection.
    """
    connection = sqlite3.connect(path, isolation_level=None)
    for step in sqliteSchema.MIGRATIONS[:version]:
        for statement in step:
            connection.execute(statement)
    connection.execute("INSERT INTO users VALUES ('romeo', ?)", (DOMAIN,))
    connection.execute(
        "INSERT INTO roster_items VALUES ('romeo', ?, ?, 'Juliet', 'both', 0, '[]', 0, 0, NULL)",
        (DOMAIN, JULIET))
    connection.execute("INSERT INTO roster_versions VALUES ('romeo', ?, 4)", (DOMAIN,))
    connection.execute("PRAGMA user_version = %d" % version)
    return connection


@pytest_twisted.ensureDeferred
async def test_sqliteMigratesFromVersion2(tmp_path):
    """A file of schema version 2 is upgraded on opening, keeping its accounts and rosters."""
    path = tmp_path / "xmppd.sqlite"
    connection = oldDatabase(path, 2)
    connection.execute("INSERT INTO account_data VALUES ('romeo', ?, 'vcard', '<vCard/>')",
                       (DOMAIN,))
    connection.close()

    store = await _openSQLite(path)
    try:
        assert await store.runQuery("PRAGMA user_version") == [(sqliteSchema.SCHEMA_VERSION,)]
        roster = await store.rosters.getRoster("romeo", DOMAIN)
        assert (roster.version, roster.items[JULIET]) == (
            4, RosterItem(JULIET, name="Juliet", subscription="both"))
        assert await store.accountData.get("romeo", DOMAIN, "vcard") == "<vCard/>"
        await store.offline.store("romeo", DOMAIN, "<message/>", 1)
        await store.archive.append("romeo", DOMAIN, _message(1))
        await store.users.removeUser("romeo", DOMAIN)
        for table in ["offline_messages", "archive", "roster_items"]:
            assert await store.runQuery(f"SELECT count(*) FROM {table}") == [(0,)]
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_sqliteOfflineStoreDurableWhenItFires(tmp_path):
    """When a store's Deferred fires, another connection to the file already sees the message."""
    path = tmp_path / "xmppd.sqlite"
    store = await _openSQLite(path)
    try:
        await store.users.addUser("romeo", DOMAIN, CREDENTIALS)
        seen = []

        def look(messageId):
            other = sqlite3.connect(path)
            try:
                seen.append(other.execute(
                    "SELECT xml FROM offline_messages WHERE id = ?", (messageId,)).fetchall())
            finally:
                other.close()

        await defer.gatherResults([
            store.offline.store("romeo", DOMAIN, f"<m{n}/>", n).addCallback(look)
            for n in range(20)])
        assert seen == [[(f"<m{n}/>",)] for n in range(20)]
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_sqliteGroupCommit(tmp_path, monkeypatch):
    """Stores queued while the database is busy share one transaction and keep their order."""
    store = await _openSQLite(tmp_path / "xmppd.sqlite")
    try:
        await store.users.addUser("romeo", DOMAIN, CREDENTIALS)
        groups = []
        transaction = sqliteEngine._transaction

        def counting(connection, interaction, *args):
            if interaction is sqliteEngine._runGroup:
                groups.append(len(args[0]))
            return transaction(connection, interaction, *args)

        monkeypatch.setattr(sqliteEngine, "_transaction", counting)
        release = threading.Event()
        busy = store.runInteraction(lambda connection: release.wait(10))
        stores = [store.offline.store("romeo", DOMAIN, f"<m{n}/>", n) for n in range(30)]
        # A write to an unknown account in the middle fails alone.
        stores.insert(10, store.offline.store("nobody", DOMAIN, "<lost/>", 0))
        archived = store.archive.append("romeo", DOMAIN, _message(1))
        release.set()
        assert await busy
        results = await defer.DeferredList(stores + [archived], consumeErrors=True)
        assert groups == [32]
        ok, failure = results.pop(10)
        assert not ok and failure.check(NoSuchUser)
        ids = [result for ok, result in results[:-1]]
        assert all(ok for ok, _ in results) and ids == sorted(ids)
        assert [m.xml for m in await store.offline.fetch("romeo", DOMAIN)] == [
            f"<m{n}/>" for n in range(30)]
        assert _ids(await store.archive.query("romeo", DOMAIN)) == ["id-1"]
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_sqliteReadsSeeEarlierGroupedWrites(sqliteStorage):
    """A fetch or query asked for right after a store or append, without waiting, sees it."""
    await sqliteStorage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    stored = sqliteStorage.offline.store("romeo", DOMAIN, "<message/>", 1)
    appended = sqliteStorage.archive.append("romeo", DOMAIN, _message(1))
    fetched = sqliteStorage.offline.fetch("romeo", DOMAIN)
    queried = sqliteStorage.archive.query("romeo", DOMAIN)
    assert [m.xml for m in await fetched] == ["<message/>"]
    assert _ids(await queried) == ["id-1"]
    await stored
    await appended


@pytest_twisted.ensureDeferred
async def test_sqliteGroupOneJob(sqliteStorage):
    """A burst of grouped writes wakes the worker once; a write after it is still done."""
    await sqliteStorage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    jobs = []
    inThread = sqliteStorage._inThread

    def counting(f, *args):
        jobs.append(f.__name__)
        return inThread(f, *args)

    sqliteStorage._inThread = counting
    release = threading.Event()
    busy = sqliteStorage.runInteraction(lambda connection: release.wait(10))
    stored = [sqliteStorage.offline.store("romeo", DOMAIN, f"<m{n}/>", n) for n in range(5)]
    release.set()
    await busy
    await defer.gatherResults(stored)
    assert jobs.count("_commitGroup") == 1
    await sqliteStorage.offline.store("romeo", DOMAIN, "<m5/>", 5)
    assert jobs.count("_commitGroup") == 2
    assert [m.xml for m in await sqliteStorage.offline.fetch("romeo", DOMAIN)] == [
        f"<m{n}/>" for n in range(6)]


@pytest_twisted.ensureDeferred
async def test_sqliteGroupFailsWhole(sqliteStorage):
    """When the shared transaction cannot commit, every write in it fails and none is kept."""
    await sqliteStorage.users.addUser("romeo", DOMAIN, CREDENTIALS)

    def breakTheTransaction(connection):
        # Ends the transaction the group runs in, so its commit cannot hold.
        connection.execute("ROLLBACK")
        raise sqlite3.OperationalError("disk I/O error")

    release = threading.Event()
    busy = sqliteStorage.runInteraction(lambda connection: release.wait(10))
    stored = sqliteStorage.offline.store("romeo", DOMAIN, "<message/>", 1)
    broken = sqliteStorage.runGrouped(breakTheTransaction)
    release.set()
    await busy
    results = await defer.DeferredList([stored, broken], consumeErrors=True)
    assert [ok for ok, _ in results] == [False, False]
    assert await sqliteStorage.offline.count("romeo", DOMAIN) == 0


@pytest_twisted.ensureDeferred
async def test_sqliteGroupedWriteWhenClosed(tmp_path):
    """Storing into a closed database fails at once instead of waiting forever."""
    store = await _openSQLite(tmp_path / "xmppd.sqlite")
    await store.users.addUser("romeo", DOMAIN, CREDENTIALS)
    await store.close()
    with pytest.raises(StorageError, match="not open"):
        await store.offline.store("romeo", DOMAIN, "<message/>", 1)
    with pytest.raises(StorageError, match="not open"):
        await store.archive.append("romeo", DOMAIN, _message(1))


@pytest_twisted.ensureDeferred
async def test_sqliteCloseFlushesGroupedWrites(tmp_path):
    """Writes asked for before close are committed before the file closes."""
    path = tmp_path / "xmppd.sqlite"
    store = await _openSQLite(path)
    await store.users.addUser("romeo", DOMAIN, CREDENTIALS)
    stored = store.offline.store("romeo", DOMAIN, "<message/>", 1)
    await store.close()
    assert await stored
    reopened = await _openSQLite(path)
    try:
        assert await reopened.offline.count("romeo", DOMAIN) == 1
    finally:
        await reopened.close()


@pytest_twisted.ensureDeferred
async def test_sqliteArchiveQueriesUseIndexes(sqliteStorage):
    """Archive queries by account, peer and time read an index, never the whole table."""
    plans = []
    for where in ["username = ? AND domain = ? ORDER BY seq DESC",
                  "username = ? AND domain = ? AND peer = ? ORDER BY seq",
                  "username = ? AND domain = ? AND stamp >= ?",
                  "username = ? AND domain = ? AND id = ?",
                  "stamp < ?"]:
        params = (1,) * where.count("?")
        rows = await sqliteStorage.runQuery(
            f"EXPLAIN QUERY PLAN SELECT seq, xml FROM archive WHERE {where}", params)
        plans.append(" ".join(row[-1] for row in rows))
    assert all("INDEX" in plan for plan in plans), plans


@pytest_twisted.ensureDeferred
async def test_sqliteReadsBatched(sqliteStorage):
    """Reads asked for while the worker is busy run as one job, in order; a bad one fails alone."""
    await sqliteStorage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    jobs = []
    runReads = sqliteStorage._runReads

    def counting(batch):
        jobs.append(len(batch))
        return runReads(batch)

    sqliteStorage._runReads = counting
    release = threading.Event()
    busy = sqliteStorage.runInteraction(lambda connection: release.wait(10))
    reads = [sqliteStorage.runQuery("SELECT ?", (n,)) for n in range(5)]
    reads.insert(2, sqliteStorage.runQuery("SELECT FROM nowhere"))
    release.set()
    await busy
    results = await defer.DeferredList(reads, consumeErrors=True)
    assert jobs == [6]
    ok, failure = results.pop(2)
    assert not ok and failure.check(sqlite3.Error)
    assert results == [(True, [(n,)]) for n in range(5)]


@pytest_twisted.ensureDeferred
async def test_sqliteReadsKeepOrderWithWrites(sqliteStorage):
    """A read asked for before a write does not see it; one asked for after it does."""
    await sqliteStorage.users.addUser("romeo", DOMAIN, CREDENTIALS)
    release = threading.Event()
    busy = sqliteStorage.runInteraction(lambda connection: release.wait(10))
    before = sqliteStorage.offline.count("romeo", DOMAIN)
    write = sqliteStorage.runInteraction(lambda connection: connection.execute(
        "INSERT INTO offline_messages (username, domain, xml, stamp)"
        " VALUES ('romeo', ?, '<message/>', 1)", (DOMAIN,)))
    after = sqliteStorage.offline.count("romeo", DOMAIN)
    release.set()
    await busy
    await write
    assert (await before, await after) == (0, 1)
