"""
Tests for L{xmppd.features.pubsub.service} (and the protocol, resource and
engine under it): the C{pubsub.example.org} service answering XEP-0060
requests, one section at a time (§5 discovery, §6 subscribers, §7
publishers, §8 owners).  No network: the service on a real router with
recording user domains, memory storage and a L{Clock}
(L{tests.pubsubhelpers}).
"""

from tests.pubsubhelpers import (
    ALICE, BOB, CAROL, MERCUTIO, NS_CONFIG, NS_PUBSUB, SERVICE, PubSub,
    condition, events, form)
from xmppd.config import configFromDict
from xmppd.features.pubsub.service import makeHandler, pubsubDomainOf

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"


def itemIds(reply):
    return [item["id"] for item in reply.pubsub.items.elements(NS_PUBSUB, "item")]


# -- wiring ---------------------------------------------------------------------------

def test_domainFromTemplate():
    """The service lives at pubsub.<domain> unless [pubsub] domain says otherwise."""
    config = configFromDict({"server": {"domains": ["example.org"]}})
    assert pubsubDomainOf(config.pubsub, "example.org") == "pubsub.example.org"
    config = configFromDict({"server": {"domains": ["example.org"]},
                             "pubsub": {"domain": "ps.{domain}"}})
    assert pubsubDomainOf(config.pubsub, "example.org") == "ps.example.org"


def test_pubsubIsAFeatureByDefault():
    """A default configuration runs the pubsub feature."""
    from xmppd.config.registry import DEFAULT_FEATURES
    assert "pubsub" in DEFAULT_FEATURES


def test_domainDiscoItemsListTheService():
    """A served domain's disco#items lists its publish-subscribe service."""
    from twisted.words.protocols.jabber.jid import JID

    from xmppd.storage.memory import MemoryStorage

    class Domain:
        domain = "example.org"
        config = configFromDict({"server": {"domains": ["example.org"]}})
        storage = MemoryStorage()

    handler = makeHandler(Domain())
    items = handler.getDiscoItems(JID(BOB), JID("example.org")).result
    assert [(str(i.entity), i.name) for i in items] == [(SERVICE, "Publish-Subscribe")]


def test_noStoreNoService():
    """On a storage backend without a publish-subscribe store, the domain lists no service."""
    class Domain:
        domain = "example.org"
        config = configFromDict({"server": {"domains": ["example.org"]}})
        storage = object()

    assert makeHandler(Domain()) is None


# -- §5 discovery -----------------------------------------------------------------------

def test_discoInfoOfService():
    """The service's disco#info says pubsub/service and lists the pubsub features."""
    p = PubSub()
    reply = p.iq(BOB, "<query xmlns='%s'/>" % NS_DISCO_INFO, "get")
    [identity] = reply.query.elements(NS_DISCO_INFO, "identity")
    assert (identity["category"], identity["type"]) == ("pubsub", "service")
    features = {f["var"] for f in reply.query.elements(NS_DISCO_INFO, "feature")}
    assert {NS_PUBSUB, NS_PUBSUB + "#publish", NS_PUBSUB + "#publish-options",
            NS_PUBSUB + "#access-whitelist", NS_PUBSUB + "#create-nodes"} <= features


def test_discoItemsListNodes():
    """§5.2: disco#items lists the nodes an entity may see, not whitelist nodes of others."""
    p = PubSub()
    p.create(node="open")
    p.create(node="closed", config={"pubsub#access_model": "whitelist"})
    reply = p.iq(BOB, "<query xmlns='%s'/>" % NS_DISCO_ITEMS, "get")
    assert [i["node"] for i in reply.query.elements(NS_DISCO_ITEMS, "item")] == ["open"]
    reply = p.iq(ALICE, "<query xmlns='%s'/>" % NS_DISCO_ITEMS, "get")
    assert [i["node"] for i in reply.query.elements(NS_DISCO_ITEMS, "item")] == ["closed",
                                                                               "open"]


def test_discoInfoOfNode():
    """§5.3-5.4: a node's disco#info is pubsub/leaf with its meta-data; a missing one item-not-found."""
    p = PubSub()
    p.create(config={"pubsub#title": "News"})
    reply = p.iq(BOB, "<query xmlns='%s' node='news'/>" % NS_DISCO_INFO, "get")
    [identity] = reply.query.elements(NS_DISCO_INFO, "identity")
    assert (identity["category"], identity["type"]) == ("pubsub", "leaf")
    assert "News" in reply.toXml()
    reply = p.iq(BOB, "<query xmlns='%s' node='nothing'/>" % NS_DISCO_INFO, "get")
    assert condition(reply) == ("item-not-found", None)


