"""
Tests for L{xmppd.features.pubsub.cache}: node records, affiliations and
subscriptions read once and then from memory, and a change through the
cache (or one it is told of) always seen by the next read.
"""

from twisted.internet import defer

from xmppd.features.pubsub.cache import CachingPubSubStore
from xmppd.storage.interfaces import PubSubItem, PubSubSubscription
from xmppd.storage.memory import MemoryStorage

SERVICE = "juliet@example.org"


class CountingStore:
    """Passes everything to a memory store and counts the reads."""

    def __init__(self):
        self.store = MemoryStorage().pubsub
        self.reads = 0
        self.held = None

    def __getattr__(self, name):
        method = getattr(self.store, name)
        if not name.startswith("get") and name != "listNodes":
            return method

        def read(*args, **kwargs):
            self.reads += 1
            if self.held is not None:
                d = defer.Deferred()
                self.held.append((d, method(*args, **kwargs)))
                return d
            return method(*args, **kwargs)
        return read


def result(d):
    found = []
    d.addBoth(found.append)
    assert found, "the Deferred has not fired"
    if hasattr(found[0], "raiseException"):
        found[0].raiseException()
    return found[0]


def cached():
    counting = CountingStore()
    cache = CachingPubSubStore(lambda: counting)
    result(counting.store.createNode(SERVICE, "mood", {}, SERVICE))
    return cache, counting


def test_nodeReadOnce():
    """Publishing again does not read the node, its affiliations and subscriptions again."""
    cache, counting = cached()
    for _ in range(3):
        assert result(cache.getNode(SERVICE, "mood")).node == "mood"
        assert result(cache.getAffiliations(SERVICE, node="mood")) == [
            ("mood", SERVICE, "owner")]
        assert result(cache.getSubscriptions(SERVICE, node="mood")) == []
        result(cache.publish(SERVICE, "mood", PubSubItem("1", "<x/>", SERVICE, 0.0)))
    assert counting.reads == 3


def test_filteredFromCache():
    """Asking for one JID's affiliation or subscription answers as the store would."""
    cache, counting = cached()
    result(cache.setSubscription(PubSubSubscription(SERVICE, "mood", "romeo@example.org",
                                                    "s1", "subscribed", {})))
    assert result(cache.getAffiliations(SERVICE, node="mood", jid="romeo@example.org")) == []
    assert result(cache.getAffiliations(SERVICE, node="mood", jid=SERVICE)) == [
        ("mood", SERVICE, "owner")]
    found = result(cache.getSubscriptions(SERVICE, node="mood", jid="romeo@example.org"))
    assert [s.subid for s in found] == ["s1"]
    assert result(cache.getSubscriptions(SERVICE, node="mood", jid="nurse@example.org")) == []


def test_writesSeen():
    """A subscription, an affiliation, a new configuration or a deleted node is seen at once."""
    cache, counting = cached()
    assert result(cache.getSubscriptions(SERVICE, node="mood")) == []
    result(cache.setSubscription(PubSubSubscription(SERVICE, "mood", "romeo@example.org",
                                                    "s1", "subscribed", {})))
    assert len(result(cache.getSubscriptions(SERVICE, node="mood"))) == 1
    result(cache.setAffiliation(SERVICE, "mood", "romeo@example.org", "outcast"))
    assert ("mood", "romeo@example.org", "outcast") in result(
        cache.getAffiliations(SERVICE, node="mood"))
    result(cache.configureNode(SERVICE, "mood", {"pubsub#max_items": "5"}))
    assert result(cache.getNode(SERVICE, "mood")).config == {"pubsub#max_items": "5"}
    assert [n.node for n in result(cache.listNodes(SERVICE))] == ["mood"]
    result(cache.deleteNode(SERVICE, "mood"))
    assert result(cache.getNode(SERVICE, "mood")) is None
    assert result(cache.listNodes(SERVICE)) == []


def test_readDuringWriteNotKept():
    """A read that was under way while the node changed is not served again later."""
    cache, counting = cached()
    counting.held = []
    pending = cache.getNode(SERVICE, "mood")
    (held, answer), = counting.held
    counting.held = None
    result(cache.configureNode(SERVICE, "mood", {"pubsub#max_items": "5"}))
    held.callback(result(answer))
    assert result(pending).config == {}
    reads = counting.reads
    assert result(cache.getNode(SERVICE, "mood")).config == {"pubsub#max_items": "5"}
    assert counting.reads == reads + 1


def test_forget():
    """A change made in storage behind the cache is seen once the cache is told."""
    cache, counting = cached()
    result(cache.getAffiliations(SERVICE, node="mood"))
    result(counting.store.setAffiliation(SERVICE, "mood", "romeo@example.org", "member"))
    cache.forget()
    assert ("mood", "romeo@example.org", "member") in result(
        cache.getAffiliations(SERVICE, node="mood"))


def test_bounded():
    """At most the given number of services are remembered."""
    counting = CountingStore()
    cache = CachingPubSubStore(counting, services=2)
    for name in ("a@x", "b@x", "c@x"):
        result(cache.getNode(name, "mood"))
    assert list(cache._entries) == ["b@x", "c@x"]


def test_createdRemembered():
    """A node just created and then published to reads nothing from storage."""
    counting = CountingStore()
    cache = CachingPubSubStore(counting)
    result(cache.createNode(SERVICE, "mood", {"pubsub#max_items": "1"}, SERVICE))
    assert result(cache.getNode(SERVICE, "mood")).config == {"pubsub#max_items": "1"}
    assert result(cache.getAffiliations(SERVICE, node="mood")) == [("mood", SERVICE, "owner")]
    assert result(cache.getSubscriptions(SERVICE, node="mood")) == []
    assert counting.reads == 0


def test_createdAmidOtherWrite():
    """A node created while another write to the service was under way is read again."""
    counting = CountingStore()
    cache = CachingPubSubStore(counting)
    result(cache.createNode(SERVICE, "mood", {}, SERVICE))
    held = defer.Deferred()
    counting.store.setAffiliation, original = (
        lambda *args: held), counting.store.setAffiliation
    pending = cache.setAffiliation(SERVICE, "mood", "romeo@example.org", "member")
    result(cache.createNode(SERVICE, "tune", {}, SERVICE))
    result(original(SERVICE, "mood", "romeo@example.org", "member"))
    held.callback(None)
    result(pending)
    assert ("mood", "romeo@example.org", "member") in result(
        cache.getAffiliations(SERVICE, node="mood"))
    assert result(cache.getNode(SERVICE, "tune")).node == "tune"
    assert counting.reads == 2
