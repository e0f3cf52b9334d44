"""
The publish-subscribe store's contract (L{xmppd.storage.interfaces.IPubSubStore}),
run on every backend: nodes, items newest first, republishing, trimming to
max items, subscriptions, affiliations, and what removing an account takes
with it; then what only SQLite promises (surviving a reopen, migration from
schema version 4, durable writes, damaged rows read without failing).
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
from tests.test_storage_issue5 import JULIET, oldDatabase
from xmppd.storage import SQLiteStorage, StorageError
from xmppd.storage.interfaces import (AccountRecord, IPubSubStore, IStorage, NodeExists,
                                      NoSuchNode, PubSubItem, PubSubNode, PubSubNodeRecord,
                                      PubSubSubscription, RosterItem)
from xmppd.storage.sqlite import engine as sqliteEngine
from xmppd.storage.sqlite import schema as sqliteSchema

SERVICE = "pubsub.example.org"
PEP = "juliet@example.org"
CONFIG = {"pubsub#access_model": "open", "pubsub#max_items": "10",
          "pubsub#children": ["a", "b"]}


def item(itemId, payload="<entry xmlns='http://www.w3.org/2005/Atom'/>", published=1.0):
    return PubSubItem(itemId, payload, "juliet@example.org/balcony", published)


def subscription(node="news", jid="romeo@example.org", subid="s1", state="subscribed",
                 service=SERVICE):
    return PubSubSubscription(service, node, jid, subid, state, {"pubsub#deliver": "1"})


# The backend fixtures of the storage contract suite, shared with it.
storage = test_storage.storage
sqliteStorage = test_storage.sqliteStorage


@pytest_twisted.ensureDeferred
async def test_providesInterface(storage):
    """Every backend's pubsub store provides the whole contract, behind IStorage."""
    assert verifyObject(IStorage, storage)
    assert verifyObject(IPubSubStore, storage.pubsub)


@pytest_twisted.ensureDeferred
async def test_createAndGetNode(storage):
    """A created node comes back with its configuration, and its creator owns it."""
    created = await storage.pubsub.createNode(SERVICE, "news", CONFIG, "juliet@example.org")
    assert (created.service, created.node, created.config) == (SERVICE, "news", CONFIG)
    assert await storage.pubsub.getNode(SERVICE, "news") == created
    assert await storage.pubsub.getAffiliations(SERVICE, "news") == [
        ("news", "juliet@example.org", "owner")]
    assert await storage.pubsub.getNode(SERVICE, "other") is None


@pytest_twisted.ensureDeferred
async def test_createTwiceFails(storage):
    """Creating a node that exists fails with NodeExists (the service answers conflict)."""
    await storage.pubsub.createNode(SERVICE, "news", {}, "juliet@example.org")
    with pytest.raises(NodeExists):
        await storage.pubsub.createNode(SERVICE, "news", {}, "romeo@example.org")


@pytest_twisted.ensureDeferred
async def test_configIsCopied(storage):
    """Changing a configuration dict after storing or reading it changes nothing stored."""
    config = dict(CONFIG)
    await storage.pubsub.createNode(SERVICE, "news", config, "juliet@example.org")
    config["pubsub#max_items"] = "1"
    (await storage.pubsub.getNode(SERVICE, "news")).config["pubsub#children"].append("c")
    assert (await storage.pubsub.getNode(SERVICE, "news")).config == CONFIG


@pytest_twisted.ensureDeferred
async def test_listAndConfigure(storage):
    """Nodes list by name within their service, and a new configuration replaces the old."""
    for name in ("b", "a"):
        await storage.pubsub.createNode(SERVICE, name, {}, "juliet@example.org")
    await storage.pubsub.createNode(PEP, "urn:xmpp:avatar:data", {}, PEP)
    assert [n.node for n in await storage.pubsub.listNodes(SERVICE)] == ["a", "b"]
    await storage.pubsub.configureNode(SERVICE, "a", {"pubsub#title": "A"})
    assert (await storage.pubsub.getNode(SERVICE, "a")).config == {"pubsub#title": "A"}
    with pytest.raises(NoSuchNode):
        await storage.pubsub.configureNode(SERVICE, "missing", {})


