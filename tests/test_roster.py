"""
Tests for L{xmppd.features.roster}: roster get, versioning, set, delete and pushes
(RFC 6121 §2), with the RFC's examples on a node in memory.
"""

import pytest

from tests.streamhelpers import PASSWORDS, plain
from tests.presencehelpers import DOMAIN, REMOTE, IMNode, RosterItem
from xmppd.features.roster import NS_ROSTER, NS_ROSTER_VER, pushItem, rosterManager

ROMEO = "romeo@" + DOMAIN
JULIET = "juliet@" + DOMAIN
NURSE = "nurse@" + DOMAIN


@pytest.fixture
def node(tmp_path):
    return IMNode(tmp_path)


def items(query):
    """The items of a roster query as (jid, attributes, groups) tuples, sorted."""
    return sorted((i["jid"], {k: v for k, v in i.attributes.items() if k != "jid"},
                   [str(g) for g in i.elements(NS_ROSTER, "group")])
                  for i in query.elements(NS_ROSTER, "item"))


def pushes(elements):
    return [e for e in elements if e.name == "iq" and e.getAttribute("type") == "set"]


def errorCondition(element):
    [error] = [e for e in element.elements() if e.name == "error"]
    return [c.name for c in error.elements() if c.name != "text"][0]


def rosterSet(client, item, id="s1"):
    """Send a roster set; returns (pushes, the reply to it)."""
    elements = client.exchange("<iq type='set' id='%s'><query xmlns='jabber:iq:roster'>%s"
                               "</query></iq>" % (id, item))
    [reply] = [e for e in elements if e.getAttribute("id") == id]
    return pushes(elements), reply


# -- roster get ---------------------------------------------------------------


def test_emptyRoster(node):
    """A new account's roster is empty, and the result carries its version (§2.1.3, §2.6)."""
    juliet = node.login("juliet", "balcony")

    result = juliet.getRoster()

    assert result["type"] == "result" and result["to"] == juliet.jid
    assert result.query.uri == NS_ROSTER
    assert result.query["ver"] == "0"
    assert items(result.query) == []


def test_rosterGetShowsItems(node):
    """The roster lists each contact with name, subscription, ask, pre-approval and groups (§2.1.2)."""
    node.setItem("juliet", RosterItem(ROMEO, name="Romeo", subscription="both",
                                      groups=("Friends",)))
    node.setItem("juliet", RosterItem("mercutio@" + DOMAIN, subscription="from", ask=True))
    node.setItem("juliet", RosterItem("benvolio@" + DOMAIN, approved=True))
    juliet = node.login("juliet", "balcony")

    result = juliet.getRoster()

    assert items(result.query) == [
        ("benvolio@" + DOMAIN, {"subscription": "none", "approved": "true"}, []),
        ("mercutio@" + DOMAIN, {"subscription": "from", "ask": "subscribe"}, []),
        (ROMEO, {"name": "Romeo", "subscription": "both"}, ["Friends"]),
    ]
    assert result.query["ver"] == "3"


def test_pendingInboundRequestNotShown(node):
    """A contact who only asked to subscribe is not in the roster until the user answers (§3.1.3)."""
    node.setItem("juliet", RosterItem(NURSE, pendingIn=True))
    juliet = node.login("juliet", "balcony")

    assert items(juliet.getRoster().query) == []


def test_versionCurrent(node):
    """A client whose cached roster version is current gets an empty result (§2.6.3)."""
    node.setItem("juliet", RosterItem(ROMEO, subscription="both"))
    juliet = node.login("juliet", "balcony")

    result = juliet.getRoster(ver="1")

    assert result["type"] == "result"
    assert list(result.elements()) == []


@pytest.mark.parametrize("ver", ["", "0", "57"])
def test_versionStale(node, ver):
    """A client with no cache or an outdated version gets the whole roster with the current version (§2.6.3)."""
    node.setItem("juliet", RosterItem(ROMEO, subscription="both"))
    juliet = node.login("juliet", "balcony")

    result = juliet.getRoster(ver=ver)

    assert result.query["ver"] == "1"
    assert [jid for jid, _, _ in items(result.query)] == [ROMEO]


