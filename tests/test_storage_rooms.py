"""
Tests for the room store of L{xmppd.storage} (XEP-0045 §10.1.3 persistent
rooms, XEP-0313 §3.3.2 room archives): the records on every backend, what a
room's archive adds to the archive contract (whose paging and filter tests,
in L{tests.test_storage_issue5}, run on room archives too), then what only
SQLite promises (durability, group commit, migration from schema version 3).
"""

import sqlite3
import threading

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from tests import test_storage
from tests.redisserver import redisServer, _moduleRedis  # noqa: F401  (fixtures)
from tests.test_storage import CREDENTIALS, DOMAIN
from tests.test_storage_issue5 import JULIET, _ids, _message, oldDatabase
from xmppd.storage import MemoryStorage, SQLiteStorage, StorageError
from xmppd.storage.interfaces import (ArchivedMessage, ArchivePage, IRoomStore, IStorage,
                                      OfflineMessage, RoomRecord, RosterItem)
from xmppd.storage.sqlite import engine as sqliteEngine
from xmppd.storage.sqlite import schema as sqliteSchema

# The backend fixtures of the storage contract suite, shared with it.
storage = test_storage.storage
sqliteStorage = test_storage.sqliteStorage

SERVICE = "conference.example.org"
OTHER_SERVICE = "chat.example.net"
STATE = '{"subject": "Verona", "members": ["romeo@example.org"]}'
ROMEO = f"lobby@{SERVICE}/romeo"


@pytest.fixture
def clock():
    return Clock()


@pytest_twisted.async_yield_fixture(params=test_storage.BACKEND_NAMES)
async def clockedStorage(request, tmp_path, clock):
    """An opened store of each backend, telling the time by C{clock}."""
    store = test_storage.openableStorage(request.param, tmp_path, request, clock)
    await store.open()
    yield store
    await store.close()


async def _archiveRoom(storage, count, name="lobby", service=SERVICE):
    messages = [_message(n, peer=ROMEO) for n in range(count)]
    for message in messages:
        await storage.rooms.appendMessage(service, name, message)
    return messages


# Room records, on every backend.

def test_providesInterface(storage):
    """Every backend has a room store behind IStorage."""
    assert verifyObject(IStorage, storage)
    assert verifyObject(IRoomStore, storage.rooms)


@pytest_twisted.ensureDeferred
async def test_roomPutAndGet(clockedStorage, clock):
    """A saved room comes back with its state and the time it was saved, as a float."""
    clock.advance(1700000000)
    await clockedStorage.rooms.put(SERVICE, "lobby", STATE)
    record = await clockedStorage.rooms.get(SERVICE, "lobby")
    assert record == RoomRecord(SERVICE, "lobby", STATE, 1700000000.0)
    assert isinstance(record.updated, float)


@pytest_twisted.ensureDeferred
async def test_roomReplace(clockedStorage, clock):
    """Saving a room again replaces its state and its time, and keeps one record."""
    await clockedStorage.rooms.put(SERVICE, "lobby", STATE)
    clock.advance(60.5)
    await clockedStorage.rooms.put(SERVICE, "lobby", '{"subject": "Mantua"}')
    assert await clockedStorage.rooms.get(SERVICE, "lobby") == RoomRecord(
        SERVICE, "lobby", '{"subject": "Mantua"}', 60.5)
    assert await clockedStorage.rooms.list(SERVICE) == [
        RoomRecord(SERVICE, "lobby", '{"subject": "Mantua"}', 60.5)]


@pytest_twisted.ensureDeferred
async def test_roomUpdatedIsNow(storage):
    """Without a clock given, a room's save time is the current time."""
    from twisted.internet import reactor
    before = reactor.seconds()
    await storage.rooms.put(SERVICE, "lobby", STATE)
    after = reactor.seconds()
    assert before <= (await storage.rooms.get(SERVICE, "lobby")).updated <= after


@pytest_twisted.ensureDeferred
async def test_roomGetUnknown(storage):
    """A room never saved has no record."""
    assert await storage.rooms.get(SERVICE, "nowhere") is None


@pytest_twisted.ensureDeferred
async def test_roomDelete(storage):
    """Deleting a saved room says it existed and forgets it; deleting it again says it did not."""
    await storage.rooms.put(SERVICE, "lobby", STATE)
    assert await storage.rooms.delete(SERVICE, "lobby") is True
    assert await storage.rooms.get(SERVICE, "lobby") is None
    assert await storage.rooms.list(SERVICE) == []
    assert await storage.rooms.delete(SERVICE, "lobby") is False