@pytest_twisted.ensureDeferred
async def test_itemsNewestFirst(storage):
    """Items come back newest first, by id, and at most max items."""
    await storage.pubsub.createNode(SERVICE, "news", {}, "juliet@example.org")
    for itemId in ("1", "2", "3"):
        assert await storage.pubsub.publish(SERVICE, "news", item(itemId)) == []
    items = await storage.pubsub.getItems(SERVICE, "news")
    assert [i.id for i in items] == ["3", "2", "1"]
    assert items[0] == item("3")
    assert [i.id for i in await storage.pubsub.getItems(SERVICE, "news", maxItems=2)] == [
        "3", "2"]
    assert [i.id for i in await storage.pubsub.getItems(
        SERVICE, "news", ids=["1", "9", "3"])] == ["3", "1"]


@pytest_twisted.ensureDeferred
async def test_republishReplacesAndBecomesNewest(storage):
    """Publishing an id again replaces that item and makes it the newest (XEP-0060 §7.1.2)."""
    await storage.pubsub.createNode(SERVICE, "news", {}, "juliet@example.org")
    for itemId in ("1", "2"):
        await storage.pubsub.publish(SERVICE, "news", item(itemId))
    await storage.pubsub.publish(SERVICE, "news", item("1", "<new xmlns='x'/>", 2.0))
    items = await storage.pubsub.getItems(SERVICE, "news")
    assert [(i.id, i.payload) for i in items] == [
        ("1", "<new xmlns='x'/>"), ("2", item("2").payload)]


@pytest_twisted.ensureDeferred
async def test_maxItemsTrimsOldest(storage):
    """With max items, a publish removes the oldest items beyond it and says which."""
    await storage.pubsub.createNode(SERVICE, "news", {}, "juliet@example.org")
    for itemId in ("1", "2"):
        await storage.pubsub.publish(SERVICE, "news", item(itemId), maxItems=2)
    assert await storage.pubsub.publish(SERVICE, "news", item("3"), maxItems=2) == ["1"]
    assert await storage.pubsub.publish(SERVICE, "news", item("4"), maxItems=1) == ["2", "3"]
    assert [i.id for i in await storage.pubsub.getItems(SERVICE, "news")] == ["4"]


@pytest_twisted.ensureDeferred
async def test_retractAndPurge(storage):
    """Retracting says whether the item existed; purging empties the node and keeps it."""
    await storage.pubsub.createNode(SERVICE, "news", {}, "juliet@example.org")
    for itemId in ("1", "2"):
        await storage.pubsub.publish(SERVICE, "news", item(itemId))
    assert await storage.pubsub.retract(SERVICE, "news", "1") is True
    assert await storage.pubsub.retract(SERVICE, "news", "1") is False
    await storage.pubsub.purge(SERVICE, "news")
    assert await storage.pubsub.getItems(SERVICE, "news") == []
    assert await storage.pubsub.getNode(SERVICE, "news") is not None


@pytest_twisted.ensureDeferred
async def test_missingNodeFails(storage):
    """Item and membership operations on a node that does not exist fail with NoSuchNode."""
    for call in (lambda s: s.publish(SERVICE, "none", item("1")),
                 lambda s: s.getItems(SERVICE, "none"),
                 lambda s: s.retract(SERVICE, "none", "1"),
                 lambda s: s.purge(SERVICE, "none"),
                 lambda s: s.deleteNode(SERVICE, "none"),
                 lambda s: s.setSubscription(subscription(node="none")),
                 lambda s: s.setAffiliation(SERVICE, "none", "romeo@example.org", "member")):
        with pytest.raises(NoSuchNode):
            await call(storage.pubsub)