def test_ping():
    """The service answers XEP-0199 pings and nothing else it does not know."""
    p = PubSub()
    assert p.iq(BOB, "<ping xmlns='urn:xmpp:ping'/>", "get")["type"] == "result"
    reply = p.iq(BOB, "<query xmlns='jabber:iq:version'/>", "get")
    assert condition(reply) == ("service-unavailable", None)


def test_addressWithLocalpart():
    """An address on the service with a localpart has nothing behind it."""
    p = PubSub()
    reply = p.iq(BOB, "<ping xmlns='urn:xmpp:ping'/>", "get", to="node@" + SERVICE)
    assert condition(reply) == ("service-unavailable", None)


# -- §8.1 create -------------------------------------------------------------------------

def test_createNode():
    """§8.1.1: a local user creates a node and becomes its owner."""
    p = PubSub()
    p.create()
    reply = p.pubsub(ALICE, "<affiliations/>", "get")
    [affiliation] = reply.pubsub.affiliations.elements()
    assert (affiliation["node"], affiliation["affiliation"]) == ("news", "owner")


def test_createInstantNode():
    """§8.1.2: an instant node gets a name from the service, returned in the result."""
    p = PubSub()
    reply = p.pubsub(ALICE, "<create/>")
    assert reply["type"] == "result"
    name = reply.pubsub.create["node"]
    assert name
    assert p.pubsub(ALICE, "<items node='%s'/>" % name, "get")["type"] == "result"


def test_createWithConfiguration():
    """§8.1.3: a node created with a configuration form has that configuration."""
    p = PubSub()
    p.create(config={"pubsub#access_model": "whitelist", "pubsub#max_items": "3"})
    reply = p.pubsub(ALICE, "<configure node='news'/>", "get", owner=True)
    xml = reply.toXml()
    assert "<value>whitelist</value>" in xml and "<value>3</value>" in xml


def test_createExistingNode():
    """§8.1.3: creating a node that exists gives conflict."""
    p = PubSub()
    p.create()
    assert condition(p.pubsub(BOB, "<create node='news'/>")) == ("conflict", None)


def test_createByRemoteUser():
    """With node_creation local, a remote user may not create nodes (forbidden)."""
    p = PubSub()
    assert condition(p.pubsub(MERCUTIO, "<create node='x'/>")) == ("forbidden", None)


def test_createByAnyone():
    """With node_creation anyone, a remote user may create nodes."""
    p = PubSub(node_creation="anyone")
    assert p.pubsub(MERCUTIO, "<create node='x'/>")["type"] == "result"


def test_createAdminsOnly():
    """With node_creation admins, only the listed admins create nodes."""
    p = PubSub(node_creation="admins", admins=("carol@example.org",))
    assert condition(p.pubsub(ALICE, "<create node='x'/>")) == ("forbidden", None)
    assert p.pubsub(CAROL, "<create node='x'/>")["type"] == "result"


def test_createWithBadConfiguration():
    """§8.1.3: a configuration value the service does not support gives not-acceptable."""
    p = PubSub()
    reply = p.pubsub(ALICE, "<create node='x'/><configure>%s</configure>"
                     % form({"pubsub#access_model": "everyone"}))
    assert condition(reply) == ("not-acceptable", None)


def test_nodesPerOwnerLimit():
    """Over [pubsub] max_nodes_per_owner, creating gives policy-violation."""
    p = PubSub(max_nodes_per_owner=1)
    p.create(node="one")
    assert condition(p.pubsub(ALICE, "<create node='two'/>")) == ("policy-violation", None)


# -- §8.2 configure, §8.3 default ----------------------------------------------------

def test_configureGetIsForOwners():
    """§8.2.1: the owner gets the configuration form; others get forbidden."""
    p = PubSub()
    p.create()
    reply = p.pubsub(ALICE, "<configure node='news'/>", "get", owner=True)
    assert reply.pubsub.configure["node"] == "news"
    assert NS_CONFIG in reply.toXml()
    reply = p.pubsub(BOB, "<configure node='news'/>", "get", owner=True)
    assert condition(reply) == ("forbidden", None)


