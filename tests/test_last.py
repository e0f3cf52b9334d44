"""
Last activity (XEP-0012), in memory, with the XEP's examples.
"""

import json

import pytest
from twisted.words.protocols.jabber.jid import JID
from wokkel.iwokkel import IDisco

from tests.storedatahelpers import Domain, errorCondition
from xmppd.features.last import NS_LAST
from xmppd.storage.interfaces import RosterItem

JULIET = "juliet@capulet.com/balcony"

# XEP-0012 §3, Example 3 (Last Activity Query), from a user of another server.
QUERY = """<iq from='romeo@montague.net/orchard' to='juliet@capulet.com' type='get' id='last1'>
  <query xmlns='jabber:iq:last'/>
</iq>"""


@pytest.fixture
def node(tmp_path):
    return Domain(tmp_path, "capulet.com", ("last",), users=("juliet", "nurse"))


def subscribe(node, contact, subscription="from"):
    """Juliet's roster gets C{contact} with C{subscription}."""
    node.storage.rosters.setItem("juliet", "capulet.com",
                                 RosterItem(contact, subscription=subscription))


def logout(node, session, status=None):
    """The client sends unavailable presence (with C{status}) and disconnects."""
    body = "<status>%s</status>" % status if status else ""
    node.route("<presence type='unavailable' from='%s'>%s</presence>" % (session.jid.full(), body))
    node.server.sessions.setAvailability(session.jid, False, 0)
    node.close(session)


def remoteAnswer(node, xml=QUERY):
    node.route(xml)
    [reply] = node.remote.stanzas
    node.remote.stanzas.clear()
    return reply


def queryOf(reply):
    [query] = reply.elements(NS_LAST, "query")
    return query


def test_serverUptime(node):
    """A query to the domain answers how long the server has been up, without text (§5, Example 8)."""
    node.clock.advance(123456)

    reply = remoteAnswer(node, """<iq from='romeo@montague.net/orchard' to='capulet.com'
        type='get' id='last3'><query xmlns='jabber:iq:last'/></iq>""")

    assert reply["type"] == "result" and reply["id"] == "last3"
    assert reply["from"] == "capulet.com" and reply["to"] == "romeo@montague.net/orchard"
    query = queryOf(reply)
    assert query["seconds"] == "123456"
    assert str(query) == ""


def test_offlineContact(node):
    """A subscriber learns how long ago the user logged out and her last status (§3, Example 4)."""
    subscribe(node, "romeo@montague.net", "both")
    juliet = node.bind(JULIET, available=True)
    logout(node, juliet, "Heading Home")
    node.clock.advance(903)

    reply = remoteAnswer(node)

    assert reply["type"] == "result" and reply["id"] == "last1"
    assert reply["from"] == "juliet@capulet.com"
    assert queryOf(reply)["seconds"] == "903"
    assert str(queryOf(reply)) == "Heading Home"


def test_storedAsJSON(node):
    """The logout is kept under the account-data key "last" as JSON, so it survives a restart."""
    juliet = node.bind(JULIET, available=True)

    logout(node, juliet, "Heading Home")

    stored = node.storage.accountData.get("juliet", "capulet.com", "last").result
    assert json.loads(stored) == {"time": node.clock.seconds(), "status": "Heading Home"}


def test_droppedConnectionHasNoStatus(node):
    """A session that ends without unavailable presence still counts as a logout, with no text."""
    subscribe(node, "romeo@montague.net")
    juliet = node.bind(JULIET, available=True)
    node.close(juliet)
    node.clock.advance(60)

    query = queryOf(remoteAnswer(node))

    assert query["seconds"] == "60" and str(query) == ""


@pytest.mark.parametrize("subscription", [None, "none", "to"])
def test_notSubscribedForbidden(node, subscription):
    """Someone not allowed to see the user's presence gets forbidden (§3, §8)."""
    if subscription is not None:
        subscribe(node, "romeo@montague.net", subscription)
    logout(node, node.bind(JULIET, available=True))

    reply = remoteAnswer(node)

    assert reply["type"] == "error" and errorCondition(reply) == "forbidden"


def test_availableIsZero(node):
    """While the user has an available resource the answer is 0 seconds, empty (§3)."""
    subscribe(node, "romeo@montague.net")
    logout(node, node.bind(JULIET, available=True), "gone")
    node.clock.advance(500)
    node.bind("juliet@capulet.com/chamber", available=True)

    query = queryOf(remoteAnswer(node))

    assert query["seconds"] == "0" and str(query) == ""