def test_versioningStreamFeature(node):
    """Roster versioning is announced once the stream is authenticated, not before (§2.6.1)."""
    client = node.base.connect()

    before = client.start()
    client.exchange(plain("juliet", PASSWORDS["juliet"]))
    after = client.start()

    assert (NS_ROSTER_VER, "ver") not in before.featureNames()
    assert (NS_ROSTER_VER, "ver") in after.featureNames()


def test_rosterOfAnotherAccount(node):
    """Nobody may read another account's roster: service-unavailable, which tells nothing."""
    juliet = node.login("juliet", "balcony")

    [reply] = juliet.exchange("<iq type='get' id='g1' to='%s'><query xmlns='jabber:iq:roster'/>"
                              "</iq>" % ROMEO)

    assert reply["type"] == "error"
    assert errorCondition(reply) == "service-unavailable"


def test_rosterGetToOwnBareJID(node):
    """A roster get addressed to the user's own bare JID is the same as one with no 'to'."""
    juliet = node.login("juliet", "balcony")

    [reply] = juliet.exchange("<iq type='get' id='g1' to='%s'><query xmlns='jabber:iq:roster'/>"
                              "</iq>" % JULIET)

    assert reply["type"] == "result" and reply.query["ver"] == "0"


def test_rosterGetToDomain(node):
    """The server itself has no roster: service-unavailable."""
    juliet = node.login("juliet", "balcony")

    [reply] = juliet.exchange("<iq type='get' id='g1' to='%s'><query xmlns='jabber:iq:roster'/>"
                              "</iq>" % DOMAIN)

    assert errorCondition(reply) == "service-unavailable"


# -- roster set -----------------------------------------------------------------


def test_addItem(node):
    """Adding a contact is pushed to every interested resource, the sender included, then acknowledged (§2.3.2)."""
    balcony = node.login("juliet", "balcony")
    chamber = node.login("juliet", "chamber")
    balcony.getRoster()
    chamber.getRoster()

    sent, reply = rosterSet(balcony, "<item jid='nurse@example.org' name='Nurse'>"
                                     "<group>Servants</group></item>")

    assert reply["type"] == "result" and list(reply.elements()) == []
    [push] = sent
    assert push["to"] == balcony.jid and push["from"] == JULIET
    assert push.query["ver"] == "1"
    assert items(push.query) == [(NURSE, {"name": "Nurse", "subscription": "none"},
                                  ["Servants"])]
    [other] = pushes(chamber.received())
    assert other["to"] == chamber.jid and items(other.query) == items(push.query)
    assert node.item("juliet", NURSE) == RosterItem(NURSE, name="Nurse",
                                                    groups=("Servants",))


def test_pushOnlyToInterestedResources(node):
    """A resource that never asked for the roster gets no roster pushes (§2.1.6)."""
    balcony = node.login("juliet", "balcony")
    chamber = node.login("juliet", "chamber")
    balcony.getRoster()

    rosterSet(balcony, "<item jid='nurse@example.org'/>")

    assert pushes(chamber.received()) == []


def test_replacingConnectionIsNotInterested(node):
    """A connection that takes over a full JID gets no roster pushes until it asks for the roster."""
    older = node.login("juliet", "balcony")
    older.getRoster()
    newer = node.login("juliet", "balcony")
    chamber = node.login("juliet", "chamber")
    chamber.getRoster()

    rosterSet(chamber, "<item jid='nurse@example.org'/>")

    assert pushes(newer.received()) == []
    newer.getRoster()
    rosterSet(chamber, "<item jid='tybalt@example.org'/>", id="s2")
    [push] = pushes(newer.received())
    assert push["to"] == newer.jid