def test_configureSet():
    """§8.2.3: the owner changes the configuration and the change is kept."""
    p = PubSub()
    p.create()
    reply = p.pubsub(ALICE, "<configure node='news'>%s</configure>"
                     % form({"pubsub#title": "Daily"}), owner=True)
    assert reply["type"] == "result"
    reply = p.pubsub(ALICE, "<configure node='news'/>", "get", owner=True)
    assert "<value>Daily</value>" in reply.toXml()


def test_configureFormTypeNotHidden():
    """A configuration form whose FORM_TYPE field has no type (as slixmpp sends it) is understood."""
    p = PubSub()
    p.create()
    reply = p.pubsub(ALICE, "<configure node='news'><x xmlns='jabber:x:data' type='submit'>"
                     "<field var='FORM_TYPE'><value>%s</value></field>"
                     "<field var='pubsub#title'><value>Daily</value></field></x></configure>"
                     % NS_CONFIG, owner=True)
    assert reply["type"] == "result"


def test_configureNotifiesWithNotifyConfig():
    """§8.2.4: with notify_config, subscribers get the new configuration."""
    p = PubSub()
    p.create(config={"pubsub#notify_config": "1"})
    p.subscribe(BOB)
    p.pubsub(ALICE, "<configure node='news'>%s</configure>"
             % form({"pubsub#title": "Daily"}), owner=True)
    [event] = events(p.take(BOB))
    assert event.configuration["node"] == "news"


def test_configureMissingNode():
    """§8.2: configuring a node that does not exist gives item-not-found."""
    p = PubSub()
    reply = p.pubsub(ALICE, "<configure node='none'/>", "get", owner=True)
    assert condition(reply) == ("item-not-found", None)


def test_configureCancel():
    """§8.2.3: a cancelled configuration form changes nothing and is answered with a result."""
    p = PubSub()
    p.create()
    reply = p.pubsub(ALICE, "<configure node='news'><x xmlns='jabber:x:data' type='cancel'/>"
                     "</configure>", owner=True)
    assert reply["type"] == "result"


def test_defaultConfiguration():
    """§8.3: the default node configuration comes as a form."""
    p = PubSub()
    reply = p.pubsub(ALICE, "<default/>", "get", owner=True)
    assert reply["type"] == "result"
    assert "pubsub#access_model" in reply.toXml()


def test_lowerMaxItemsDropsOldest():
    """Lowering max_items removes the oldest items beyond the new limit."""
    p = PubSub()
    p.create()
    for n in range(3):
        p.publish(itemId="i%d" % n)
    p.pubsub(ALICE, "<configure node='news'>%s</configure>"
             % form({"pubsub#max_items": "1"}), owner=True)
    assert itemIds(p.pubsub(BOB, "<items node='news'/>", "get")) == ["i2"]


# -- §8.4 delete, §8.5 purge ---------------------------------------------------------

def test_deleteNotifiesSubscribers():
    """§8.4: deleting a node tells its subscribers, with the redirect when given."""
    p = PubSub()
    p.create()
    p.subscribe(BOB)
    reply = p.pubsub(ALICE, "<delete node='news'><redirect uri='xmpp:%s?;node=new'/></delete>"
                     % SERVICE, owner=True)
    assert reply["type"] == "result"
    [event] = events(p.take(BOB))
    assert event.delete["node"] == "news"
    assert event.delete.redirect["uri"].endswith("node=new")
    assert condition(p.pubsub(BOB, "<items node='news'/>", "get")) == ("item-not-found", None)


def test_deleteByNonOwner():
    """§8.4.3: only owners delete nodes (forbidden), and a missing node is item-not-found."""
    p = PubSub()
    p.create()
    assert condition(p.pubsub(BOB, "<delete node='news'/>", owner=True)) == ("forbidden", None)
    assert condition(p.pubsub(ALICE, "<delete node='x'/>", owner=True)) == ("item-not-found",
                                                                            None)


def test_purge():
    """§8.5: purging removes every item and tells the subscribers."""
    p = PubSub()
    p.create()
    p.publish()
    p.subscribe(BOB)
    p.clock.advance(0)
    p.take(BOB)
    assert p.pubsub(ALICE, "<purge node='news'/>", owner=True)["type"] == "result"
    [event] = events(p.take(BOB))
    assert event.purge["node"] == "news"
    assert itemIds(p.pubsub(BOB, "<items node='news'/>", "get")) == []