@pytest_twisted.ensureDeferred
async def test_roomList(clockedStorage):
    """Listing gives the rooms of one service only, sorted by name in code point order."""
    names = ["lobby", "Zimmer", "ärger", "balcony", "a"]
    for name in names:
        await clockedStorage.rooms.put(SERVICE, name, f'"{name}"')
    await clockedStorage.rooms.put(OTHER_SERVICE, "crypt", "{}")
    assert await clockedStorage.rooms.list(SERVICE) == [
        RoomRecord(SERVICE, name, f'"{name}"', 0.0) for name in sorted(names)]
    assert [r.name for r in await clockedStorage.rooms.list(OTHER_SERVICE)] == ["crypt"]
    assert await clockedStorage.rooms.list("nowhere.example.org") == []


@pytest_twisted.ensureDeferred
async def test_roomNamesComparedExactly(storage):
    """Room names and services are compared exactly: no case folding, no prefix match."""
    await storage.rooms.put(SERVICE, "lobby", "1")
    await storage.rooms.put(SERVICE, "Lobby", "2")
    await storage.rooms.put(OTHER_SERVICE, "lobby", "3")
    assert (await storage.rooms.get(SERVICE, "lobby")).state == "1"
    assert (await storage.rooms.get(SERVICE, "Lobby")).state == "2"
    assert (await storage.rooms.get(OTHER_SERVICE, "lobby")).state == "3"
    assert await storage.rooms.get(SERVICE, "lob") is None
    assert await storage.rooms.delete(SERVICE, "Lobby")
    assert [r.name for r in await storage.rooms.list(SERVICE)] == ["lobby"]


@pytest_twisted.ensureDeferred
async def test_roomStateIsOpaqueText(storage):
    """Any text is kept exactly as given, even when it is not JSON; only str is accepted."""
    state = '{"subject": "\u2764\ufe0f \U0001f339", "x": "' + "y" * 100000 + '"'
    await storage.rooms.put(SERVICE, "lobby", state)
    assert (await storage.rooms.get(SERVICE, "lobby")).state == state
    with pytest.raises(TypeError):
        await storage.rooms.put(SERVICE, "lobby", state.encode())
    with pytest.raises(TypeError):
        await storage.rooms.put(SERVICE, "hall", None)
    assert (await storage.rooms.get(SERVICE, "lobby")).state == state
    assert await storage.rooms.get(SERVICE, "hall") is None


# Room archives, on every backend (the paging and filter tests are in
# tests.test_storage_issue5, run there on room archives too).

@pytest_twisted.ensureDeferred
async def test_roomArchiveWithoutRecord(storage):
    """A room that was never saved (not persistent) can still be archived, and stays unsaved."""
    messages = await _archiveRoom(storage, 3)
    assert await storage.rooms.queryMessages(SERVICE, "lobby") == ArchivePage(
        tuple(messages), True, 3)
    assert await storage.rooms.get(SERVICE, "lobby") is None
    assert await storage.rooms.list(SERVICE) == []


@pytest_twisted.ensureDeferred
async def test_roomArchiveFilterByOccupant(storage):
    """The peer of a room's message is the sender's occupant JID, and filters by it exactly."""
    await storage.rooms.appendMessage(SERVICE, "lobby", _message(1, peer=ROMEO))
    await storage.rooms.appendMessage(SERVICE, "lobby", _message(2, peer=f"lobby@{SERVICE}/juliet"))
    page = await storage.rooms.queryMessages(SERVICE, "lobby", peer=ROMEO)
    assert page == ArchivePage((_message(1, peer=ROMEO),), True, 1)
    assert (await storage.rooms.queryMessages(SERVICE, "lobby", peer=f"lobby@{SERVICE}")
            ).count == 0


@pytest_twisted.ensureDeferred
async def test_roomDeleteRemovesArchive(storage):
    """Deleting a room removes its archive and frees its ids, and leaves other rooms' archives alone."""
    await storage.rooms.put(SERVICE, "lobby", STATE)
    await _archiveRoom(storage, 3)
    others = await _archiveRoom(storage, 2, name="hall")
    assert await storage.rooms.delete(SERVICE, "lobby") is True
    assert await storage.rooms.queryMessages(SERVICE, "lobby") == ArchivePage((), True, 0)
    assert await storage.rooms.queryMessages(SERVICE, "hall") == ArchivePage(
        tuple(others), True, 2)
    await storage.rooms.appendMessage(SERVICE, "lobby", _message(0))
    assert _ids(await storage.rooms.queryMessages(SERVICE, "lobby")) == ["id-0"]


@pytest_twisted.ensureDeferred
async def test_roomDeleteArchiveOnly(storage):
    """Deleting an unsaved room that has an archive removes the archive and says the room did not exist."""
    await _archiveRoom(storage, 2)
    assert await storage.rooms.delete(SERVICE, "lobby") is False
    assert (await storage.rooms.queryMessages(SERVICE, "lobby")).count == 0