@pytest_twisted.ensureDeferred
async def test_subscriptions(storage):
    """Subscriptions are kept per (jid, subid), replaced in place, listed sorted and removed."""
    pubsub = storage.pubsub
    for name in ("news", "blog"):
        await pubsub.createNode(SERVICE, name, {}, "juliet@example.org")
    await pubsub.setSubscription(subscription("news", "romeo@example.org/orchard", "s2"))
    await pubsub.setSubscription(subscription("news", "romeo@example.org", "s1", "pending"))
    await pubsub.setSubscription(subscription("blog"))
    await pubsub.setSubscription(subscription("news", "romeo@example.org", "s1"))
    found = await pubsub.getSubscriptions(SERVICE)
    assert [(s.node, s.jid, s.subid, s.state) for s in found] == [
        ("blog", "romeo@example.org", "s1", "subscribed"),
        ("news", "romeo@example.org", "s1", "subscribed"),
        ("news", "romeo@example.org/orchard", "s2", "subscribed")]
    assert found[0].options == {"pubsub#deliver": "1"}
    assert len(await pubsub.getSubscriptions(SERVICE, node="news")) == 2
    assert len(await pubsub.getSubscriptions(SERVICE, jid="romeo@example.org")) == 2
    assert await pubsub.removeSubscription(SERVICE, "news", "romeo@example.org", "s1")
    assert not await pubsub.removeSubscription(SERVICE, "news", "romeo@example.org", "s1")
    assert len(await pubsub.getSubscriptions(SERVICE, node="news")) == 1


@pytest_twisted.ensureDeferred
async def test_affiliations(storage):
    """Affiliations are set, replaced, listed sorted, and removed by setting "none"."""
    pubsub = storage.pubsub
    await pubsub.createNode(SERVICE, "news", {}, "juliet@example.org")
    await pubsub.setAffiliation(SERVICE, "news", "romeo@example.org", "member")
    await pubsub.setAffiliation(SERVICE, "news", "romeo@example.org", "publisher")
    await pubsub.setAffiliation(SERVICE, "news", "iago@example.org", "outcast")
    assert await pubsub.getAffiliations(SERVICE, "news") == [
        ("news", "iago@example.org", "outcast"), ("news", "juliet@example.org", "owner"),
        ("news", "romeo@example.org", "publisher")]
    await pubsub.setAffiliation(SERVICE, "news", "iago@example.org", "none")
    assert await pubsub.getAffiliations(SERVICE, jid="iago@example.org") == []


@pytest_twisted.ensureDeferred
async def test_deleteNodeTakesEverything(storage):
    """Deleting a node removes its items, subscriptions and affiliations; a new one starts empty."""
    pubsub = storage.pubsub
    await pubsub.createNode(SERVICE, "news", {}, "juliet@example.org")
    await pubsub.publish(SERVICE, "news", item("1"))
    await pubsub.setSubscription(subscription())
    await pubsub.deleteNode(SERVICE, "news")
    assert await pubsub.getNode(SERVICE, "news") is None
    await pubsub.createNode(SERVICE, "news", {}, "romeo@example.org")
    assert await pubsub.getItems(SERVICE, "news") == []
    assert await pubsub.getSubscriptions(SERVICE) == []
    assert await pubsub.getAffiliations(SERVICE) == [("news", "romeo@example.org", "owner")]


@pytest_twisted.ensureDeferred
async def test_removeServiceAndEntity(storage):
    """removeService drops one service's nodes; removeEntity a JID's subscriptions and affiliations."""
    pubsub = storage.pubsub
    await pubsub.createNode(PEP, "urn:xmpp:avatar:data", {}, PEP)
    await pubsub.createNode(PEP, "urn:xmpp:bookmarks:1", {}, PEP)
    await pubsub.createNode(SERVICE, "news", {}, "juliet@example.org")
    await pubsub.setSubscription(subscription(jid="romeo@example.org/orchard"))
    await pubsub.setSubscription(subscription(jid="romeo@example.org", subid="s2"))
    await pubsub.setSubscription(subscription(jid="romeo@example.org.evil", subid="s3"))
    await pubsub.setAffiliation(SERVICE, "news", "romeo@example.org", "publisher")
    assert await pubsub.removeService(PEP) == ["urn:xmpp:avatar:data", "urn:xmpp:bookmarks:1"]
    assert await pubsub.listNodes(PEP) == []
    await pubsub.removeEntity("romeo@example.org")
    assert [s.jid for s in await pubsub.getSubscriptions(SERVICE)] == [
        "romeo@example.org.evil"]
    assert await pubsub.getAffiliations(SERVICE) == [("news", "juliet@example.org", "owner")]