def test_updateItemKeepsSubscription(node):
    """Renaming and regrouping a contact keeps its subscription state (§2.4)."""
    node.setItem("juliet", RosterItem(ROMEO, name="Romeo", subscription="both",
                                      groups=("Friends", "Lovers")))
    juliet = node.login("juliet", "balcony")
    juliet.getRoster()

    [push], reply = rosterSet(juliet, "<item jid='romeo@example.org' name='Romeo Montague'>"
                                      "<group>Lovers</group></item>")

    assert items(push.query) == [(ROMEO, {"name": "Romeo Montague", "subscription": "both"},
                                  ["Lovers"])]
    item = node.item("juliet", ROMEO)
    assert item.subscription == "both" and item.groups == ("Lovers",)


def test_clientSubscriptionValuesIgnored(node):
    """A client cannot set 'subscription', 'ask' or 'approved' with a roster set (§2.1.2)."""
    juliet = node.login("juliet", "balcony")

    _, reply = rosterSet(juliet, "<item jid='romeo@example.org' subscription='both' "
                                 "ask='subscribe' approved='true'/>")

    assert reply["type"] == "result"
    assert node.item("juliet", ROMEO) == RosterItem(ROMEO)


def test_addItemTwiceSameVersionContent(node):
    """Setting an item to what it already is still answers with a result."""
    juliet = node.login("juliet", "balcony")
    rosterSet(juliet, "<item jid='romeo@example.org' name='Romeo'/>")

    _, reply = rosterSet(juliet, "<item jid='romeo@example.org' name='Romeo'/>", id="s2")

    assert reply["type"] == "result"


@pytest.mark.parametrize("payload, condition", [
    ("<item jid='romeo@example.org'/><item jid='nurse@example.org'/>", "bad-request"),
    ("", "bad-request"),
    ("<item jid='romeo@example.org'><group>A</group><group>A</group></item>", "bad-request"),
    ("<item jid='romeo@example.org'><group/></item>", "not-acceptable"),
    ("<item jid='romeo@example.org' name='%s'/>" % ("x" * 1024), "not-acceptable"),
    ("<item jid='romeo@example.org'><group>%s</group></item>" % ("x" * 1024), "not-acceptable"),
    ("<item jid='romeo@@example.org'/>", "jid-malformed"),
    ("<item jid='romeo@example.org/orchard'/>", "bad-request"),
    ("<item name='Romeo'/>", "bad-request"),
    ("<item jid='juliet@example.org'/>", "not-allowed"),
], ids=["two items", "no item", "duplicate group", "empty group", "long name",
        "long group", "malformed jid", "full jid", "no jid", "self"])
def test_rosterSetErrors(node, payload, condition):
    """A roster set that breaks the rules of §2.3.3 gets the error the RFC names, and changes nothing."""
    juliet = node.login("juliet", "balcony")
    juliet.getRoster()

    sent, reply = rosterSet(juliet, payload)

    assert reply["type"] == "error" and errorCondition(reply) == condition
    assert sent == []
    assert node.roster("juliet").items == {}


def test_rosterFull(node):
    """Past the configured size a roster takes no new contact: policy-violation."""
    node.configure("roster", max_items=1)
    juliet = node.login("juliet", "balcony")
    rosterSet(juliet, "<item jid='romeo@example.org'/>")

    _, reply = rosterSet(juliet, "<item jid='nurse@example.org'/>", id="s2")

    assert errorCondition(reply) == "policy-violation"
    assert list(node.roster("juliet").items) == [ROMEO]


def test_rosterSetForAnotherAccount(node):
    """Nobody may change another account's roster: forbidden (§2.3.3)."""
    juliet = node.login("juliet", "balcony")

    [reply] = juliet.exchange("<iq type='set' id='s1' to='%s'><query xmlns='jabber:iq:roster'>"
                              "<item jid='nurse@example.org'/></query></iq>" % ROMEO)

    assert errorCondition(reply) == "forbidden"
    assert node.roster("romeo").items == {}


# -- roster delete --------------------------------------------------------------


