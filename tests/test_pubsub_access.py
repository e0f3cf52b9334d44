"""
Tests for L{xmppd.features.pubsub.access}: the access models of XEP-0060
§4.5 as a subscriber notices them, through the service (subscribing §6.1
and retrieving items §6.5), with owners' rosters in the memory store.
"""

from twisted.internet import defer

from tests.pubsubhelpers import ALICE, BOB, CAROL, PubSub, condition
from xmppd.features.pubsub.access import Access
from xmppd.features.pubsub.nodeconfig import NodeConfig
from xmppd.features.pubsub.settings import PubSubConfig
from xmppd.storage.interfaces import RosterItem


def roster(p, contact, subscription="from", groups=()):
    """Alice's roster gets C{contact} with C{subscription} and C{groups}."""
    if not p.storage.users.userExists("alice", "example.org").result:
        p.storage.users.addUser("alice", "example.org", {})
    p.storage.rosters.setItem("alice", "example.org", RosterItem(
        contact, subscription=subscription, groups=tuple(groups)))


def access(p, who, model, **config):
    """Whether C{who} may subscribe to a node with access model C{model}: the reply."""
    p.create(node=model, config={"pubsub#access_model": model, **config})
    return p.subscribe(who, node=model)


def test_openLetsAnyoneIn():
    """An open node takes anyone's subscription and shows its items to anyone."""
    p = PubSub()
    assert access(p, BOB, "open")["type"] == "result"
    assert p.pubsub(CAROL, "<items node='open'/>", "get")["type"] == "result"


def test_presenceRefusesStrangers():
    """§4.5 presence: without a presence subscription to the owner: not-authorized + presence-subscription-required."""
    p = PubSub()
    assert condition(access(p, BOB, "presence")) == ("not-authorized",
                                                    "presence-subscription-required")
    assert condition(p.pubsub(BOB, "<items node='presence'/>", "get")) == (
        "not-authorized", "presence-subscription-required")


def test_presenceAllowsContacts():
    """§4.5 presence: a contact with a subscription to the owner's presence may subscribe."""
    p = PubSub()
    roster(p, "bob@example.org", "both")
    assert access(p, BOB, "presence")["type"] == "result"
    roster(p, "carol@example.org", "to")  # Alice sees Carol, not the other way round.
    assert condition(p.subscribe(CAROL, node="presence"))[0] == "not-authorized"


def test_rosterGroups():
    """§4.5 roster: only contacts in an allowed group are let in (else not-in-roster-group)."""
    p = PubSub()
    roster(p, "bob@example.org", "both", groups=["Friends"])
    roster(p, "carol@example.org", "both", groups=["Work"])
    reply = access(p, BOB, "roster", **{"pubsub#roster_groups_allowed": ["Friends"]})
    assert reply["type"] == "result"
    assert condition(p.subscribe(CAROL, node="roster")) == ("not-authorized",
                                                           "not-in-roster-group")


def test_whitelist():
    """§4.5 whitelist: strangers get not-allowed + closed-node; members get in."""
    p = PubSub()
    assert condition(access(p, BOB, "whitelist")) == ("not-allowed", "closed-node")
    p.pubsub(ALICE, "<affiliations node='whitelist'><affiliation jid='bob@example.org' "
             "affiliation='member'/></affiliations>", owner=True)
    assert p.subscribe(BOB, node="whitelist")["type"] == "result"
    assert p.pubsub(BOB, "<items node='whitelist'/>", "get")["type"] == "result"


def test_authorizeMakesPending():
    """§4.5 authorize: a subscription is pending until an owner approves it (§8.8.2)."""
    p = PubSub()
    reply = access(p, BOB, "authorize")
    assert reply.pubsub.subscription["subscription"] == "pending"
    assert condition(p.pubsub(BOB, "<items node='authorize'/>", "get")) == (
        "not-authorized", "not-subscribed")
    p.pubsub(ALICE, "<subscriptions node='authorize'><subscription jid='%s' "
             "subscription='subscribed'/></subscriptions>" % BOB, owner=True)
    assert p.pubsub(BOB, "<items node='authorize'/>", "get")["type"] == "result"