@pytest_twisted.ensureDeferred
async def test_accountRemovalTakesPEP(storage):
    """Removing an account removes its PEP nodes and its subscriptions and affiliations elsewhere."""
    pubsub = storage.pubsub
    await storage.users.addUser("juliet", "example.org", CREDENTIALS)
    await pubsub.createNode(PEP, "urn:xmpp:avatar:data", {}, PEP)
    await pubsub.createNode("romeo@example.org", "urn:xmpp:avatar:data", {},
                            "romeo@example.org")
    await pubsub.setSubscription(subscription(
        "urn:xmpp:avatar:data", "juliet@example.org/balcony", service="romeo@example.org"))
    await storage.users.removeUser("juliet", "example.org")
    assert await pubsub.listNodes(PEP) == []
    assert await pubsub.getSubscriptions("romeo@example.org") == []
    assert len(await pubsub.listNodes("romeo@example.org")) == 1


@pytest_twisted.ensureDeferred
async def test_badStateAndAffiliationRefused(storage):
    """A subscription state or affiliation outside XEP-0060's lists is refused and nothing is stored."""
    pubsub = storage.pubsub
    await pubsub.createNode(SERVICE, "news", {}, "juliet@example.org")
    with pytest.raises(ValueError):
        await pubsub.setSubscription(subscription(state="maybe"))
    with pytest.raises(ValueError):
        await pubsub.setAffiliation(SERVICE, "news", "romeo@example.org", "king")
    assert await pubsub.getSubscriptions(SERVICE) == []
    assert await pubsub.getAffiliations(SERVICE, jid="romeo@example.org") == []


@pytest_twisted.ensureDeferred
async def test_removeUserLeavesOthersAlone(storage):
    """Removing an account keeps other accounts' PEP nodes and a look-alike's subscriptions."""
    pubsub = storage.pubsub
    for name in ("juliet", "romeo"):
        await storage.users.addUser(name, DOMAIN, CREDENTIALS)
    await pubsub.createNode("romeo@example.org", "urn:xmpp:avatar:data", {}, "romeo@example.org")
    await pubsub.createNode(SERVICE, "news", {}, "romeo@example.org")
    await pubsub.setAffiliation(SERVICE, "news", PEP, "publisher")
    await pubsub.setSubscription(subscription(jid="juliet@example.org.evil", subid="s9"))
    await pubsub.setSubscription(subscription(jid=PEP))
    await storage.users.removeUser("juliet", DOMAIN)
    assert [s.jid for s in await pubsub.getSubscriptions(SERVICE)] == [
        "juliet@example.org.evil"]
    assert await pubsub.getAffiliations(SERVICE) == [("news", "romeo@example.org", "owner")]
    assert [n.node for n in await pubsub.listNodes("romeo@example.org")] == [
        "urn:xmpp:avatar:data"]


# Bulk import (IStorage.importAccounts) with PEP nodes.

def _pepRecord(node="urn:xmpp:bookmarks:1", **changes):
    fields = dict(
        config=CONFIG, items=(item("a"), item("b", published=2.0), item("a", "<x xmlns='y'/>")),
        affiliations={"nurse@example.org": "member"},
        subscriptions=(PubSubSubscription(PEP, node, "romeo@example.org/orchard", "s1",
                                          "subscribed", {"pubsub#deliver": "1"}),))
    fields.update(changes)
    return PubSubNodeRecord(node, **fields)


@pytest_twisted.ensureDeferred
async def test_importAccountsWithPEP(storage):
    """Imported accounts come with their PEP nodes: configuration, items in order, affiliations and subscriptions."""
    stale = "juliet@example.org"
    await storage.pubsub.createNode(stale, "left-behind", {}, stale)
    await storage.importAccounts([AccountRecord(
        "juliet", DOMAIN, CREDENTIALS,
        pep=(_pepRecord(), _pepRecord("http://jabber.org/protocol/nick", config={},
                                       items=(), affiliations={}, subscriptions=())))])
    pubsub = storage.pubsub
    assert [(n.node, n.config) for n in await pubsub.listNodes(PEP)] == [
        ("http://jabber.org/protocol/nick", {}), ("urn:xmpp:bookmarks:1", CONFIG)]
    assert await pubsub.getItems(PEP, "urn:xmpp:bookmarks:1") == [
        item("a", "<x xmlns='y'/>"), item("b", published=2.0)]
    assert await pubsub.getAffiliations(PEP) == [
        ("http://jabber.org/protocol/nick", PEP, "owner"),
        ("urn:xmpp:bookmarks:1", PEP, "owner"),
        ("urn:xmpp:bookmarks:1", "nurse@example.org", "member")]
    assert await pubsub.getSubscriptions(PEP) == list(_pepRecord().subscriptions)