def test_removeItem(node):
    """Deleting a contact is pushed with subscription='remove' and acknowledged (§2.5.2)."""
    node.setItem("juliet", RosterItem(NURSE, name="Nurse"))
    juliet = node.login("juliet", "balcony")
    juliet.getRoster()

    [push], reply = rosterSet(juliet, "<item jid='nurse@example.org' subscription='remove'/>")

    assert reply["type"] == "result"
    assert items(push.query) == [(NURSE, {"subscription": "remove"}, [])]
    assert push.query["ver"] == "2"
    assert node.item("juliet", NURSE) is None


def test_removeMissingItem(node):
    """Deleting a contact that is not in the roster is item-not-found (§2.5.3)."""
    juliet = node.login("juliet", "balcony")

    _, reply = rosterSet(juliet, "<item jid='nurse@example.org' subscription='remove'/>")

    assert errorCondition(reply) == "item-not-found"


def test_removeMutualContact(node):
    """Deleting a mutual contact unsubscribes, cancels the contact's subscription and says goodbye (§2.5.2)."""
    romeo = "romeo@" + REMOTE
    node.setItem("juliet", RosterItem(romeo, subscription="both"))
    juliet = node.login("juliet", "balcony")
    juliet.available()
    node.remote.take()

    rosterSet(juliet, "<item jid='%s' subscription='remove'/>" % romeo)

    sent = [(s.getAttribute("type"), s["from"], s["to"]) for s in node.remote.take()]
    assert sent == [("unsubscribe", JULIET, romeo), ("unsubscribed", JULIET, romeo),
                    ("unavailable", juliet.jid, romeo)]


@pytest.mark.parametrize("item, types", [
    (RosterItem("romeo@" + REMOTE, subscription="to"), ["unsubscribe"]),
    (RosterItem("romeo@" + REMOTE, subscription="from"), ["unsubscribed"]),
    (RosterItem("romeo@" + REMOTE, ask=True), ["unsubscribe"]),
    (RosterItem("romeo@" + REMOTE, pendingIn=True), ["unsubscribed"]),
    (RosterItem("romeo@" + REMOTE), []),
], ids=["to", "from", "pending out", "pending in", "none"])
def test_removeSendsWhatTheStateNeeds(node, item, types):
    """Deleting a contact ends exactly the subscriptions and requests there were (§2.5.2)."""
    node.setItem("juliet", item)
    juliet = node.login("juliet", "balcony")

    rosterSet(juliet, "<item jid='%s' subscription='remove'/>" % item.jid)

    assert [s.getAttribute("type") for s in node.remote.take()] == types


def test_removeLocalContactUpdatesBothRosters(node):
    """Deleting a local mutual contact ends the contact's subscriptions both ways, step by step."""
    node.setItem("juliet", RosterItem(ROMEO, subscription="both"))
    node.setItem("romeo", RosterItem(JULIET, subscription="both"))
    juliet = node.login("juliet", "balcony")
    romeo = node.login("romeo", "orchard")
    romeo.getRoster()

    rosterSet(juliet, "<item jid='%s' subscription='remove'/>" % ROMEO)

    assert node.item("romeo", JULIET).subscription == "none"
    assert [items(p.query)[0][1]["subscription"] for p in pushes(romeo.received())] \
        == ["to", "none"]


# -- the internal API and the cache -----------------------------------------------


def test_pushItemAPI(node):
    """Another feature can push an item to the interested resources."""
    juliet = node.login("juliet", "balcony")
    juliet.getRoster()

    pushItem(node.domain, "juliet", RosterItem(ROMEO, name="Romeo"), 7)

    [push] = pushes(juliet.received())
    assert push.query["ver"] == "7"
    assert items(push.query) == [(ROMEO, {"name": "Romeo", "subscription": "none"}, [])]


def test_rosterReadAfreshAfterLogout(node):
    """A roster changed in storage while the user was away is what the next login sees."""
    juliet = node.login("juliet", "balcony")
    juliet.getRoster()
    juliet.disconnect()
    node.setItem("juliet", RosterItem(ROMEO))

    juliet = node.login("juliet", "balcony")

    assert [jid for jid, _, _ in items(juliet.getRoster().query)] == [ROMEO]
    assert rosterManager(node.domain) is rosterManager(node.domain)
