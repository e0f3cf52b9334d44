"""
The publish-subscribe store's contract (L{xmppd.storage.interfaces.IPubSubStore}),
run on every backend: nodes, items newest first, republishing, trimming to
max items, subscriptions, affiliations, and what removing an account takes
with it.
"""

import pytest
import pytest_twisted
from zope.interface.verify import verifyObject

from tests.test_storage import CREDENTIALS
from xmppd.storage import MemoryStorage
from xmppd.storage.interfaces import (IPubSubStore, NodeExists, NoSuchNode, PubSubItem,
                                      PubSubSubscription)

SERVICE = "pubsub.example.org"
PEP = "juliet@example.org"
CONFIG = {"pubsub#access_model": "open", "pubsub#max_items": "10",
          "pubsub#children": ["a", "b"]}


def item(itemId, payload="<entry xmlns='http://www.w3.org/2005/Atom'/>", published=1.0):
    return PubSubItem(itemId, payload, "juliet@example.org/balcony", published)


def subscription(node="news", jid="romeo@example.org", subid="s1", state="subscribed",
                 service=SERVICE):
    return PubSubSubscription(service, node, jid, subid, state, {"pubsub#deliver": "1"})


# The SQLite backend joins these parameters when it implements the store.
@pytest_twisted.async_yield_fixture(params=["memory"])
async def storage(request):
    """An opened store of each backend."""
    store = MemoryStorage()
    await store.open()
    yield store
    await store.close()


@pytest_twisted.ensureDeferred
async def test_providesInterface(storage):
    """Every backend's pubsub store provides the whole contract."""
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
