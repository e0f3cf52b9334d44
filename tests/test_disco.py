"""
Tests for L{xmppd.features.disco}: XEP-0030 answers for the domain and its accounts,
generated from the features the domain runs.
"""

import pytest
from wokkel.disco import DiscoFeature, DiscoItem
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import XMPPHandler
from zope.interface import implementer

from tests.domainhelpers import Domain, errorCondition
from xmppd.features.disco import NS_DISCO_INFO, NS_DISCO_ITEMS
from xmppd.core.jid import makeJID
from xmppd.storage.interfaces import RosterItem

ROMEO = "romeo@example.org/orchard"
ALL = ("messages", "disco", "version", "ping", "caps")


def infoQuery(to=None, node=None, sender=ROMEO, ns=NS_DISCO_INFO):
    toAttr = " to='%s'" % to if to else ""
    nodeAttr = " node='%s'" % node if node else ""
    return ("<iq type='get' id='d1' from='%s'%s><query xmlns='%s'%s/></iq>"
            % (sender, toAttr, ns, nodeAttr))


def features(result):
    return [f["var"] for f in result.query.elements(NS_DISCO_INFO, "feature")]


def identities(result):
    return [(i["category"], i["type"], i.getAttribute("name"))
            for i in result.query.elements(NS_DISCO_INFO, "identity")]


def ask(domain, stream, xml):
    domain.send(xml)
    [reply] = stream.take()
    return reply


@pytest.fixture
def domain(tmp_path):
    return Domain(tmp_path, features=ALL)


def test_serverInfo(domain):
    """The server says it is an IM server named xmppd and lists the features it runs (XEP-0030 §3.1)."""
    romeo = domain.bind(ROMEO)

    result = ask(domain, romeo, infoQuery("example.org"))

    assert result["type"] == "result" and result["id"] == "d1"
    assert result["from"] == "example.org" and result["to"] == ROMEO
    assert identities(result) == [("server", "im", "xmppd")]
    assert set(features(result)) == {
        NS_DISCO_INFO, NS_DISCO_ITEMS, "jabber:iq:version", "urn:xmpp:ping",
        "http://jabber.org/protocol/caps"}


def test_featuresFollowModules(tmp_path):
    """A feature left out of the configuration is not announced."""
    domain = Domain(tmp_path, features=("disco", "ping"))
    romeo = domain.bind(ROMEO)

    result = ask(domain, romeo, infoQuery("example.org"))

    assert set(features(result)) == {NS_DISCO_INFO, NS_DISCO_ITEMS, "urn:xmpp:ping"}


def test_featuresAreUnique(domain):
    """A feature two handlers announce is listed once (XEP-0030 §3.1)."""
    @implementer(IDisco)
    class Echo(XMPPHandler):
        def getDiscoInfo(self, requestor, target, nodeIdentifier=""):
            return [] if nodeIdentifier else [DiscoFeature("urn:xmpp:ping")]

        def getDiscoItems(self, requestor, target, nodeIdentifier=""):
            return []
    domain.domain.addHandler(Echo())
    romeo = domain.bind(ROMEO)

    result = ask(domain, romeo, infoQuery("example.org"))

    assert features(result).count("urn:xmpp:ping") == 1


def test_brokenHandlerLeftOut(domain):
    """A handler whose disco answer fails is left out; the rest is still answered."""
    @implementer(IDisco)
    class Broken(XMPPHandler):
        def getDiscoInfo(self, requestor, target, nodeIdentifier=""):
            raise RuntimeError("broken")

        def getDiscoItems(self, requestor, target, nodeIdentifier=""):
            raise RuntimeError("broken")
    domain.domain.addHandler(Broken())
    romeo = domain.bind(ROMEO)

    result = ask(domain, romeo, infoQuery("example.org"))
    items = ask(domain, romeo, infoQuery("example.org", ns=NS_DISCO_ITEMS))

    assert result["type"] == "result" and "urn:xmpp:ping" in features(result)
    assert items["type"] == "result"


def test_ownAccountInfo(domain):
    """A user asking about her own account, by bare JID or with no 'to', gets account/registered."""
    juliet = domain.bind("juliet@example.org/balcony")

    byJID = ask(domain, juliet, infoQuery("juliet@example.org",
                                          sender="juliet@example.org/balcony"))
    noTo = ask(domain, juliet, infoQuery(sender="juliet@example.org/balcony"))

    for result in byJID, noTo:
        assert result["type"] == "result"
        assert identities(result) == [("account", "registered", None)]
        assert NS_DISCO_INFO in features(result)
        assert "jabber:iq:version" not in features(result)
    assert byJID["from"] == "juliet@example.org"
    assert noTo.getAttribute("from") is None


def test_subscribedContactSeesAccount(domain):
    """A contact subscribed to Juliet's presence may discover her account."""
    domain.storage.rosters.setItem("juliet", "example.org",
                                   RosterItem("romeo@example.org", subscription="from"))
    romeo = domain.bind(ROMEO)

    result = ask(domain, romeo, infoQuery("juliet@example.org"))

    assert identities(result) == [("account", "registered", None)]


@pytest.mark.parametrize("to", ["juliet@example.org", "nobody@example.org"])
def test_strangersLearnNothing(domain, to):
    """A stranger gets service-unavailable both for an existing account and a missing one."""
    domain.storage.rosters.setItem("juliet", "example.org",
                                   RosterItem("romeo@example.org", subscription="to"))
    romeo = domain.bind(ROMEO)

    result = ask(domain, romeo, infoQuery(to))

    assert errorCondition(result) == "service-unavailable"
    assert result["from"] == to


def test_unknownNode(domain):
    """A query for a node nobody has gets item-not-found."""
    romeo = domain.bind(ROMEO)

    result = ask(domain, romeo, infoQuery("example.org", node="urn:nothing"))
    items = ask(domain, romeo, infoQuery("example.org", node="urn:nothing", ns=NS_DISCO_ITEMS))

    assert errorCondition(result) == "item-not-found"
    assert errorCondition(items) == "item-not-found"


def test_serverItemsEmpty(domain):
    """The domain lists no items while nothing is attached to it."""
    romeo = domain.bind(ROMEO)

    result = ask(domain, romeo, infoQuery("example.org", ns=NS_DISCO_ITEMS))

    assert result["type"] == "result"
    assert list(result.query.elements()) == []


def test_itemsFromHook(domain):
    """A service hooked on disco/items (a MUC service, say) is listed as an item of its domain only."""
    def addRooms(event):
        if event.target.host == "example.org" and not event.nodeIdentifier:
            event.items.append(DiscoItem(makeJID(None, "conference.example.org"), name="Rooms"))
    domain.hooks.add("disco/items", addRooms)
    romeo = domain.bind(ROMEO)

    result = ask(domain, romeo, infoQuery("example.org", ns=NS_DISCO_ITEMS))

    [item] = result.query.elements(NS_DISCO_ITEMS, "item")
    assert item["jid"] == "conference.example.org" and item["name"] == "Rooms"


def test_resultsAreNotAnswered(domain):
    """An IQ result or error carrying a disco payload is never answered."""
    romeo = domain.bind(ROMEO)

    domain.send(infoQuery("example.org").replace("type='get'", "type='result'"))
    domain.send(infoQuery("example.org").replace("type='get'", "type='error'"))

    assert romeo.take() == []


def test_setIsRefused(domain):
    """A disco#info 'set' is not a query: it gets service-unavailable from the core."""
    romeo = domain.bind(ROMEO)

    result = ask(domain, romeo, infoQuery("example.org").replace("type='get'", "type='set'"))

    assert errorCondition(result) == "service-unavailable"