def test_onlyLastSessionCounts(node):
    """Closing one of two sessions is not a logout: the account is still connected."""
    subscribe(node, "romeo@montague.net")
    juliet = node.bind(JULIET, available=True)
    node.bind("juliet@capulet.com/chamber")
    node.close(juliet)

    reply = remoteAnswer(node)

    assert node.storage.accountData.get("juliet", "capulet.com", "last").result is None
    assert errorCondition(reply) == "item-not-found"


def test_connectedButUnavailable(node):
    """A user still connected after unavailable presence counts as offline since that presence."""
    subscribe(node, "romeo@montague.net")
    juliet = node.bind(JULIET, available=True)
    node.route("<presence type='unavailable' from='%s'><status>brb</status></presence>" % JULIET)
    node.server.sessions.setAvailability(juliet.jid, False, 0)
    node.clock.advance(42)

    query = queryOf(remoteAnswer(node))

    assert query["seconds"] == "42" and str(query) == "brb"


def test_availableAgainForgetsUnavailable(node):
    """After unavailable then available presence again, the user counts as online."""
    subscribe(node, "romeo@montague.net")
    juliet = node.bind(JULIET, available=True)
    node.route("<presence type='unavailable' from='%s'/>" % JULIET)
    node.route("<presence from='%s'/>" % JULIET)
    node.clock.advance(30)
    node.close(juliet)
    node.clock.advance(12)

    query = queryOf(remoteAnswer(node))

    assert query["seconds"] == "12" and str(query) == ""


def test_ownLastActivity(node):
    """A user may ask for her own last activity without being her own contact."""
    logout(node, node.bind(JULIET, available=True), "bye")
    node.clock.advance(7)
    other = node.bind("juliet@capulet.com/chamber")

    reply = node.exchange(other, "<iq from='juliet@capulet.com/chamber' type='get' id='me'>"
                                 "<query xmlns='jabber:iq:last'/></iq>")

    assert queryOf(reply)["seconds"] == "7" and str(queryOf(reply)) == "bye"


def test_localSubscriber(node):
    """A subscribed user of the same server is answered too."""
    subscribe(node, "nurse@capulet.com")
    logout(node, node.bind(JULIET, available=True))
    nurse = node.bind("nurse@capulet.com/kitchen")
    node.clock.advance(3)

    reply = node.exchange(nurse, "<iq from='nurse@capulet.com/kitchen' to='juliet@capulet.com' "
                                 "type='get' id='n'><query xmlns='jabber:iq:last'/></iq>")

    assert queryOf(reply)["seconds"] == "3"


def test_neverLoggedOut(node):
    """A user with no recorded logout gives item-not-found."""
    subscribe(node, "romeo@montague.net")

    reply = remoteAnswer(node)

    assert reply["type"] == "error" and errorCondition(reply) == "item-not-found"


def test_noSuchUser(node):
    """A query for an account that does not exist gets service-unavailable (RFC 6121 §8.5.1)."""
    reply = remoteAnswer(node, QUERY.replace("juliet@", "tybalt@"))

    assert errorCondition(reply) == "service-unavailable"


def test_fullJIDGoesToClient(node):
    """A query to a full JID is the client's to answer: the server delivers it (§4)."""
    subscribe(node, "romeo@montague.net")
    juliet = node.bind(JULIET, available=True)

    node.route("<iq from='romeo@montague.net/orchard' to='%s' type='get' id='last2'>"
               "<query xmlns='jabber:iq:last'/></iq>" % JULIET)

    [delivered] = juliet.stream.sent
    assert delivered["type"] == "get" and delivered["id"] == "last2"
    assert node.remote.stanzas == []


def test_discoAnnouncesOnServer(node):
    """jabber:iq:last is announced on the server (§6)."""
    [handler] = [h for h in node.domain.handlers if IDisco.providedBy(h)]
    requestor = JID("romeo@montague.net/orchard")

    assert handler.getDiscoInfo(requestor, JID("capulet.com")) == ["jabber:iq:last"]
    assert handler.getDiscoInfo(requestor, JID("juliet@capulet.com")) == []


def test_presenceStillBroadcast(node):
    """Noting an unavailable presence does not stop it: the presence feature still gets it."""
    seen = []
    node.server.hooks.add("presence/self", lambda event: seen.append(event.stanza) and None)
    node.bind(JULIET, available=True)

    node.route("<presence type='unavailable' from='%s'/>" % JULIET)

    assert len(seen) == 1


def test_presenceAfterSessionIgnored(node):
    """A presence from a resource that is gone already leaves nothing behind."""
    juliet = node.bind(JULIET, available=True)
    node.close(juliet)

    node.route("<presence type='unavailable' from='%s'><status>late</status></presence>" % JULIET)

    [handler] = node.domain.handlers
    assert len(handler.statuses) == 0 and handler.unavailableSince == {}