def test_purgeByNonOwner():
    """§8.5.3: only owners purge (forbidden)."""
    p = PubSub()
    p.create()
    assert condition(p.pubsub(BOB, "<purge node='news'/>", owner=True)) == ("forbidden", None)


# -- §7.1 publish ------------------------------------------------------------------------

def test_publishNotifiesSubscribers():
    """§7.1.2: a published item reaches every subscriber with its payload."""
    p = PubSub()
    p.create()
    p.subscribe(BOB)
    p.subscribe(MERCUTIO)
    reply = p.publish()
    assert reply.pubsub.publish.item["id"] == "i1"
    for who in (BOB, MERCUTIO):
        [event] = events(p.take(who))
        assert event.items.item["id"] == "i1"
        assert event.items.item.entry.uri == "urn:example"


def test_publishWithoutId():
    """§7.1.1: an item without id gets one from the service, returned to the publisher."""
    p = PubSub()
    p.create()
    reply = p.publish(itemId=None)
    itemId = reply.pubsub.publish.item["id"]
    assert itemId
    assert itemIds(p.pubsub(BOB, "<items node='news'/>", "get")) == [itemId]


def test_publishSameIdReplaces():
    """§7.1.2: publishing an existing id replaces the item."""
    p = PubSub()
    p.create()
    p.publish(payload="<entry xmlns='urn:example'>one</entry>")
    p.publish(payload="<entry xmlns='urn:example'>two</entry>")
    reply = p.pubsub(BOB, "<items node='news'/>", "get")
    assert itemIds(reply) == ["i1"] and "two" in reply.toXml()


def test_maxItemsKept():
    """§12.12: a node keeps at most max_items, newest first; 'max' means the service limit."""
    p = PubSub(max_items=3)
    p.create(config={"pubsub#max_items": "2"})
    for n in range(3):
        p.publish(itemId="i%d" % n)
    assert itemIds(p.pubsub(BOB, "<items node='news'/>", "get")) == ["i2", "i1"]
    p.create(node="big", config={"pubsub#max_items": "max"})
    for n in range(5):
        p.publish(node="big", itemId="i%d" % n)
    assert len(itemIds(p.pubsub(BOB, "<items node='big'/>", "get"))) == 3


def test_publishPublishersOnly():
    """§7.1.3.1: with publish model publishers, others get forbidden."""
    p = PubSub()
    p.create()
    assert condition(p.publish(sender=BOB)) == ("forbidden", None)


def test_publishModelOpenAndSubscribers():
    """Publish model open lets anyone publish; subscribers lets subscribers publish."""
    p = PubSub()
    p.create(node="open", config={"pubsub#publish_model": "open"})
    assert p.publish(sender=BOB, node="open")["type"] == "result"
    p.create(node="subs", config={"pubsub#publish_model": "subscribers"})
    assert condition(p.publish(sender=BOB, node="subs")) == ("forbidden", None)
    p.subscribe(BOB, node="subs")
    assert p.publish(sender=BOB, node="subs")["type"] == "result"


def test_publisherAffiliationMayPublish():
    """§4.1: an entity the owner made publisher may publish."""
    p = PubSub()
    p.create()
    p.pubsub(ALICE, "<affiliations node='news'><affiliation jid='bob@example.org' "
             "affiliation='publisher'/></affiliations>", owner=True)
    assert p.publish(sender=BOB)["type"] == "result"


def test_publishToMissingNode():
    """§7.1.3.3: publishing to a node that does not exist gives item-not-found."""
    p = PubSub()
    assert condition(p.publish(node="none")) == ("item-not-found", None)


def test_publishPayloadTooBig():
    """§7.1.3.4: a payload over [pubsub] max_payload_size gives not-acceptable + payload-too-big."""
    p = PubSub(max_payload_size=100)
    p.create()
    reply = p.publish(payload="<entry xmlns='urn:example'>%s</entry>" % ("x" * 200))
    assert condition(reply) == ("not-acceptable", "payload-too-big")


def test_publishTwoPayloads():
    """§7.1.3.5: an item with two payload elements gives bad-request + invalid-payload."""
    p = PubSub()
    p.create()
    reply = p.publish(payload="<a xmlns='urn:x'/><b xmlns='urn:x'/>")
    assert condition(reply) == ("bad-request", "invalid-payload")


def test_publishWithoutItem():
    """§7.1.3.6: a persistent node needs an item (bad-request + item-required)."""
    p = PubSub()
    p.create()
    reply = p.pubsub(ALICE, "<publish node='news'/>")
    assert condition(reply) == ("bad-request", "item-required")