def test_presenceOwnerWithoutAccount():
    """A presence node whose owner has no account here refuses everyone else, without an internal error."""
    p = PubSub()
    assert condition(access(p, BOB, "presence"))[0] == "not-authorized"


def test_ownerAlwaysHasAccess():
    """§4.1: the owner reads a whitelist node it owns."""
    p = PubSub()
    p.create(config={"pubsub#access_model": "whitelist"})
    assert p.pubsub(ALICE, "<items node='news'/>", "get")["type"] == "result"


def test_publishOnlyMayNotRetrieve():
    """§4.1: a publish-only entity may publish but not retrieve items."""
    p = PubSub()
    p.create()
    p.pubsub(ALICE, "<affiliations node='news'><affiliation jid='bob@example.org' "
             "affiliation='publish-only'/></affiliations>", owner=True)
    assert p.publish(sender=BOB)["type"] == "result"
    assert condition(p.pubsub(BOB, "<items node='news'/>", "get")) == ("forbidden", None)


def test_pluggableRosterLookup():
    """An access object asks its own roster lookup (as PEP will) for presence nodes."""
    asked = []

    def lookup(owner, contact):
        asked.append((owner, contact))
        return defer.succeed(RosterItem(contact, subscription="from"))

    config = NodeConfig({"pubsub#access_model": "presence"}, PubSubConfig())
    d = defer.ensureDeferred(Access(lookup).check(config, ["juliet@example.org"],
                                                  "romeo@example.org", "none", False))
    assert d.result == "allow"
    assert asked == [("juliet@example.org", "romeo@example.org")]


def authorizationAnswer(allow: str) -> str:
    return ("<message from='%s' to='pubsub.example.org'>"
            "<x xmlns='jabber:x:data' type='submit'>"
            "<field var='FORM_TYPE' type='hidden'>"
            "<value>http://jabber.org/protocol/pubsub#subscribe_authorization</value></field>"
            "<field var='pubsub#node'><value>authorize</value></field>"
            "<field var='pubsub#subscriber_jid'><value>%s</value></field>"
            "<field var='pubsub#allow'><value>%s</value></field>"
            "</x></message>" % (ALICE, BOB, allow))


def test_authorizeAsksTheOwner():
    """§8.6: a pending subscription sends the owner an authorization form; approving it subscribes and tells the subscriber."""
    p = PubSub()
    access(p, BOB, "authorize")
    p.clock.advance(0)
    [request] = [s for s in p.take("alice@example.org") if s.name == "message"]
    assert "pubsub#subscribe_authorization" in request.toXml() and BOB in request.toXml()
    p.send(authorizationAnswer("true"))
    [told] = p.take(BOB)
    assert told.event.subscription["subscription"] == "subscribed"
    assert p.pubsub(BOB, "<items node='authorize'/>", "get")["type"] == "result"


def test_authorizeDenied():
    """§8.6: an owner's refusal removes the pending subscription and tells the subscriber."""
    p = PubSub()
    access(p, BOB, "authorize")
    p.send(authorizationAnswer("false"))
    p.clock.advance(0)
    [told] = p.take(BOB)
    assert told.event.subscription["subscription"] == "none"
    reply = p.pubsub(ALICE, "<subscriptions node='authorize'/>", "get", owner=True)
    assert list(reply.pubsub.subscriptions.elements()) == []


def test_authorizeOnlyByOwner():
    """§8.6: an answer from someone who does not own the node is refused (forbidden)."""
    p = PubSub()
    access(p, BOB, "authorize")
    p.send(authorizationAnswer("true").replace(ALICE, CAROL, 1))
    [refused] = p.take(CAROL)
    assert refused["type"] == "error" and refused.error.forbidden is not None