@pytest_twisted.ensureDeferred
async def test_importAccountsWithoutPEPStartsEmpty(storage):
    """A new account imported without PEP data never inherits nodes left under its JID."""
    await storage.pubsub.createNode(PEP, "left-behind", {}, PEP)
    await storage.importAccounts([AccountRecord("juliet", DOMAIN, CREDENTIALS)])
    assert await storage.pubsub.listNodes(PEP) == []


@pytest_twisted.ensureDeferred
async def test_importAccountsRefusesBadPEP(storage):
    """An import whose PEP data has an unknown affiliation or state fails and writes no account."""
    for bad in (_pepRecord(affiliations={"nurse@example.org": "king"}),
                _pepRecord(subscriptions=(subscription(state="maybe", service=PEP),))):
        with pytest.raises(ValueError):
            await storage.importAccounts([
                AccountRecord("nurse", DOMAIN, CREDENTIALS),
                AccountRecord("juliet", DOMAIN, CREDENTIALS, pep=(bad,))])
    assert await storage.users.listUsers() == []
    assert await storage.pubsub.listNodes(PEP) == []


# What only SQLite promises.

async def _openSQLite(path, **kwargs):
    store = SQLiteStorage(str(path), **kwargs)
    await store.open()
    return store


async def _fillPEP(pubsub):
    """Juliet's PEP service with two nodes, items, a subscription and affiliations."""
    await pubsub.createNode(PEP, "urn:xmpp:bookmarks:1", CONFIG, PEP)
    await pubsub.createNode(PEP, "http://jabber.org/protocol/nick", {}, PEP)
    for itemId in ("a", "b", "c"):
        await pubsub.publish(PEP, "urn:xmpp:bookmarks:1", item(itemId))
    await pubsub.publish(PEP, "urn:xmpp:bookmarks:1", item("a", "<again xmlns='x'/>", 2.5))
    await pubsub.setSubscription(subscription(
        "urn:xmpp:bookmarks:1", "romeo@example.org/orchard", "s1", service=PEP))
    await pubsub.setAffiliation(PEP, "urn:xmpp:bookmarks:1", "nurse@example.org", "member")


@pytest_twisted.ensureDeferred
async def test_sqliteSurvivesReopen(tmp_path):
    """Nodes, items in their order, subscriptions and affiliations are all there after a restart."""
    path = tmp_path / "xmppd.sqlite"
    clock = Clock()
    clock.advance(1700000000.5)
    first = await _openSQLite(path, clock=clock)
    await _fillPEP(first.pubsub)
    await first.close()
    second = await _openSQLite(path)
    try:
        pubsub = second.pubsub
        assert await pubsub.listNodes(PEP) == [
            PubSubNode(PEP, "http://jabber.org/protocol/nick", {}, 1700000000.5),
            PubSubNode(PEP, "urn:xmpp:bookmarks:1", CONFIG, 1700000000.5)]
        items = await pubsub.getItems(PEP, "urn:xmpp:bookmarks:1")
        assert [(i.id, i.payload, i.published) for i in items] == [
            ("a", "<again xmlns='x'/>", 2.5), ("c", item("c").payload, 1.0),
            ("b", item("b").payload, 1.0)]
        assert await pubsub.getSubscriptions(PEP) == [PubSubSubscription(
            PEP, "urn:xmpp:bookmarks:1", "romeo@example.org/orchard", "s1", "subscribed",
            {"pubsub#deliver": "1"})]
        assert await pubsub.getAffiliations(PEP, "urn:xmpp:bookmarks:1") == [
            ("urn:xmpp:bookmarks:1", PEP, "owner"),
            ("urn:xmpp:bookmarks:1", "nurse@example.org", "member")]
        # The order goes on after the restart: a new item is the newest.
        await pubsub.publish(PEP, "urn:xmpp:bookmarks:1", item("b"), maxItems=2)
        assert [i.id for i in await pubsub.getItems(PEP, "urn:xmpp:bookmarks:1")] == [
            "b", "a"]
    finally:
        await second.close()