def test_publishWithoutPayload():
    """§7.1.3.6: an item without payload on a payload node gives bad-request + payload-required."""
    p = PubSub()
    p.create()
    reply = p.pubsub(ALICE, "<publish node='news'><item id='x'/></publish>")
    assert condition(reply) == ("bad-request", "payload-required")


def test_publishItemToTransientNotificationNode():
    """§7.1.3.6: a node without items and payloads refuses an item (bad-request + item-forbidden)."""
    p = PubSub()
    p.create(config={"pubsub#persist_items": "0", "pubsub#deliver_payloads": "0"})
    reply = p.publish()
    assert condition(reply) == ("bad-request", "item-forbidden")
    p.subscribe(BOB)
    assert p.pubsub(ALICE, "<publish node='news'/>")["type"] == "result"
    [event] = events(p.take(BOB))
    assert event.items["node"] == "news"


def test_publishNoPublishNodeId():
    """§7.1.3: a publish without node gives bad-request + nodeid-required."""
    p = PubSub()
    reply = p.pubsub(ALICE, "<publish><item/></publish>")
    assert condition(reply) == ("bad-request", "nodeid-required")


# -- §7.1.5 publish-options ---------------------------------------------------------

def test_preconditionMet():
    """§7.1.5: publish-options that match the node's configuration let the item through."""
    p = PubSub()
    p.create(config={"pubsub#access_model": "whitelist"})
    reply = p.publish(options={"pubsub#access_model": "whitelist"})
    assert reply["type"] == "result"


def test_preconditionNotMet():
    """§7.1.5: publish-options that do not match give conflict + precondition-not-met."""
    p = PubSub()
    p.create()
    reply = p.publish(options={"pubsub#access_model": "whitelist"})
    assert condition(reply) == ("conflict", "precondition-not-met")
    assert itemIds(p.pubsub(ALICE, "<items node='news'/>", "get")) == []


def test_preconditionCanonicalBoolean():
    """§7.1.5: 'true' as a precondition matches a node whose flag is set."""
    p = PubSub()
    p.create()
    assert p.publish(options={"pubsub#persist_items": "true"})["type"] == "result"


def test_preconditionUnknownField():
    """§7.1.5: a publish-option the service does not know cannot be met."""
    p = PubSub()
    p.create()
    reply = p.publish(options={"pubsub#unknown": "1"})
    assert condition(reply) == ("conflict", "precondition-not-met")


# -- §7.2 retract ------------------------------------------------------------------------

def test_retractNotifies():
    """§7.2.2: a retract with notify tells subscribers which item went."""
    p = PubSub()
    p.create()
    p.publish()
    p.subscribe(BOB)
    p.clock.advance(0)
    p.take(BOB)
    reply = p.pubsub(ALICE, "<retract node='news' notify='true'><item id='i1'/></retract>")
    assert reply["type"] == "result"
    [event] = events(p.take(BOB))
    assert event.items.retract["id"] == "i1"
    assert itemIds(p.pubsub(BOB, "<items node='news'/>", "get")) == []


def test_retractWithoutNotify():
    """§7.2.2.1: a retract without notify removes the item quietly."""
    p = PubSub()
    p.create()
    p.publish()
    p.subscribe(BOB)
    p.clock.advance(0)
    p.take(BOB)
    p.pubsub(ALICE, "<retract node='news'><item id='i1'/></retract>")
    assert events(p.take(BOB)) == []


def test_retractErrors():
    """§7.2.3: retracting needs rights, an existing item and an item id."""
    p = PubSub()
    p.create()
    p.publish()
    assert condition(p.pubsub(BOB, "<retract node='news'><item id='i1'/></retract>")) == (
        "forbidden", None)
    assert condition(p.pubsub(ALICE, "<retract node='news'><item id='zz'/></retract>")) == (
        "item-not-found", None)
    assert condition(p.pubsub(ALICE, "<retract node='news'/>")) == ("bad-request",
                                                                    "item-required")
    assert condition(p.pubsub(ALICE, "<retract node='x'><item id='i1'/></retract>")) == (
        "item-not-found", None)