@pytest_twisted.ensureDeferred
async def test_roomArchiveSeparateFromAccountArchive(storage):
    """A room and an account with the same names keep separate archives, retention sweeps and lives."""
    await storage.users.addUser("lobby", SERVICE, CREDENTIALS)
    await storage.archive.append("lobby", SERVICE, _message(1, stamp=10))
    await storage.rooms.appendMessage(SERVICE, "lobby", _message(1, stamp=10))
    await storage.rooms.appendMessage(SERVICE, "lobby", _message(2, stamp=30))
    await storage.rooms.put(SERVICE, "lobby", STATE)
    assert (await storage.archive.query("lobby", SERVICE)).count == 1
    assert await storage.rooms.removeMessagesOlderThan(20) == 1
    assert _ids(await storage.archive.query("lobby", SERVICE)) == ["id-1"]
    assert await storage.archive.removeOlderThan(20) == 1
    assert _ids(await storage.rooms.queryMessages(SERVICE, "lobby")) == ["id-2"]
    await storage.users.removeUser("lobby", SERVICE)
    assert (await storage.rooms.get(SERVICE, "lobby")).state == STATE
    assert _ids(await storage.rooms.queryMessages(SERVICE, "lobby")) == ["id-2"]


@pytest_twisted.ensureDeferred
async def test_roomRetentionKeepsRecords(storage):
    """Retention empties old archives across rooms and services, but never removes a room."""
    await storage.rooms.put(SERVICE, "lobby", STATE)
    await _archiveRoom(storage, 4)  # stamps 1000 to 1003
    await _archiveRoom(storage, 4, service=OTHER_SERVICE)
    assert await storage.rooms.removeMessagesOlderThan(1002.0) == 4
    assert _ids(await storage.rooms.queryMessages(OTHER_SERVICE, "lobby")) == ["id-2", "id-3"]
    assert await storage.rooms.removeMessagesOlderThan(2000) == 4
    assert await storage.rooms.get(SERVICE, "lobby") is not None


@pytest_twisted.ensureDeferred
async def test_roomArchiveReplaceMessage(storage):
    """A replaced message (a tombstone) keeps its id, stamp, peer and place; the others are untouched."""
    messages = await _archiveRoom(storage, 3)
    tombstone = "<message id='1'><retracted xmlns='urn:xmpp:message-retract:1'/></message>"
    assert await storage.rooms.replaceMessage(SERVICE, "lobby", "id-1", tombstone) is True
    page = await storage.rooms.queryMessages(SERVICE, "lobby")
    assert page.messages == (messages[0], ArchivedMessage("id-1", messages[1].stamp, ROMEO,
                                                          tombstone), messages[2])
    assert _ids(await storage.rooms.queryMessages(SERVICE, "lobby", afterId="id-1")) == ["id-2"]


@pytest_twisted.ensureDeferred
async def test_roomArchiveReplaceUnknown(storage):
    """Replacing an id the room's archive does not hold changes nothing and says so."""
    await _archiveRoom(storage, 1)
    await _archiveRoom(storage, 1, name="hall")
    assert await storage.rooms.replaceMessage(SERVICE, "lobby", "id-9", "<message/>") is False
    assert await storage.rooms.replaceMessage(OTHER_SERVICE, "hall", "id-0", "<message/>") is False
    assert await storage.rooms.replaceMessage(SERVICE, "empty", "id-0", "<message/>") is False
    assert (await storage.rooms.queryMessages(SERVICE, "hall")).messages[0].xml != "<message/>"


# What only SQLite promises.

async def _openSQLite(path, **kwargs):
    store = SQLiteStorage(str(path), **kwargs)
    await store.open()
    return store


@pytest_twisted.ensureDeferred
async def test_sqliteRoomsSurviveReopen(tmp_path):
    """Rooms and their archives are there after reopening the file, and the archive order goes on."""
    path = tmp_path / "xmppd.sqlite"
    clock = Clock()
    clock.advance(42.25)
    first = await _openSQLite(path, clock=clock)
    await first.rooms.put(SERVICE, "lobby", STATE)
    await first.rooms.put(SERVICE, "hall", "{}")
    messages = await _archiveRoom(first, 3)
    await first.close()
    second = await _openSQLite(path)
    try:
        assert await second.rooms.list(SERVICE) == [
            RoomRecord(SERVICE, "hall", "{}", 42.25), RoomRecord(SERVICE, "lobby", STATE, 42.25)]
        assert await second.rooms.queryMessages(SERVICE, "lobby") == ArchivePage(
            tuple(messages), True, 3)
        await second.rooms.appendMessage(SERVICE, "lobby", _message(3))
        page = await second.rooms.queryMessages(SERVICE, "lobby", afterId="id-1")
        assert _ids(page) == ["id-2", "id-3"]
        assert await second.rooms.delete(SERVICE, "lobby") is True
    finally:
        await second.close()