@pytest_twisted.ensureDeferred
async def test_sqliteMigratesFromVersion4(tmp_path):
    """A file of schema version 4 gains the pubsub tables on opening, keeping all its data."""
    path = tmp_path / "xmppd.sqlite"
    connection = oldDatabase(path, 4)
    connection.execute("INSERT INTO rooms VALUES ('conference.example.org', 'lobby', '{}', 3.0)")
    connection.execute("INSERT INTO account_data VALUES ('romeo', ?, 'vcard', '<vCard/>')",
                       (DOMAIN,))
    connection.close()

    store = await _openSQLite(path)
    try:
        assert await store.runQuery("PRAGMA user_version") == [(sqliteSchema.SCHEMA_VERSION,)]
        roster = await store.rosters.getRoster("romeo", DOMAIN)
        assert (roster.version, roster.items[JULIET]) == (
            4, RosterItem(JULIET, name="Juliet", subscription="both"))
        assert (await store.rooms.get("conference.example.org", "lobby")).state == "{}"
        assert await store.accountData.get("romeo", DOMAIN, "vcard") == "<vCard/>"
        await store.pubsub.createNode("romeo@example.org", "urn:xmpp:avatar:data", {},
                                      "romeo@example.org")
        await store.users.removeUser("romeo", DOMAIN)
        assert await store.pubsub.listNodes("romeo@example.org") == []
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_sqliteWritesDurableWhenTheyFire(tmp_path):
    """When a create, publish, subscription or affiliation write fires, another connection sees it."""
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

        pubsub = store.pubsub
        await pubsub.createNode(SERVICE, "news", {}, PEP).addCallback(
            look, "SELECT node FROM pubsub_nodes")
        await defer.gatherResults([
            pubsub.publish(SERVICE, "news", item("1")).addCallback(
                look, "SELECT id FROM pubsub_items"),
            pubsub.setSubscription(subscription()).addCallback(
                look, "SELECT jid FROM pubsub_subscriptions"),
            pubsub.setAffiliation(SERVICE, "news", "romeo@example.org", "member").addCallback(
                look, "SELECT jid FROM pubsub_affiliations ORDER BY jid")])
        assert seen == [[("news",)], [("1",)], [("romeo@example.org",)],
                        [(PEP,), ("romeo@example.org",)]]
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_sqliteWritesGrouped(tmp_path, monkeypatch):
    """Publishes queued while the database is busy share one transaction; a publish to no node fails alone."""
    store = await _openSQLite(tmp_path / "xmppd.sqlite")
    try:
        await store.pubsub.createNode(PEP, "urn:xmpp:avatar:data", {}, PEP)
        groups = []
        transaction = sqliteEngine._transaction

        def counting(connection, interaction, *args):
            if interaction is sqliteEngine._runGroup:
                groups.append(len(args[0]))
            return transaction(connection, interaction, *args)

        monkeypatch.setattr(sqliteEngine, "_transaction", counting)
        release = threading.Event()
        busy = store.runInteraction(lambda connection: release.wait(10))
        writes = [store.pubsub.publish(PEP, "urn:xmpp:avatar:data", item("1")),
                  store.pubsub.publish(PEP, "missing", item("2")),
                  store.pubsub.publish(PEP, "urn:xmpp:avatar:data", item("3"), maxItems=1)]
        release.set()
        assert await busy
        results = await defer.DeferredList(writes, consumeErrors=True)
        assert groups == [3]
        assert [ok for ok, _ in results] == [True, False, True]
        assert results[1][1].check(NoSuchNode)
        assert results[2][1] == ["1"]
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_sqliteAccountRemovalIsOneTransaction(tmp_path, monkeypatch):
    """If removing the PEP data fails, the account is not removed either: nothing half done."""
    from xmppd.storage.sqlite import accounts

    store = await _openSQLite(tmp_path / "xmppd.sqlite")
    try:
        await store.users.addUser("juliet", DOMAIN, CREDENTIALS)
        await store.pubsub.createNode(PEP, "urn:xmpp:avatar:data", {}, PEP)

        def broken(connection, username, domain):
            connection.execute("DELETE FROM pubsub_nodes")
            raise StorageError("disk on fire")

        monkeypatch.setattr(accounts, "forgetAccount", broken)
        with pytest.raises(StorageError):
            await store.users.removeUser("juliet", DOMAIN)
        assert await store.users.userExists("juliet", DOMAIN)
        assert len(await store.pubsub.listNodes(PEP)) == 1
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_sqliteDamagedRowsReadAsEmpty(sqliteStorage):
    """A damaged configuration, options or time in the file reads as empty; the rest of the service still reads."""
    pubsub = sqliteStorage.pubsub
    await pubsub.createNode(PEP, "good", CONFIG, PEP)
    for name in ("bad", "list", "worse"):
        await pubsub.createNode(PEP, name, CONFIG, PEP)
    await pubsub.publish(PEP, "bad", item("1"))
    await pubsub.setSubscription(subscription("bad", service=PEP))

    def damage(connection):
        connection.execute("UPDATE pubsub_nodes SET config = '{not json' WHERE node = 'bad'")
        connection.execute("UPDATE pubsub_nodes SET config = '[1, 2]' WHERE node = 'list'")
        connection.execute("UPDATE pubsub_nodes SET config = x'ff00', created = 'soon'"
                           " WHERE node = 'worse'")
        connection.execute("UPDATE pubsub_subscriptions SET options = 'null'")
        connection.execute("UPDATE pubsub_items SET published = 'yesterday'")

    await sqliteStorage.runInteraction(damage)
    nodes = await pubsub.listNodes(PEP)
    assert [(n.node, n.config) for n in nodes] == [
        ("bad", {}), ("good", CONFIG), ("list", {}), ("worse", {})]
    assert nodes[-1].created == 0.0
    assert (await pubsub.getNode(PEP, "bad")).config == {}
    [found] = await pubsub.getSubscriptions(PEP)
    assert (found.jid, found.options) == ("romeo@example.org", {})
    [stored] = await pubsub.getItems(PEP, "bad")
    assert (stored.id, stored.published) == ("1", 0.0)
    # A damaged node can still be configured again, and then reads whole.
    await pubsub.configureNode(PEP, "bad", {"pubsub#title": "mended"})
    assert (await pubsub.getNode(PEP, "bad")).config == {"pubsub#title": "mended"}