def test_publisherRetractsOnlyOwnItems():
    """§4.1: a publisher may retract its own items, not the owner's."""
    p = PubSub()
    p.create()
    p.publish(itemId="mine-alice")
    p.pubsub(ALICE, "<affiliations node='news'><affiliation jid='bob@example.org' "
             "affiliation='publisher'/></affiliations>", owner=True)
    p.publish(sender=BOB, itemId="mine-bob")
    assert condition(p.pubsub(BOB, "<retract node='news'><item id='mine-alice'/></retract>")) \
        == ("forbidden", None)
    assert p.pubsub(BOB, "<retract node='news'><item id='mine-bob'/></retract>")["type"] \
        == "result"


# -- §6.5 retrieve items ---------------------------------------------------------------

def test_itemsAllByIdAndMax():
    """§6.5.2, §6.5.7, §6.5.8: all items newest first, by id, and the newest max_items."""
    p = PubSub()
    p.create()
    for n in range(3):
        p.publish(itemId="i%d" % n)
    assert itemIds(p.pubsub(BOB, "<items node='news'/>", "get")) == ["i2", "i1", "i0"]
    reply = p.pubsub(BOB, "<items node='news'><item id='i0'/><item id='i2'/></items>", "get")
    assert sorted(itemIds(reply)) == ["i0", "i2"]
    assert itemIds(p.pubsub(BOB, "<items node='news' max_items='2'/>", "get")) == ["i2", "i1"]


def test_itemsBadMax():
    """§6.5.7: a max_items that is not a positive number gives bad-request."""
    p = PubSub()
    p.create()
    for bad in ("x", "0", "-3"):
        reply = p.pubsub(BOB, "<items node='news' max_items='%s'/>" % bad, "get")
        assert condition(reply)[0] == "bad-request"


def test_itemsMissingNode():
    """§6.5.9.11: items of a node that does not exist: item-not-found."""
    p = PubSub()
    assert condition(p.pubsub(BOB, "<items node='x'/>", "get")) == ("item-not-found", None)


def test_itemsOfTransientNode():
    """§6.5.9.6: a node that keeps no items says so (feature-not-implemented + unsupported)."""
    p = PubSub()
    p.create(config={"pubsub#persist_items": "0"})
    assert condition(p.pubsub(BOB, "<items node='news'/>", "get")) == (
        "feature-not-implemented", "unsupported")


# -- §6.1-6.4 subscribe, unsubscribe, options -------------------------------------------

def test_subscribeReturnsSubscription():
    """§6.1.2: a subscription comes back with its state and subid."""
    p = PubSub()
    p.create()
    reply = p.subscribe(BOB)
    subscription = reply.pubsub.subscription
    assert (subscription["jid"], subscription["subscription"]) == (BOB, "subscribed")
    assert subscription.getAttribute("subid")


def test_subscribeSendsLastItem():
    """§6.1.7: with send_last_published_item on_sub, a new subscriber gets the last item."""
    p = PubSub()
    p.create()
    p.publish(itemId="old")
    p.publish(itemId="new")
    p.subscribe(BOB)
    p.clock.advance(0)
    [event] = events(p.take(BOB))
    assert event.items.item["id"] == "new"


def test_subscribeNeverSendsLastItem():
    """§6.1.7: with send_last_published_item never, nothing comes on subscribing."""
    p = PubSub()
    p.create(config={"pubsub#send_last_published_item": "never"})
    p.publish()
    p.subscribe(BOB)
    p.clock.advance(0)
    assert events(p.take(BOB)) == []


def test_subscribeOtherJID():
    """§6.1.3.1: subscribing someone else's address gives bad-request + invalid-jid."""
    p = PubSub()
    p.create()
    reply = p.subscribe(BOB, jid=CAROL)
    assert condition(reply) == ("bad-request", "invalid-jid")


def test_subscribeMissingNode():
    """§6.1.3.12: subscribing to a node that does not exist: item-not-found."""
    p = PubSub()
    assert condition(p.subscribe(BOB, node="x")) == ("item-not-found", None)


def test_subscribeWithoutNode():
    """§6.1.3.3: a subscription without node gives bad-request + nodeid-required."""
    p = PubSub()
    reply = p.pubsub(BOB, "<subscribe jid='%s'/>" % BOB)
    assert condition(reply) == ("bad-request", "nodeid-required")


def test_subscribeWithoutJID():
    """A subscription without jid gives bad-request + jid-required."""
    p = PubSub()
    p.create()
    reply = p.pubsub(BOB, "<subscribe node='news'/>")
    assert condition(reply) == ("bad-request", "jid-required")