@pytest_twisted.ensureDeferred
async def test_sqliteMigratesFromVersion3(tmp_path):
    """A file of schema version 3 gains the room tables on opening, keeping all its data."""
    path = tmp_path / "xmppd.sqlite"
    connection = oldDatabase(path, 3)
    connection.execute("INSERT INTO offline_messages (username, domain, xml, stamp)"
                       " VALUES ('romeo', ?, '<message/>', 5.0)", (DOMAIN,))
    connection.execute("INSERT INTO archive (username, domain, id, stamp, peer, xml)"
                       " VALUES ('romeo', ?, 'a1', 6.0, ?, '<m/>')", (DOMAIN, JULIET))
    connection.close()

    store = await _openSQLite(path)
    try:
        assert await store.runQuery("PRAGMA user_version") == [(sqliteSchema.SCHEMA_VERSION,)]
        roster = await store.rosters.getRoster("romeo", DOMAIN)
        assert (roster.version, roster.items[JULIET]) == (
            4, RosterItem(JULIET, name="Juliet", subscription="both"))
        [offline] = await store.offline.fetch("romeo", DOMAIN)
        assert (offline.xml, offline.stamp) == ("<message/>", 5.0)
        assert (await store.archive.query("romeo", DOMAIN)).messages == (
            ArchivedMessage("a1", 6.0, JULIET, "<m/>"),)
        await store.rooms.put(SERVICE, "lobby", STATE)
        await store.rooms.appendMessage(SERVICE, "lobby", _message(1))
        assert (await store.rooms.get(SERVICE, "lobby")).state == STATE
        assert _ids(await store.rooms.queryMessages(SERVICE, "lobby")) == ["id-1"]
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_sqliteRoomWritesDurableWhenTheyFire(tmp_path):
    """When a save or an append fires, another connection to the file already sees it."""
    path = tmp_path / "xmppd.sqlite"
    store = await _openSQLite(path)
    try:
        seen = []

        def look(_, sql):
            other = sqlite3.connect(path)
            try:
                seen.append(other.execute(sql).fetchall())
            finally:
                other.close()

        await defer.gatherResults([
            store.rooms.put(SERVICE, "lobby", STATE).addCallback(
                look, "SELECT state FROM rooms"),
            store.rooms.appendMessage(SERVICE, "lobby", _message(1)).addCallback(
                look, "SELECT id FROM room_archive")])
        assert seen == [[(STATE,)], [("id-1",)]]
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_sqliteRoomWritesGrouped(tmp_path, monkeypatch):
    """Saves and appends queued while the database is busy share one transaction; a duplicate fails alone."""
    clock = Clock()
    store = await _openSQLite(tmp_path / "xmppd.sqlite", clock=clock)
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
        writes = [store.rooms.put(SERVICE, "lobby", STATE),
                  store.rooms.appendMessage(SERVICE, "lobby", _message(1)),
                  store.rooms.appendMessage(SERVICE, "lobby", _message(1)),
                  store.rooms.appendMessage(SERVICE, "lobby", _message(2)),
                  store.offline.store("romeo", DOMAIN, "<message/>", 1)]
        # The save is stamped when asked for, not when the worker gets to it.
        clock.advance(100)
        release.set()
        assert await busy
        results = await defer.DeferredList(writes, consumeErrors=True)
        assert groups == [5]
        assert [ok for ok, _ in results] == [True, True, False, True, True]
        assert results[2][1].check(StorageError)
        assert (await store.rooms.get(SERVICE, "lobby")).updated == 0.0
        assert _ids(await store.rooms.queryMessages(SERVICE, "lobby")) == ["id-1", "id-2"]
        assert await store.offline.fetch("romeo", DOMAIN) == [
            OfflineMessage(results[4][1], "<message/>", 1.0)]
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_sqliteRoomQueriesUseIndexes(sqliteStorage):
    """Room lookups and archive queries by room, peer and time read an index, never a whole table."""
    plans = []
    for table, where in [
            ("rooms", "service = ? AND name = ?"),
            ("rooms", "service = ? ORDER BY name"),
            ("room_archive", "service = ? AND room = ? ORDER BY seq DESC"),
            ("room_archive", "service = ? AND room = ? AND peer = ? ORDER BY seq"),
            ("room_archive", "service = ? AND room = ? AND stamp >= ?"),
            ("room_archive", "service = ? AND room = ? AND id = ?"),
            ("room_archive", "stamp < ?")]:
        params = (1,) * where.count("?")
        rows = await sqliteStorage.runQuery(
            f"EXPLAIN QUERY PLAN SELECT * FROM {table} WHERE {where}", params)
        plans.append(" ".join(row[-1] for row in rows))
    assert all("INDEX" in plan and "TEMP B-TREE" not in plan for plan in plans), plans