@pytest_twisted.ensureDeferred
async def test_sqliteRefusesConfigThatIsNotJSON(sqliteStorage):
    """A configuration that cannot be stored as JSON fails at once and creates nothing."""
    with pytest.raises(TypeError):
        await sqliteStorage.pubsub.createNode(SERVICE, "news", {"x": object()}, PEP)
    assert await sqliteStorage.pubsub.getNode(SERVICE, "news") is None


@pytest_twisted.ensureDeferred
async def test_sqlitePubSubQueriesUseIndexes(sqliteStorage):
    """Node, item and per-entity lookups read an index, never a whole table."""
    plans = []
    for table, where in [
            ("pubsub_nodes", "service = ? AND node = ?"),
            ("pubsub_nodes", "service = ? ORDER BY node"),
            ("pubsub_items", "node_id = ? ORDER BY seq DESC"),
            ("pubsub_items", "node_id = ? AND id = ?"),
            ("pubsub_subscriptions", "jid = ? OR (jid >= ? AND jid < ?)"),
            ("pubsub_affiliations", "jid = ?")]:
        params = (1,) * where.count("?")
        rows = await sqliteStorage.runQuery(
            f"EXPLAIN QUERY PLAN SELECT * FROM {table} WHERE {where}", params)
        plans.append(" ".join(row[-1] for row in rows))
    assert all("INDEX" in plan and "TEMP B-TREE" not in plan for plan in plans), plans