def test_subscribeMalformedJID():
    """A subscription for a malformed JID gives jid-malformed, not an internal error."""
    p = PubSub()
    p.create()
    reply = p.pubsub(BOB, "<subscribe node='news' jid='@@'/>")
    assert condition(reply)[0] == "jid-malformed"


def test_outcastMayNotSubscribe():
    """§6.1.3.8: an outcast gets forbidden."""
    p = PubSub()
    p.create()
    p.pubsub(ALICE, "<affiliations node='news'><affiliation jid='bob@example.org' "
             "affiliation='outcast'/></affiliations>", owner=True)
    assert condition(p.subscribe(BOB)) == ("forbidden", None)


def test_subscriptionsLimit():
    """§6.1.3.9: over [pubsub] max_subscriptions gives policy-violation + too-many-subscriptions."""
    p = PubSub(max_subscriptions=1)
    p.create(node="a")
    p.create(node="b")
    p.subscribe(BOB, node="a")
    assert condition(p.subscribe(BOB, node="b")) == ("policy-violation",
                                                     "too-many-subscriptions")


def test_subscribeWithOptions():
    """§6.3.7: subscribe and configure in one request; deliver false stops notifications."""
    p = PubSub()
    p.create(config={"pubsub#send_last_published_item": "never"})
    options = form({"pubsub#deliver": "0"}, ns=NS_PUBSUB + "#subscribe_options")
    reply = p.pubsub(BOB, "<subscribe node='news' jid='%s'/><options>%s</options>"
                     % (BOB, options))
    assert reply["type"] == "result"
    p.publish()
    assert events(p.take(BOB)) == []


def test_subscriptionOptionsGetAndSet():
    """§6.3.2, §6.3.5: a subscriber reads and changes its subscription options."""
    p = PubSub()
    p.create()
    p.subscribe(BOB)
    reply = p.pubsub(BOB, "<options node='news' jid='%s'/>" % BOB, "get")
    assert "pubsub#deliver" in reply.toXml()
    options = form({"pubsub#deliver": "false"}, ns=NS_PUBSUB + "#subscribe_options")
    reply = p.pubsub(BOB, "<options node='news' jid='%s'>%s</options>" % (BOB, options))
    assert reply["type"] == "result"
    p.take(BOB)
    p.publish()
    assert events(p.take(BOB)) == []


def test_subscriptionOptionsNotSubscribed():
    """§6.3.4.3: options of someone not subscribed: unexpected-request + not-subscribed."""
    p = PubSub()
    p.create()
    reply = p.pubsub(BOB, "<options node='news' jid='%s'/>" % BOB, "get")
    assert condition(reply) == ("unexpected-request", "not-subscribed")
    reply = p.pubsub(BOB, "<options node='news' jid='%s'/>" % CAROL, "get")
    assert condition(reply) == ("forbidden", None)


def test_subscriptionOptionsBadSubid():
    """§6.3.4.5: options with an unknown subid: not-acceptable + invalid-subid."""
    p = PubSub()
    p.create()
    p.subscribe(BOB)
    reply = p.pubsub(BOB, "<options node='news' jid='%s' subid='nope'/>" % BOB, "get")
    assert condition(reply) == ("not-acceptable", "invalid-subid")


def test_unsubscribe():
    """§6.2.2: after unsubscribing, no more notifications come."""
    p = PubSub()
    p.create()
    p.subscribe(BOB)
    reply = p.pubsub(BOB, "<unsubscribe node='news' jid='%s'/>" % BOB)
    assert reply["type"] == "result"
    p.publish()
    assert events(p.take(BOB)) == []


def test_unsubscribeErrors():
    """§6.2.3: not subscribed, someone else's address, or a wrong subid are errors."""
    p = PubSub()
    p.create()
    reply = p.pubsub(BOB, "<unsubscribe node='news' jid='%s'/>" % BOB)
    assert condition(reply) == ("unexpected-request", "not-subscribed")
    p.subscribe(CAROL)
    reply = p.pubsub(BOB, "<unsubscribe node='news' jid='%s'/>" % CAROL)
    assert condition(reply) == ("forbidden", None)
    reply = p.pubsub(CAROL, "<unsubscribe node='news' jid='%s' subid='x'/>" % CAROL)
    assert condition(reply) == ("not-acceptable", "invalid-subid")
    reply = p.pubsub(BOB, "<unsubscribe node='x' jid='%s'/>" % BOB)
    assert condition(reply) == ("item-not-found", None)


def test_entitySubscriptionsAndAffiliations():
    """§5.6, §5.7: an entity lists its own subscriptions and affiliations."""
    p = PubSub()
    p.create()
    p.subscribe(BOB)
    reply = p.pubsub(BOB, "<subscriptions/>", "get")
    [subscription] = reply.pubsub.subscriptions.elements()
    assert (subscription["node"], subscription["jid"]) == ("news", BOB)
    reply = p.pubsub(BOB, "<affiliations/>", "get")
    assert list(reply.pubsub.affiliations.elements()) == []


# -- §8.8 manage subscriptions, §8.9 manage affiliations ------------------------------

def test_ownerListsAndChangesSubscriptions():
    """§8.8.1-8.8.2: the owner lists subscriptions and removes one."""
    p = PubSub()
    p.create()
    p.subscribe(BOB)
    reply = p.pubsub(ALICE, "<subscriptions node='news'/>", "get", owner=True)
    [entry] = reply.pubsub.subscriptions.elements()
    assert (entry["jid"], entry["subscription"]) == (BOB, "subscribed")
    reply = p.pubsub(ALICE, "<subscriptions node='news'><subscription jid='%s' "
                     "subscription='none'/></subscriptions>" % BOB, owner=True)
    assert reply["type"] == "result"
    reply = p.pubsub(ALICE, "<subscriptions node='news'/>", "get", owner=True)
    assert list(reply.pubsub.subscriptions.elements()) == []


def test_ownerSubscriptionsForbidden():
    """§8.8.1.3: a non-owner asking for the subscriptions gets forbidden."""
    p = PubSub()
    p.create()
    reply = p.pubsub(BOB, "<subscriptions node='news'/>", "get", owner=True)
    assert condition(reply) == ("forbidden", None)


def test_ownerListsAndChangesAffiliations():
    """§8.9.1-8.9.2: the owner lists affiliations and adds a member."""
    p = PubSub()
    p.create()
    reply = p.pubsub(ALICE, "<affiliations node='news'><affiliation jid='bob@example.org' "
                     "affiliation='member'/></affiliations>", owner=True)
    assert reply["type"] == "result"
    reply = p.pubsub(ALICE, "<affiliations node='news'/>", "get", owner=True)
    found = {(a["jid"], a["affiliation"]) for a in reply.pubsub.affiliations.elements()}
    assert found == {("alice@example.org", "owner"), ("bob@example.org", "member")}


def test_affiliationsErrors():
    """§8.9: non-owners get forbidden; an unknown affiliation or no owner left: not-acceptable."""
    p = PubSub()
    p.create()
    reply = p.pubsub(BOB, "<affiliations node='news'/>", "get", owner=True)
    assert condition(reply) == ("forbidden", None)
    reply = p.pubsub(ALICE, "<affiliations node='news'><affiliation jid='bob@example.org' "
                     "affiliation='king'/></affiliations>", owner=True)
    assert condition(reply) == ("not-acceptable", None)
    reply = p.pubsub(ALICE, "<affiliations node='news'><affiliation jid='alice@example.org' "
                     "affiliation='none'/></affiliations>", owner=True)
    assert condition(reply) == ("not-acceptable", None)


def test_outcastLosesSubscription():
    """§8.9.2: making a subscriber outcast removes its subscription."""
    p = PubSub()
    p.create()
    p.subscribe(BOB)
    p.pubsub(ALICE, "<affiliations node='news'><affiliation jid='bob@example.org' "
             "affiliation='outcast'/></affiliations>", owner=True)
    p.publish()
    assert events(p.take(BOB)) == []


# -- bad input ----------------------------------------------------------------------------

def test_unknownRequest():
    """A pubsub element with nothing the service knows gives feature-not-implemented."""
    p = PubSub()
    reply = p.pubsub(BOB, "<dance/>")
    assert condition(reply)[0] == "feature-not-implemented"


def test_errorsAndResultsAreNotAnswered():
    """The service never answers an error or a result."""
    p = PubSub()
    p.send("<iq type='result' id='x' from='%s' to='%s'/>" % (BOB, SERVICE))
    p.send("<iq type='error' id='y' from='%s' to='%s'/>" % (BOB, SERVICE))
    p.send("<message from='%s' to='%s'><body>hi</body></message>" % (BOB, SERVICE))
    assert p.take(BOB) == []
